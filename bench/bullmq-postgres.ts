// BullMQ on its PostgreSQL backend (`createPostgresBackend`), on the embedded PostgreSQL, run as its guide says: the
// same Queue and Worker as on Redis, a database of its own migrated on connect (`migrate: true`), the worker's pool
// sized for its concurrency, jobs removed on completion as on the Redis peer.
import { createPostgresBackend, withBackend } from 'bullmq';
import type { BenchContext } from './context.js';
import { STALL_MS, Tally, epochMs, payloads, type BenchPayload } from './messages.js';
import { BenchFailure, type Measured } from './rows.js';

const { Queue, Worker } = withBackend(createPostgresBackend);

/** addBulk of 100 at a time while a Worker handles them: from the first add to the last job started. */
export async function bullPostgresBatches(ctx: BenchContext, concurrency: number): Promise<Measured> {
  const db = await ctx.postgres.database('bullmq');
  const queue = new Queue<BenchPayload>('bench', {
    connection: { connectionString: db.url, migrate: true },
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  let worker: InstanceType<typeof Worker<BenchPayload>> | undefined;
  try {
    await queue.waitUntilReady();
    const count = ctx.counts.batch;
    const tally = new Tally(count);
    let failure: Error | undefined;
    worker = new Worker<BenchPayload>('bench', async (job) => tally.mark(job.data), {
      connection: { connectionString: db.url, max: concurrency },
      concurrency,
    });
    worker.on('failed', (_job, error) => (failure ??= new BenchFailure(`job failed: ${error.message}`)));
    worker.on('error', (error) => (failure ??= new BenchFailure(`worker error: ${error.message}`)));
    await worker.waitUntilReady();
    const t = epochMs();
    for (let i = 0; i < count; i += 100) await queue.addBulk(payloads(i, Math.min(100, count - i)).map((data) => ({ name: 'bench', data })));
    await tally.finished(`BullMQ on PostgreSQL at concurrency ${concurrency}`, STALL_MS, () => failure);
    return { messagesPerSecond: count / ((tally.lastAt - t) / 1000), messages: tally.handled, duplicates: tally.duplicates };
  } finally {
    try {
      await worker?.close();
      await queue.close();
    } finally {
      await db.drop();
    }
  }
}
