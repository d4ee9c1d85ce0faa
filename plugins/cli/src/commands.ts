import { DEFAULT_SUBSCRIPTION, InvalidOptionsError, lifecyclePlans, recordedLedger, topicTotals, MESSAGE_STATES, type MessageState, type StateCounts, type StoredMessage, type TopicRecord } from '@tidings/core';
import { assertTopic, openDatabase, type Database } from './database.js';
import { TopicNotRecordedError, UnknownTopicError } from './errors.js';
import { parseInteger } from './parse.js';

/** Where a command writes: `out` gets its result (stdout), `err` its notes and warnings (stderr); each call is one line or block. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

/** The process's stdout and stderr. */
export const processOutput: Output = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => void process.stderr.write(`${text}\n`),
};

/** Which database a command opens: a SQLite file (default `.tidings/tidings.db`) or a postgres:// URL. */
export interface DbOptions {
  db?: string;
}

/** Options of `tidings stats`. */
export interface StatsOptions extends DbOptions {
  topic?: string;
  json?: boolean;
}

/** Options of `tidings dlq list`. */
export interface DlqListOptions extends DbOptions {
  topic: string;
  /** Dead letters to show (default 20). */
  limit?: number;
  json?: boolean;
}

/** What `tidings dlq list` found: how many dead letters the topic holds, and the first `limit` of them. */
export interface DlqListResult {
  total: number;
  messages: StoredMessage[];
}

/** Options of `tidings dlq redrive`. */
export interface DlqRedriveOptions extends DbOptions {
  topic: string;
  /** Only these dead letters (default: all of the topic's). */
  ids?: string[];
  json?: boolean;
  now?: number;
}

/** What `tidings dlq redrive` did: the state messages went back to, how many, and the asked-for ids that were not dead letters. */
export interface DlqRedriveResult {
  state: MessageState;
  redriven: number;
  missing: string[];
}

/** Options of `tidings purge`. */
export interface PurgeOptions extends DbOptions {
  topic?: string;
  /** Also drop dead letters created this long ago or earlier (default: keep every dead letter). */
  deadOlderThanMs?: number;
  json?: boolean;
  now?: number;
}

/** Rows `tidings purge` removed, by kind. */
export interface PurgeResult {
  dedup: number;
  idempotency: number;
  dead: number;
  total: number;
}

/** Opens the database, runs `fn`, and always closes it, so a failed command leaves no connection behind. */
async function withDatabase<T>(db: string | undefined, fn: (database: Database) => Promise<T>): Promise<T> {
  const database = await openDatabase(db);
  try {
    return await fn(database);
  } finally {
    await database.close();
  }
}

/** The counts of one topic, or `UnknownTopicError` listing the topics there are. */
async function countsOf(database: Database, all: StateCounts, topic: string): Promise<Partial<Record<MessageState, number>>> {
  const counts = all[topic];
  if (counts && Object.keys(counts).length > 0) return counts;
  const registry = await database.storage.topics();
  if (registry.some((t) => t.name === topic)) return {};
  throw new UnknownTopicError(topic, knownTopics(registry, all), database.target);
}

/** Message counts by state per topic: prints a table (or JSON) and returns them. */
export async function stats(options: StatsOptions, output: Output): Promise<StateCounts> {
  return withDatabase(options.db, async (database) => {
    const all = topicTotals(await database.storage.counts());
    const counts: StateCounts = {};
    if (options.topic !== undefined) counts[options.topic] = await countsOf(database, all, options.topic);
    else for (const topic of Object.keys(all).sort()) if (Object.keys(all[topic]!).length > 0) counts[topic] = all[topic]!;
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topics: counts }, null, 2));
      return counts;
    }
    const topics = Object.keys(counts);
    if (topics.length === 0) {
      output.out(`${database.target} holds no messages.`);
      return counts;
    }
    const states = MESSAGE_STATES.filter((s) => topics.some((t) => counts[t]![s] !== undefined));
    const total = (c: Partial<Record<MessageState, number>>) => Object.values(c).reduce((a, b) => a + (b ?? 0), 0);
    const rows = topics.map((t) => [t, ...states.map((s) => String(counts[t]![s] ?? 0)), String(total(counts[t]!))]);
    if (topics.length > 1) {
      const sum = (s: MessageState) => topics.reduce((a, t) => a + (counts[t]![s] ?? 0), 0);
      rows.push(['(all topics)', ...states.map((s) => String(sum(s))), String(topics.reduce((a, t) => a + total(counts[t]!), 0))]);
    }
    output.out(`${database.target}\n${table(['topic', ...states, 'total'], rows, [false, ...states.map(() => true), true])}`);
    return counts;
  });
}

/** The dead letters of a topic, oldest first: prints a table (or JSON) and returns them with the topic's total. */
export async function dlqList(options: DlqListOptions, output: Output): Promise<DlqListResult> {
  const limit = parseInteger('--limit', options.limit ?? 20);
  return withDatabase(options.db, async (database) => {
    await recordedTopic(database, options.topic).catch((error: unknown) => {
      // A topic with rows but no record (declared before the registry) still lists its dead letters.
      if (!(error instanceof TopicNotRecordedError)) throw error;
    });
    const total = (await database.storage.counts(options.topic))[options.topic]?.[DEFAULT_SUBSCRIPTION]?.dead ?? 0;
    const messages = total === 0 ? [] : await database.storage.peek({ topic: options.topic, subscription: DEFAULT_SUBSCRIPTION, state: 'dead', limit });
    if (options.json) {
      const shown = messages.map((m) => ({ id: m.id, deliveries: m.deliveries, createdAt: new Date(m.createdAt).toISOString(), payload: parseBody(m.body), lastError: m.lastError ?? null }));
      output.out(JSON.stringify({ db: database.name, topic: options.topic, total, messages: shown }, null, 2));
    } else if (total === 0) {
      output.out(`No dead letters in topic "${options.topic}" (${database.target}).`);
    } else {
      // The error's first line says why the message died; --json has the whole stack.
      const rows = messages.map((m) => [m.id, String(m.deliveries), new Date(m.createdAt).toISOString(), clip(m.body.replace(/\s+/g, ' '), 60), clip(m.lastError?.split('\n', 1)[0] ?? '', 60)]);
      const more = total > messages.length ? `\nShowing ${messages.length} of ${total}; pass --limit ${total} to see them all.` : '';
      output.out(
        `${total} dead letter${total === 1 ? '' : 's'} in topic "${options.topic}" (${database.target})\n` +
          `${table(['id', 'deliveries', 'created', 'payload', 'last error'], rows, [false, true, false, false, false])}${more}`,
      );
    }
    return { total, messages };
  });
}

/** Puts dead letters of a topic back for delivery as new lifecycles; returns how many, and the asked-for ids that were not dead. */
export async function dlqRedrive(options: DlqRedriveOptions, output: Output): Promise<DlqRedriveResult> {
  const { topic } = options;
  const ids = options.ids === undefined ? undefined : [...new Set(options.ids)];
  if (ids?.some((id) => typeof id !== 'string' || id === '')) throw new InvalidOptionsError('--id needs a message id, e.g. --id order-42.');
  return withDatabase(options.db, async (database) => {
    const record = await recordedTopic(database, topic);
    const recorded = { plan: lifecyclePlans[record.lifecycle] };
    const now = options.now ?? Date.now();
    const ledger = recordedLedger(database.storage, record, { name: DEFAULT_SUBSCRIPTION, maxDeliveries: record.maxDeliveries }, { clock: { now: () => now } });
    const redrive = async (ids?: string[]) => (await ledger.redrive(ids)).length;
    const target = { state: recorded.plan.ready, how: record.lifecycle };
    let redriven = 0;
    const missing: string[] = [];
    if (ids) {
      // One id at a time, so the answer can name each id that was not a dead letter.
      for (const id of ids) {
        const n = await redrive([id]);
        if (n === 0) missing.push(id);
        redriven += n;
      }
    } else {
      redriven = await redrive();
    }
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic, state: target.state, redriven, missing }, null, 2));
    } else if (recorded.plan.steps.redrive.length === 0) {
      output.out(`Topic "${topic}" is ${record.lifecycle}: its messages are never dead-lettered, so there is nothing to redrive.`);
    } else if (redriven === 0 && !ids) {
      output.out(`No dead letters in topic "${topic}" to redrive (${database.target}).`);
    } else {
      output.out(`Redrove ${redriven} dead letter${redriven === 1 ? '' : 's'} of topic "${topic}" to state ${target.state} (${target.how}).`);
    }
    if (missing.length > 0 && !options.json) {
      output.err(`tidings: not dead letters of topic "${topic}", left as they are: ${missing.join(', ')}.`);
    }
    return { state: target.state, redriven, missing };
  });
}

/** Drops expired dedup and idempotency records, and dead letters older than `deadOlderThanMs` if given; returns how many of each. */
export async function purge(options: PurgeOptions, output: Output): Promise<PurgeResult> {
  const { topic, deadOlderThanMs } = options;
  if (deadOlderThanMs !== undefined) parseInteger('--dead-older-than', deadOlderThanMs, 0);
  return withDatabase(options.db, async (database) => {
    if (topic !== undefined) await assertTopic(database, topic, true);
    const now = options.now ?? Date.now();
    const { storage } = database;
    const dedup = await storage.purge({ now, topic });
    const dead = deadOlderThanMs === undefined ? 0 : await storage.purge({ now, topic, before: now - deadOlderThanMs, states: ['dead'] });
    // The idempotency store forgets by time only, for every topic at once, so --topic leaves it alone.
    const idempotency = topic === undefined ? ((await storage.idempotencyStore?.().purge(now)) ?? 0) : 0;
    const result = { dedup, idempotency, dead, total: dedup + idempotency + dead };
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic: topic ?? null, ...result }, null, 2));
      return result;
    }
    const parts = [
      `${dedup} expired dedup record${dedup === 1 ? '' : 's'}`,
      topic === undefined ? `${idempotency} expired idempotency record${idempotency === 1 ? '' : 's'}` : 'no idempotency records (they are purged for all topics at once: run without --topic)',
      deadOlderThanMs === undefined
        ? 'no dead letters (pass --dead-older-than 7d to drop old ones)'
        : `${dead} dead letter${dead === 1 ? '' : 's'} older than ${formatDuration(deadOlderThanMs)}`,
    ];
    output.out(`Purged ${result.total} row${result.total === 1 ? '' : 's'}${topic === undefined ? '' : ` of topic "${topic}"`} from ${database.target}: ${parts.join(', ')}.`);
    return result;
  });
}

/** The topic as the registry records it: its lifecycle decides where a redriven message waits. */
async function recordedTopic(database: Database, topic: string): Promise<TopicRecord> {
  const [registry, all] = await Promise.all([database.storage.topics(), database.storage.counts().then(topicTotals)]);
  const record = registry.find((t) => t.name === topic);
  if (record) return record;
  if (Object.keys(all[topic] ?? {}).length === 0) throw new UnknownTopicError(topic, knownTopics(registry, all), database.target);
  throw new TopicNotRecordedError(topic, database.target);
}

/** Every topic the registry records or rows mention, by name. */
function knownTopics(registry: TopicRecord[], all: StateCounts): string[] {
  return [...new Set([...registry.map((t) => t.name), ...Object.keys(all).filter((t) => Object.keys(all[t]!).length > 0)])].sort();
}

/** A message body as JSON when it is JSON (it always is when Tidings wrote it), else the raw text. */
function parseBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** `604800000` as `7d`: the largest unit that divides it evenly. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Left-aligned text columns and right-aligned number columns, two spaces apart. */
function table(headers: string[], rows: string[][], right: boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
