// The backlog scenario's two steps, each run by bench/backlog-child.ts in a fresh process: store messages in big
// batches, or consume a sample with a batch of 100 per lease, timing each full lease.
import { Tidings } from '@tidings/core';
import { decorateStorage, type LeaseRequest } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { Tally, payloads, type BenchPayload } from './messages.js';
import { BenchFailure } from './rows.js';
import { median } from './stats.js';

/** What the parent asks a backlog child to do. */
export type BacklogStep =
  | { step: 'store'; file: string; topic: string; from: number; upTo: number }
  | { step: 'consume'; file: string; topic: string; sample: number; indices: number };

/** What a backlog child answers: the step's figures and its process's peak RSS in bytes. */
export interface BacklogResult {
  peakRss: number;
  /** store: messages stored per second. */
  messagesPerSecond?: number;
  /** consume: median ms of a full lease, messages handled, handled again, and left in the topic after. */
  leaseMs?: number;
  handled?: number;
  duplicates?: number;
  left?: number;
}

const STORE_BATCH = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs one step on the SQLite file; `progress` is called as messages are stored or handled. */
export async function backlogStep(req: BacklogStep, progress: () => void): Promise<Omit<BacklogResult, 'peakRss'>> {
  const inner = sqliteStorage({ file: req.file });
  let timing: number[] | undefined;
  const storage = decorateStorage(inner, {
    lease: async (l: LeaseRequest) => {
      const t = performance.now();
      const batch = await inner.lease(l);
      if (timing && batch.length === l.limit) timing.push(performance.now() - t);
      return batch;
    },
  });
  const tidings = await Tidings.create({ storage });
  let failure: Error | undefined;
  tidings.events.on('error', (e) => (failure ??= new BenchFailure(`background error: ${String(e.error)}`)));
  tidings.events.on('handlerError', (e) => (failure ??= new BenchFailure(`handler error: ${String(e.error)}`)));
  try {
    const topic = tidings.topic<BenchPayload>(req.topic, { semantic: 'at-least-once' });
    if (req.step === 'store') {
      const t = performance.now();
      for (let i = req.from; i < req.upTo; i += STORE_BATCH) {
        await topic.sendMany(payloads(i, Math.min(STORE_BATCH, req.upTo - i)));
        progress();
      }
      return { messagesPerSecond: (req.upTo - req.from) / ((performance.now() - t) / 1000) };
    }
    const tally = new Tally(req.indices);
    timing = [];
    const consumer = topic.consume((m) => tally.mark(m.payload), { batchSize: 100, concurrency: 1 });
    while (tally.handled < req.sample) {
      if (failure) throw failure;
      await sleep(10);
      progress();
    }
    // A stop still handles a batch already leased, so a few more than the sample may be handled.
    await consumer.stop();
    const spent = timing;
    timing = undefined;
    if (spent.length === 0) throw new BenchFailure('no full batch of 100 was leased');
    const counts = (await tidings.counts(req.topic))[req.topic] ?? {};
    const left = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
    if (failure) throw failure;
    return { leaseMs: median(spent), handled: tally.handled, duplicates: tally.duplicates, left };
  } finally {
    await tidings.close();
  }
}
