import type { SeriesPoint, Snapshot, TopicView } from './monitor.js';

/** What changed in one topic since the last sample: its changed fields, the new point of its series, its new transitions. */
export type TopicChange = Partial<Omit<TopicView, 'series' | 'transitions'>> & {
  point?: SeriesPoint;
  transitions?: TopicView['transitions'];
};

/**
 * What the live stream sends after its first snapshot: only what changed, since a page keeps its own history and a
 * whole snapshot each second (every topic's 300 s of series) costs each open tab about 20 kB per second per topic.
 */
export interface SnapshotChange {
  at: number;
  tookMs?: number;
  error?: string;
  /** Topics that changed, by name; a topic new to the page comes whole, with `series` and `transitions`. */
  topics: Record<string, TopicChange | TopicView>;
  /** Topics gone since the last sample. */
  removed?: string[];
}

/** The change from `prev` to `next`, both samples of the same monitor (their transitions are the same objects). */
export function changeBetween(prev: Snapshot, next: Snapshot): SnapshotChange {
  const change: SnapshotChange = { at: next.at, topics: {} };
  if (next.tookMs !== undefined) change.tookMs = next.tookMs;
  if (next.error !== undefined) change.error = next.error;
  const before = new Map(prev.topics.map((t) => [t.name, t]));
  for (const topic of next.topics) {
    const old = before.get(topic.name);
    before.delete(topic.name);
    if (!old) {
      change.topics[topic.name] = topic;
      continue;
    }
    const diff: TopicChange = {};
    for (const key of Object.keys(topic) as Array<keyof TopicView>) {
      if (key === 'series' || key === 'transitions' || key === 'name') continue;
      if (JSON.stringify(topic[key]) !== JSON.stringify(old[key])) (diff as Record<string, unknown>)[key] = topic[key];
    }
    for (const key of Object.keys(old) as Array<keyof TopicView>) if (!(key in topic)) (diff as Record<string, unknown>)[key] = null;
    const point = topic.series.at(-1);
    if (point && point !== old.series.at(-1)) diff.point = point;
    const seen = old.transitions[0] ? topic.transitions.indexOf(old.transitions[0]) : topic.transitions.length;
    const fresh = topic.transitions.slice(0, seen < 0 ? topic.transitions.length : seen);
    if (fresh.length > 0) diff.transitions = fresh;
    if (Object.keys(diff).length > 0) change.topics[topic.name] = diff;
  }
  if (before.size > 0) change.removed = [...before.keys()];
  return change;
}

/**
 * A page's snapshot after `change`. Self-contained and plain JavaScript once compiled: the page embeds its source,
 * so that the page and the tests apply changes with one function.
 */
export function applyChange(snapshot: Snapshot, change: SnapshotChange, keepPoints: number, keepTransitions: number): Snapshot {
  const byName = new Map(snapshot.topics.map((t) => [t.name, t]));
  for (const name of change.removed ?? []) byName.delete(name);
  for (const name of Object.keys(change.topics)) {
    const c = change.topics[name] as TopicChange & Partial<TopicView>;
    const old = byName.get(name);
    if (!old || c.series) {
      byName.set(name, c as TopicView);
      continue;
    }
    const next = { ...old } as TopicView & Record<string, unknown>;
    for (const key of Object.keys(c)) {
      if (key === 'point' || key === 'transitions') continue;
      const value = (c as Record<string, unknown>)[key];
      if (value === null) delete next[key];
      else next[key] = value;
    }
    if (c.point) next.series = old.series.concat([c.point]).slice(-keepPoints);
    if (c.transitions) next.transitions = c.transitions.concat(old.transitions).slice(0, keepTransitions);
    byName.set(name, next);
  }
  const topics = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const next: Snapshot = { ...snapshot, at: change.at, topics };
  if (change.tookMs !== undefined) next.tookMs = change.tookMs;
  if (change.error !== undefined) next.error = change.error;
  else delete next.error;
  return next;
}
