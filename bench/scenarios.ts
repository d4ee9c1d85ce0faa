// Tidings scenarios in this process: batches end to end, awaited single sends, concurrent senders, a fixed rate.
import { rmSync } from 'node:fs';
import { Tidings, type Logger, type Semantic, type TidingsPlugin, type Topic, type TopicOptions } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import type { BenchContext } from './context.js';
import { STALL_MS, Tally, epochMs, messageId, payload, payloads, type BenchPayload } from './messages.js';
import { BenchFailure, type Measured } from './rows.js';
import { percentiles } from './stats.js';

/** Where a scenario's messages live. */
export type StoreKind = 'SQLite file' | 'memory' | 'PostgreSQL';

/** A fresh storage for one run: the adapter, the file or URL another process would open, and how to remove it. */
export interface OpenedStore {
  storage: StorageAdapter<any>;
  /** The SQLite file or PostgreSQL URL (empty for memory). */
  target: string;
  dispose(): Promise<void>;
}

/** A new SQLite file (synchronous=FULL, the default), PostgreSQL database or memory store for one run. */
export async function openStore(ctx: BenchContext, kind: StoreKind): Promise<OpenedStore> {
  switch (kind) {
    case 'memory':
      return { storage: memoryStorage(), target: '', dispose: async () => {} };
    case 'SQLite file': {
      const file = ctx.file('tidings');
      const dispose = async () => {
        for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
      };
      return { storage: sqliteStorage({ file }), target: file, dispose };
    }
    case 'PostgreSQL': {
      const db = await ctx.postgres.database('tidings');
      return { storage: postgresStorage({ url: db.url }), target: db.url, dispose: () => db.drop() };
    }
  }
}

/** Topic names are unique per run, so no run sees another's messages. */
export const topicName = (label: string) => `bench.${label}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** Send options that give end-to-end exactly-once its producer ids. */
export const sendOptions = (semantic: Semantic, i: number) => (semantic === 'exactly-once' ? { id: messageId(i) } : {});
export const sendManyOptions = (semantic: Semantic) => (semantic === 'exactly-once' ? { id: (p: BenchPayload) => messageId(p.i) } : {});

/** An open instance on a fresh store with one topic; failures it reports on its events fail the run. */
export interface Session {
  tidings: Tidings<any>;
  topic: Topic<BenchPayload, any>;
  store: OpenedStore;
  /** The first handler or background error reported, as a `BenchFailure`. */
  failed(): Error | undefined;
}

/**
 * A logger that counts what Tidings logs, by message, instead of printing it: an overloaded run can warn once a
 * message (`send not acked, retrying`), which would bury the progress bar; the counts go into the row, or the error.
 */
export function countingLogger(): Logger & { counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  const add = (level: string) => (msg: string) => void (counts[`${level}: ${msg}`] = (counts[`${level}: ${msg}`] ?? 0) + 1);
  return { counts, debug() {}, warn: add('warn'), error: add('error') };
}

/** Runs `fn` with a fresh store, instance and topic (declared with `shape`: ordering, subscriptions), and closes and removes them afterwards. */
export async function withSession(
  ctx: BenchContext,
  kind: StoreKind,
  semantic: Semantic,
  fn: (s: Session) => Promise<Measured>,
  plugins: TidingsPlugin[] = [],
  shape: Pick<TopicOptions, 'ordering' | 'subscriptions'> = {},
): Promise<Measured> {
  const store = await openStore(ctx, kind);
  const logger = countingLogger();
  const logged = () => (Object.keys(logger.counts).length ? logger.counts : undefined);
  try {
    const tidings = await Tidings.create({ storage: store.storage, plugins, logger });
    let failure: Error | undefined;
    tidings.events.on('error', (e) => (failure ??= new BenchFailure(`background error: ${String(e.error)}`)));
    tidings.events.on('handlerError', (e) => (failure ??= new BenchFailure(`handler error: ${String(e.error)}`)));
    try {
      const topic = tidings.topic<BenchPayload>(topicName(semantic), { semantic, ...shape });
      const measured = await fn({ tidings, topic, store, failed: () => failure });
      return logged() ? { ...measured, logged: logged() } : measured;
    } finally {
      await tidings.close();
    }
  } catch (error) {
    const counts = logged();
    if (counts && error instanceof Error)
      error.message += ` (Tidings logged ${Object.entries(counts)
        .map(([m, n]) => `"${m}" ×${n}`)
        .join(', ')})`;
    throw error;
  } finally {
    await store.dispose();
  }
}

/** Total messages a topic holds, in any state. */
export async function storedCount(tidings: Tidings<any>, topic: string): Promise<number> {
  const counts = (await tidings.counts(topic))[topic] ?? {};
  return Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
}

/**
 * Waits until `topic` holds `expected` messages (fire-and-forget sends store after they return); fails on a stall.
 * A count that fails (its connection waits behind the stores still queued) is asked again, the stall clock running.
 */
export async function awaitStored(s: Session, expected: number): Promise<void> {
  let last = -1;
  let since = Date.now();
  let lastError: unknown;
  for (;;) {
    const held = await storedCount(s.tidings, s.topic.name).catch((error: unknown) => ((lastError = error), last));
    if (held === expected) return;
    if (held > expected) throw new BenchFailure(`${held} messages stored for ${expected} sent`);
    if (held !== last) [last, since] = [held, Date.now()];
    else if (Date.now() - since > STALL_MS)
      throw new BenchFailure(`${held} of ${expected} messages sent were stored${lastError ? ` (last count failed: ${String(lastError)})` : ''}`);
    const error = s.failed();
    if (error) throw error;
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ordering keys an ordered run spreads its messages over. */
export const KEYS = 1_000;

/** How a batches run differs from the plain one. */
export interface BatchesShape {
  plugins?: TidingsPlugin[];
  /** The topic is declared `ordering: 'key'` and message i has key k(i mod 1,000): a lease hands out each key's first waiting message only. */
  ordered?: boolean;
  /** One batch handler call per leased batch (`consumeBatch`) instead of a handler per message. */
  batchHandler?: boolean;
}

/**
 * End to end: one producer awaits sendMany of 100 at a time while a consumer (batchSize 100) handles them; from the
 * first send to the last message handled, every message counted once.
 */
export function batches(ctx: BenchContext, kind: StoreKind, semantic: Semantic, concurrency: number, shape: BatchesShape = {}): Promise<Measured> {
  const { plugins = [], ordered = false, batchHandler = false } = shape;
  return withSession(
    ctx,
    kind,
    semantic,
    async (s) => {
      const count = ctx.counts.batch;
      const tally = new Tally(count);
      const consumer = batchHandler
        ? s.topic.consumeBatch((messages) => messages.forEach((m) => tally.mark(m.payload)), { batchSize: 100 })
        : s.topic.consume((m) => tally.mark(m.payload), { batchSize: 100, concurrency });
      try {
        const start = epochMs();
        const options = { ...sendManyOptions(semantic), ...(ordered ? { key: (p: BenchPayload) => `k${p.i % KEYS}` } : {}) };
        for (let i = 0; i < count; i += 100) await s.topic.sendMany(payloads(i, Math.min(100, count - i)), options);
        await tally.finished(`${semantic} on ${kind}${ordered ? ', ordered' : ''}`, STALL_MS, s.failed);
        return { messagesPerSecond: count / ((tally.lastAt - start) / 1000), messages: tally.handled, duplicates: tally.duplicates };
      } finally {
        await consumer.stop();
      }
    },
    plugins,
    ordered ? { ordering: 'key' } : {},
  );
}

/** One awaited send at a time, as an HTTP handler sends: sends per second and each send's latency; then all must be stored. */
export function singleSends(ctx: BenchContext, kind: StoreKind, semantic: Semantic): Promise<Measured> {
  return withSession(ctx, kind, semantic, async (s) => {
    const count = ctx.counts.single;
    const spent = new Float64Array(count);
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      await s.topic.send(payload(i), sendOptions(semantic, i));
      spent[i] = performance.now() - t;
    }
    const messagesPerSecond = count / ((performance.now() - start) / 1000);
    await awaitStored(s, count);
    return { messagesPerSecond, messages: count, latencyMs: percentiles(spent) };
  });
}

/** `callers` concurrent callers, each awaiting one send after another until `count` are sent: sends/s and send latency. */
export function concurrentSends(ctx: BenchContext, kind: StoreKind, semantic: Semantic): Promise<Measured> {
  return withSession(ctx, kind, semantic, async (s) => {
    const { concurrent: count, callers } = ctx.counts;
    const spent = new Float64Array(count);
    let next = 0;
    const caller = async () => {
      for (let i = next++; i < count; i = next++) {
        const t = performance.now();
        await s.topic.send(payload(i), sendOptions(semantic, i));
        spent[i] = performance.now() - t;
      }
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: callers }, caller));
    const messagesPerSecond = count / ((performance.now() - start) / 1000);
    await awaitStored(s, count);
    return { messagesPerSecond, messages: count, latencyMs: percentiles(spent) };
  });
}

/**
 * Sends `count` messages on a fixed schedule of `rate` per second: on each timer tick every send that is due goes
 * out, not awaited, stamped with the time of its send() call. Resolves once every send is acked.
 */
export async function onSchedule(
  rate: number,
  count: number,
  send: (i: number, at: number) => Promise<unknown>,
  failed: () => Error | undefined = () => undefined,
): Promise<void> {
  const sends: Promise<unknown>[] = [];
  const start = performance.now();
  let i = 0;
  while (i < count) {
    const due = Math.min(count, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
    for (; i < due; i++) sends.push(send(i, epochMs()));
    const error = failed();
    if (error) throw error;
    if (i < count) await sleep(Math.max(0, start + (i * 1000) / rate - performance.now()));
  }
  await Promise.all(sends);
}

/** A fixed rate of sends to a consumer in this process (batchSize 100, concurrency 50): the time from send to handler start. */
export function fixedRate(ctx: BenchContext, kind: StoreKind, semantic: Semantic): Promise<Measured> {
  return withSession(ctx, kind, semantic, async (s) => {
    const { rate, rateSeconds } = ctx.counts;
    const count = Math.round(rate * rateSeconds);
    const tally = new Tally(count, true);
    const consumer = s.topic.consume((m) => tally.mark(m.payload), { batchSize: 100, concurrency: 50 });
    try {
      const start = epochMs();
      await onSchedule(rate, count, (i, at) => s.topic.send(payload(i, at), sendOptions(semantic, i)), s.failed);
      await tally.finished(`${semantic} on ${kind} at ${rate}/s`, STALL_MS, s.failed);
      return {
        messagesPerSecond: count / ((tally.lastAt - start) / 1000),
        messages: tally.handled,
        duplicates: tally.duplicates,
        latencyMs: percentiles(tally.latencies),
        scheduledPerSecond: rate,
      };
    } finally {
      await consumer.stop();
    }
  });
}
