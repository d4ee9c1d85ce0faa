import { DEFAULT_SUBSCRIPTION, InvalidOptionsError, MESSAGE_STATES, type MessageState } from '@tidings/core';
import {
  lifecyclePlans,
  recordedLedger,
  topicTotals,
  type StateCounts,
  type StoredMessage,
  type SubscriptionCounts,
  type SubscriptionLedger,
  type SubscriptionRecord,
  type TopicRecord,
} from '@tidings/core/adapter';
import { DEFAULT_DB, assertTopic, pickSubscription, withDatabase, type Database } from './database.js';
import { TopicNotRecordedError, UnknownSubscriptionError, UnknownTopicError } from './errors.js';
import { parseInteger } from './parse.js';
import { table } from './table.js';

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
  /** Only the subscriptions of this name (of `topic`, or of every topic). */
  subscription?: string;
  json?: boolean;
}

/** One row of `tidings stats`: a subscription of a topic and its copies by state. */
export interface SubscriptionStats {
  topic: string;
  /** Null for a recorded topic that records no subscription (none declared, or all removed), so it is still listed. */
  subscription: string | null;
  /** How the topic hands out keyed messages (`none`, `key`, `key-strict`); null when its topic is not recorded. */
  ordering: string | null;
  counts: Partial<Record<MessageState, number>>;
  total: number;
  /** Since when the subscription is paused (epoch ms); null while it runs, or when it has no record. */
  pausedAt: number | null;
}

/** What `tidings stats` found: a row per topic and subscription, and each topic's copies summed over its rows. */
export interface StatsResult {
  topics: StateCounts;
  subscriptions: SubscriptionStats[];
}

/** Options of `tidings dlq list`. */
export interface DlqListOptions extends DbOptions {
  topic: string;
  /** The subscription whose dead letters to list (default `default`). */
  subscription?: string;
  /** Dead letters to show (default 20). */
  limit?: number;
  json?: boolean;
}

/** What `tidings dlq list` found: how many dead letters the subscription holds, and the first `limit` of them. */
export interface DlqListResult {
  subscription: string;
  total: number;
  messages: StoredMessage[];
}

/** Options of `tidings dlq redrive`. */
export interface DlqRedriveOptions extends DbOptions {
  topic: string;
  /** The subscription whose dead letters to redrive (default `default`). */
  subscription?: string;
  /** Only these dead letters (default: all of the subscription's). */
  ids?: string[];
  json?: boolean;
  now?: number;
}

/** What `tidings dlq redrive` did: the state messages went back to, how many, and the asked-for ids that were not dead letters. */
export interface DlqRedriveResult {
  subscription: string;
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

/**
 * Copies by state per topic and subscription, with every recorded subscription (holding messages or not): prints a
 * table (or JSON) and returns the rows.
 */
export async function stats(options: StatsOptions, output: Output): Promise<StatsResult> {
  const { topic, subscription } = options;
  if (subscription !== undefined && (typeof subscription !== 'string' || subscription === '')) {
    throw new InvalidOptionsError('--subscription needs a subscription name, e.g. --subscription billing.');
  }
  return withDatabase(options.db, async (database) => {
    const { storage } = database;
    const [counts, registry, records] = await Promise.all([storage.counts(topic), storage.topics(), storage.subscriptions(topic)]);
    if (topic !== undefined && !registry.some((t) => t.name === topic) && Object.keys(counts[topic] ?? {}).length === 0) {
      throw new UnknownTopicError(topic, knownTopics(registry, topicTotals(await storage.counts())), database.target);
    }
    let rows = statsRows(counts, topic === undefined ? registry : registry.filter((t) => t.name === topic), records);
    if (subscription !== undefined) {
      const known = [...new Set(rows.flatMap((r) => (r.subscription === null ? [] : [r.subscription])))].sort();
      rows = rows.filter((r) => r.subscription === subscription);
      if (rows.length === 0) throw new UnknownSubscriptionError(subscription, topic, known, database.target);
    }
    const topics: StateCounts = {};
    for (const r of rows) {
      const sum = (topics[r.topic] ??= {});
      for (const [state, n] of Object.entries(r.counts) as Array<[MessageState, number]>) sum[state] = (sum[state] ?? 0) + n;
    }
    const result = { topics, subscriptions: rows };
    if (options.json) {
      const shown = rows.map((r) => ({ ...r, pausedAt: r.pausedAt === null ? null : new Date(r.pausedAt).toISOString() }));
      output.out(JSON.stringify({ db: database.name, topics, subscriptions: shown }, null, 2));
      return result;
    }
    if (rows.length === 0) {
      output.out(
        topic === undefined ? `${database.target} holds no messages.` : `Topic "${topic}" has no subscriptions and holds no messages (${database.target}).`,
      );
      return result;
    }
    const states = MESSAGE_STATES.filter((s) => rows.some((r) => r.counts[s] !== undefined));
    // Only when something is paused: a column of blanks would only widen the table.
    const paused = rows.some((r) => r.pausedAt !== null);
    const pausedCell = (r: SubscriptionStats) => (paused ? [r.pausedAt === null ? '' : new Date(r.pausedAt).toISOString()] : []);
    const cells = rows.map((r) => [
      r.topic,
      r.subscription ?? '(none)',
      r.ordering ?? '?',
      ...states.map((s) => String(r.counts[s] ?? 0)),
      String(r.total),
      ...pausedCell(r),
    ]);
    if (rows.length > 1) {
      const sum = (s: MessageState) => rows.reduce((a, r) => a + (r.counts[s] ?? 0), 0);
      cells.push(['(all)', '', '', ...states.map((s) => String(sum(s))), String(rows.reduce((a, r) => a + r.total, 0)), ...(paused ? [''] : [])]);
    }
    const right = [false, false, false, ...states.map(() => true), true, false];
    const notes = [
      rows.some((r) => r.ordering === null) ? '? ordering not known: the topic has messages but no record in the topic registry.' : '',
      rows.some((r) => r.subscription === null) ? '(none): the topic is recorded but records no subscription yet (none declared since, or all removed).' : '',
      paused ? 'A paused subscription keeps its messages; its consumers lease none until `tidings resume <topic> --subscription <name>`.' : '',
    ].filter((n) => n !== '');
    const headers = ['topic', 'subscription', 'ordering', ...states, 'total', ...(paused ? ['paused since'] : [])];
    output.out([database.target, table(headers, cells, right), ...notes].join('\n'));
    return result;
  });
}

/**
 * A row per subscription that is recorded or holds copies, by topic and name, and one (subscription null) per
 * recorded topic that has neither: a declared topic must show up before anything is sent to it or consumed from it.
 */
function statsRows(counts: SubscriptionCounts, registry: TopicRecord[], records: SubscriptionRecord[]): SubscriptionStats[] {
  const pairs = new Map<string, { topic: string; subscription: string | null }>();
  const add = (topic: string, subscription: string | null) => pairs.set(JSON.stringify([topic, subscription]), { topic, subscription });
  for (const r of records) add(r.topic, r.name);
  for (const [topic, subscriptions] of Object.entries(counts)) {
    for (const [subscription, states] of Object.entries(subscriptions)) if (Object.keys(states).length > 0) add(topic, subscription);
  }
  const listed = new Set([...pairs.values()].map((p) => p.topic));
  for (const t of registry) if (!listed.has(t.name)) add(t.name, null);
  const orderings = new Map(registry.map((t) => [t.name, t.ordering ?? 'none']));
  const pauses = new Map(records.map((r) => [JSON.stringify([r.topic, r.name]), r.pausedAt]));
  return [...pairs.values()]
    .sort((a, b) => (a.topic === b.topic ? compare(a.subscription ?? '', b.subscription ?? '') : compare(a.topic, b.topic)))
    .map(({ topic, subscription }) => {
      const c = subscription === null ? {} : { ...counts[topic]?.[subscription] };
      const total = Object.values(c).reduce((a, n) => a + (n ?? 0), 0);
      return {
        topic,
        subscription,
        ordering: orderings.get(topic) ?? null,
        counts: c,
        total,
        pausedAt: pauses.get(JSON.stringify([topic, subscription])) ?? null,
      };
    });
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The dead letters of a topic's subscription, oldest first: prints a table (or JSON) and returns them with the subscription's total. */
export async function dlqList(options: DlqListOptions, output: Output): Promise<DlqListResult> {
  const { topic } = options;
  const limit = parseInteger('--limit', options.limit ?? 20);
  return withDatabase(options.db, async (database) => {
    await recordedTopic(database, topic).catch((error: unknown) => {
      // A topic with rows but no record (declared before the registry) still lists its dead letters.
      if (!(error instanceof TopicNotRecordedError)) throw error;
    });
    const subscription = await pickSubscription(database, topic, options.subscription);
    const total = (await database.storage.counts(topic))[topic]?.[subscription]?.dead ?? 0;
    const messages = total === 0 ? [] : await database.storage.peek({ topic, subscription, state: 'dead', limit });
    const where = whereIs(topic, subscription);
    if (options.json) {
      const shown = messages.map((m) => ({
        id: m.id,
        deliveries: m.deliveries,
        createdAt: new Date(m.createdAt).toISOString(),
        payload: parseBody(m.body),
        lastError: m.lastError ?? null,
      }));
      output.out(JSON.stringify({ db: database.name, topic, subscription, total, messages: shown }, null, 2));
    } else if (total === 0) {
      output.out(`No dead letters in ${where} (${database.target}).`);
    } else {
      // The error's first line says why the message died; --json has the whole stack.
      const rows = messages.map((m) => [
        m.id,
        String(m.deliveries),
        new Date(m.createdAt).toISOString(),
        clip(m.body.replace(/\s+/g, ' '), 60),
        clip(m.lastError?.split('\n', 1)[0] ?? '', 60),
      ]);
      const more = total > messages.length ? `\nShowing ${messages.length} of ${total}; pass --limit ${total} to see them all.` : '';
      output.out(
        `${total} dead letter${total === 1 ? '' : 's'} in ${where} (${database.target})\n` +
          `${table(['id', 'deliveries', 'created', 'payload', 'last error'], rows, [false, true, false, false, false])}${more}`,
      );
    }
    return { subscription, total, messages };
  });
}

/** Puts dead letters of a topic's subscription back for delivery as new lifecycles; returns how many, and the asked-for ids that were not dead. */
export async function dlqRedrive(options: DlqRedriveOptions, output: Output): Promise<DlqRedriveResult> {
  const { topic } = options;
  const ids = options.ids === undefined ? undefined : [...new Set(options.ids)];
  if (ids?.some((id) => typeof id !== 'string' || id === '')) throw new InvalidOptionsError('--id needs a message id, e.g. --id order-42.');
  return withDatabase(options.db, async (database) => {
    const { record, subscription, ledger } = await subscriptionLedger(database, topic, options.subscription, options.now);
    const plan = lifecyclePlans[record.lifecycle];
    const redrive = async (ids?: string[]) => (await ledger.redrive(ids)).length;
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
    const where = whereIs(topic, subscription);
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic, subscription, state: plan.ready, redriven, missing }, null, 2));
    } else if (plan.steps.redrive.length === 0) {
      output.out(`Topic "${topic}" is ${record.lifecycle}: its messages are never dead-lettered, so there is nothing to redrive.`);
    } else if (redriven === 0 && !ids) {
      output.out(`No dead letters in ${where} to redrive (${database.target}).`);
    } else {
      output.out(`Redrove ${redriven} dead letter${redriven === 1 ? '' : 's'} of ${where} to state ${plan.ready} (${record.lifecycle}).`);
    }
    if (missing.length > 0 && !options.json) {
      output.err(`tidings: not dead letters of ${where}, left as they are: ${missing.join(', ')}.`);
    }
    return { subscription, state: plan.ready, redriven, missing };
  });
}

/** A subscription's ledger as the CLI acts through it, with the topic's record and the subscription's (when recorded). */
export interface OperatedSubscription {
  record: TopicRecord;
  subscription: string;
  /** The subscription's own record; undefined for one that holds copies but was never recorded. */
  recorded?: SubscriptionRecord;
  ledger: SubscriptionLedger;
}

/**
 * The ledger of a recorded topic's subscription (the one given, or `default`), on a clock stopped at `now` when
 * given. Throws the CLI's typed errors for an unknown or unrecorded topic and an unknown subscription.
 */
export async function subscriptionLedger(database: Database, topic: string, given: string | undefined, now?: number): Promise<OperatedSubscription> {
  const record = await recordedTopic(database, topic);
  const subscription = await pickSubscription(database, topic, given);
  const recorded = (await database.storage.subscriptions(topic)).find((s) => s.name === subscription);
  // Operator verbs read no delivery limit, but the ledger wants one: the subscription's recorded one, else its topic's.
  const maxDeliveries = recorded?.maxDeliveries ?? record.maxDeliveries;
  const clock = { now: now === undefined ? () => Date.now() : () => now };
  return { record, subscription, recorded, ledger: recordedLedger(database.storage, record, { name: subscription, maxDeliveries }, { clock }) };
}

/**
 * A `tidings` command line to run next (the next page, the verb that undoes this one), with the same `--db` unless
 * it is the default; a URL whose password was hidden is left for the reader to fill in rather than printed.
 */
export function tidingsCommand(args: string[], database: Database, db: string | undefined): string {
  const line = ['tidings', ...args.map(shellWord)].join(' ');
  if (db === undefined || db === DEFAULT_DB) return line;
  return database.name === db ? `${line} --db ${shellWord(db)}` : `${line} --db <your --db URL>`;
}

/** `word` as a shell reads it back: quoted only when it holds more than safe characters. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `topic "orders"` for its default subscription, which a topic declared without subscriptions has alone; else naming the subscription too. */
export function whereIs(topic: string, subscription: string): string {
  return subscription === DEFAULT_SUBSCRIPTION ? `topic "${topic}"` : `subscription "${subscription}" of topic "${topic}"`;
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
      topic === undefined
        ? `${idempotency} expired idempotency record${idempotency === 1 ? '' : 's'}`
        : 'no idempotency records (they are purged for all topics at once: run without --topic)',
      deadOlderThanMs === undefined
        ? 'no dead letters (pass --dead-older-than 7d to drop old ones)'
        : `${dead} dead letter${dead === 1 ? '' : 's'} older than ${formatDuration(deadOlderThanMs)}`,
    ];
    output.out(
      `Purged ${result.total} row${result.total === 1 ? '' : 's'}${topic === undefined ? '' : ` of topic "${topic}"`} from ${database.target}: ${parts.join(', ')}.`,
    );
    return result;
  });
}

/** The topic as the registry records it: its lifecycle decides where a redriven message waits. */
export async function recordedTopic(database: Database, topic: string): Promise<TopicRecord> {
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
export function parseBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

/** `text` cut to `max` characters, an ellipsis marking the cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** `604800000` as `7d`: the largest unit that divides it evenly. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
