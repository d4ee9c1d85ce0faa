// BullMQ on its own redis-server, run the way its users run it: addBulk of 100, a Worker at some concurrency, jobs
// removed on completion (as Tidings deletes a message once handled).
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { BenchContext } from './context.js';
import { STALL_MS, Tally, epochMs, payload, payloads, type BenchPayload } from './messages.js';
import { BenchFailure, type Measured } from './rows.js';
import type { LocalRedis } from './redis.js';
import { onSchedule } from './scenarios.js';
import { percentiles } from './stats.js';

const connection = (redis: LocalRedis): ConnectionOptions => ({ host: redis.host, port: redis.port, maxRetriesPerRequest: null });

/** A queue of its own for one run, with a worker if asked; closed and emptied afterwards. */
async function withQueue<T>(
  redis: LocalRedis,
  fn: (queue: Queue<BenchPayload>, start: (tally: Tally, concurrency: number) => Promise<() => Error | undefined>) => Promise<T>,
): Promise<T> {
  const name = `bench-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const queue = new Queue<BenchPayload>(name, { connection: connection(redis), defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  let worker: Worker<BenchPayload> | undefined;
  const start = async (tally: Tally, concurrency: number) => {
    let failure: Error | undefined;
    worker = new Worker<BenchPayload>(name, async (job) => tally.mark(job.data), { connection: connection(redis), concurrency });
    worker.on('failed', (_job, error) => (failure ??= new BenchFailure(`job failed: ${error.message}`)));
    worker.on('error', (error) => (failure ??= new BenchFailure(`worker error: ${error.message}`)));
    await worker.waitUntilReady();
    return () => failure;
  };
  try {
    await queue.waitUntilReady();
    return await fn(queue, start);
  } finally {
    await worker?.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
}

/** addBulk of 100 at a time while a Worker handles them: from the first add to the last job started. */
export function bullBatches(ctx: BenchContext, redis: LocalRedis, concurrency: number): Promise<Measured> {
  return withQueue(redis, async (queue, start) => {
    const count = ctx.counts.batch;
    const tally = new Tally(count);
    const failed = await start(tally, concurrency);
    const t = epochMs();
    for (let i = 0; i < count; i += 100) await queue.addBulk(payloads(i, Math.min(100, count - i)).map((data) => ({ name: 'bench', data })));
    await tally.finished(`BullMQ at concurrency ${concurrency}`, STALL_MS, failed);
    return { messagesPerSecond: count / ((tally.lastAt - t) / 1000), messages: tally.handled, duplicates: tally.duplicates };
  });
}

/** One awaited add at a time: adds per second and each add's latency; then all must be waiting in the queue. */
export function bullSingleAdds(ctx: BenchContext, redis: LocalRedis): Promise<Measured> {
  return withQueue(redis, async (queue) => {
    const count = ctx.counts.single;
    const spent = new Float64Array(count);
    const t = performance.now();
    for (let i = 0; i < count; i++) {
      const s = performance.now();
      await queue.add('bench', payload(i));
      spent[i] = performance.now() - s;
    }
    const messagesPerSecond = count / ((performance.now() - t) / 1000);
    const waiting = await queue.count();
    if (waiting !== count) throw new BenchFailure(`${waiting} of ${count} jobs added are in the queue`);
    return { messagesPerSecond, messages: count, latencyMs: percentiles(spent) };
  });
}

/** Adds on a fixed schedule to a Worker at concurrency 50: the time from add to the processor's start. */
export function bullFixedRate(ctx: BenchContext, redis: LocalRedis): Promise<Measured> {
  return withQueue(redis, async (queue, start) => {
    const { rate, rateSeconds } = ctx.counts;
    const count = Math.round(rate * rateSeconds);
    const tally = new Tally(count, true);
    const failed = await start(tally, 50);
    const t = epochMs();
    await onSchedule(rate, count, (i, at) => queue.add('bench', payload(i, at)), failed);
    await tally.finished(`BullMQ at ${rate}/s`, STALL_MS, failed);
    return {
      messagesPerSecond: count / ((tally.lastAt - t) / 1000),
      messages: tally.handled,
      duplicates: tally.duplicates,
      latencyMs: percentiles(tally.latencies),
      scheduledPerSecond: rate,
    };
  });
}
