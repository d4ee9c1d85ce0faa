// pg-boss on the embedded PostgreSQL, run the way its docs say for throughput and latency: `insert` of 100 at a time,
// one `work()` of four workers (`localConcurrency`) each fetching batches of 100 and fetching again at once while
// batches come back full (`burstWhenBatchFull`), woken by LISTEN/NOTIFY (`useListenNotify` and the queue's `notify`)
// rather than by their poll. Completed jobs are kept (its default retention), in a database dropped after the run.
import { PgBoss, type Job } from 'pg-boss';
import type { BenchContext } from './context.js';
import { STALL_MS, Tally, epochMs, payload, payloads, type BenchPayload } from './messages.js';
import { BenchFailure, type Measured } from './rows.js';
import { onSchedule } from './scenarios.js';
import { percentiles } from './stats.js';

const QUEUE = 'bench';
const WORKERS = 4;
const BATCH = 100;

/** What a run is given: the started instance, its queue, and how to start the workers into a tally. */
interface BossRun {
  boss: PgBoss;
  /** Starts the four workers; handler errors and pg-boss' own errors come back through `failed`. */
  work(tally: Tally): Promise<void>;
  /** The first error pg-boss reported (or a worker's handler threw), if any. */
  failed(): Error | undefined;
}

/** A database of its own with pg-boss' schema and a queue with `notify`; the instance is stopped and the database dropped afterwards. */
async function withBoss<T>(ctx: BenchContext, fn: (run: BossRun) => Promise<T>): Promise<T> {
  const db = await ctx.postgres.database('pgboss');
  try {
    const boss = new PgBoss({ connectionString: db.url, useListenNotify: true });
    let failure: Error | undefined;
    boss.on('error', (error) => (failure ??= new BenchFailure(`pg-boss error: ${error.message}`)));
    // Without its listener pg-boss falls back to polling every 30 s: the run would not measure what its row says.
    boss.on('warning', (w) => {
      if ((w.data as { type?: string }).type === 'listen_notify_unavailable') failure ??= new BenchFailure(`pg-boss warning: ${w.message}`);
    });
    await boss.start();
    try {
      await boss.createQueue(QUEUE, { notify: true });
      const work = async (tally: Tally) => {
        await boss.work<BenchPayload>(QUEUE, { batchSize: BATCH, localConcurrency: WORKERS, burstWhenBatchFull: true }, async (jobs: Job<BenchPayload>[]) => {
          try {
            for (const job of jobs) tally.mark(job.data);
          } catch (error) {
            failure ??= error as Error;
            throw error;
          }
        });
      };
      return await fn({ boss, work, failed: () => failure });
    } finally {
      await boss.stop({ graceful: true, close: true });
    }
  } finally {
    await db.drop();
  }
}

/** `insert` of 100 at a time while four workers (batchSize 100) handle them: from the first insert to the last job started. */
export function pgBossBatches(ctx: BenchContext): Promise<Measured> {
  return withBoss(ctx, async ({ boss, work, failed }) => {
    const count = ctx.counts.batch;
    const tally = new Tally(count);
    await work(tally);
    const t = epochMs();
    for (let i = 0; i < count; i += BATCH)
      await boss.insert(
        QUEUE,
        payloads(i, Math.min(BATCH, count - i)).map((data) => ({ data })),
      );
    await tally.finished(`pg-boss, ${WORKERS} workers of batchSize ${BATCH}`, STALL_MS, failed);
    return { messagesPerSecond: count / ((tally.lastAt - t) / 1000), messages: tally.handled, duplicates: tally.duplicates };
  });
}

/** One awaited `send` at a time: sends per second and each send's latency; then all must be in the job table. */
export function pgBossSingleSends(ctx: BenchContext): Promise<Measured> {
  return withBoss(ctx, async ({ boss }) => {
    const count = ctx.counts.single;
    const spent = new Float64Array(count);
    const t = performance.now();
    for (let i = 0; i < count; i++) {
      const s = performance.now();
      await boss.send(QUEUE, payload(i));
      spent[i] = performance.now() - s;
    }
    const messagesPerSecond = count / ((performance.now() - t) / 1000);
    const { rows } = await boss.getDb().executeSql('SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1', [QUEUE]);
    const stored = (rows[0] as { n: number }).n;
    if (stored !== count) throw new BenchFailure(`${stored} of ${count} jobs sent are in the table`);
    return { messagesPerSecond, messages: count, latencyMs: percentiles(spent) };
  });
}

/** Sends on a fixed schedule to the four workers: the time from `send` to the handler's start. */
export function pgBossFixedRate(ctx: BenchContext): Promise<Measured> {
  return withBoss(ctx, async ({ boss, work, failed }) => {
    const { rate, rateSeconds } = ctx.counts;
    const count = Math.round(rate * rateSeconds);
    const tally = new Tally(count, true);
    await work(tally);
    const t = epochMs();
    await onSchedule(rate, count, (i, at) => boss.send(QUEUE, payload(i, at)), failed);
    await tally.finished(`pg-boss at ${rate}/s`, STALL_MS, failed);
    return {
      messagesPerSecond: count / ((tally.lastAt - t) / 1000),
      messages: tally.handled,
      duplicates: tally.duplicates,
      latencyMs: percentiles(tally.latencies),
      scheduledPerSecond: rate,
    };
  });
}
