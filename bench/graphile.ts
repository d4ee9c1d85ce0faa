// Graphile Worker on the embedded PostgreSQL, run the way its performance guide says: addJobs in batches, a local
// queue of 100 (`preset.worker.localQueue.size`), a pool of concurrency + 2 connections as its docs recommend.
import { Logger, makeWorkerUtils, run, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import type { BenchContext } from './context.js';
import { STALL_MS, Tally, epochMs, payload, payloads, type BenchPayload } from './messages.js';
import { BenchFailure, type Measured } from './rows.js';
import { percentiles } from './stats.js';

/** Graphile Worker's log lines would interleave with the progress bar; errors surface as failures instead. */
const quiet = new Logger(() => () => {});

/**
 * A database of its own with Graphile Worker's schema, and one pool (of `poolSize`) for the utils and the runner,
 * ended before the database is dropped, so no idle connection of it is cut off by the drop.
 */
async function withDatabase<T>(ctx: BenchContext, poolSize: number, fn: (pool: pg.Pool, utils: WorkerUtils) => Promise<T>): Promise<T> {
  const db = await ctx.postgres.database('graphile');
  const pool = new pg.Pool({ connectionString: db.url, max: poolSize });
  // A connection lost while idle is the pool's to replace; a query on one fails the run where it is awaited.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  try {
    const utils = await makeWorkerUtils({ pgPool: pool, logger: quiet });
    try {
      await utils.migrate();
      return await fn(pool, utils);
    } finally {
      await utils.release();
    }
  } finally {
    await pool.end();
    await db.drop();
  }
}

/** addJobs of 100 at a time while a runner (local queue 100) handles them: from the first add to the last job started. */
export function graphileBatches(ctx: BenchContext, concurrency: number): Promise<Measured> {
  return withDatabase(ctx, Math.max(10, concurrency + 2), async (pool, utils) => {
    const count = ctx.counts.batch;
    const tally = new Tally(count);
    let failure: Error | undefined;
    const runner = await run({
      pgPool: pool,
      concurrency,
      noHandleSignals: true,
      logger: quiet,
      taskList: { bench: async (p) => tally.mark(p as BenchPayload) },
      preset: { worker: { localQueue: { size: 100 } } },
    });
    runner.events.on('job:failed', ({ error }) => (failure ??= new BenchFailure(`job failed: ${String(error)}`)));
    try {
      const t = epochMs();
      for (let i = 0; i < count; i += 100) await utils.addJobs(payloads(i, Math.min(100, count - i)).map((p) => ({ identifier: 'bench', payload: p })));
      await tally.finished(`Graphile Worker at concurrency ${concurrency}`, STALL_MS, () => failure);
      return { messagesPerSecond: count / ((tally.lastAt - t) / 1000), messages: tally.handled, duplicates: tally.duplicates };
    } finally {
      await runner.stop();
    }
  });
}

/** One awaited addJob at a time: adds per second and each add's latency; then all must be in the jobs table. */
export function graphileSingleAdds(ctx: BenchContext): Promise<Measured> {
  return withDatabase(ctx, 10, async (_pool, utils) => {
    const count = ctx.counts.single;
    const spent = new Float64Array(count);
    const t = performance.now();
    for (let i = 0; i < count; i++) {
      const s = performance.now();
      await utils.addJob('bench', payload(i));
      spent[i] = performance.now() - s;
    }
    const messagesPerSecond = count / ((performance.now() - t) / 1000);
    const { rows } = await utils.withPgClient((client) => client.query<{ n: string }>('SELECT count(*) AS n FROM graphile_worker.jobs'));
    if (Number(rows[0]!.n) !== count) throw new BenchFailure(`${rows[0]!.n} of ${count} jobs added are in the table`);
    return { messagesPerSecond, messages: count, latencyMs: percentiles(spent) };
  });
}
