// Scenarios with consumers in other processes: a fixed rate to a second process on one SQLite file, two consumer
// processes on PostgreSQL, and the backlog scenario, each of its steps in a fresh process (so its RSS is its own).
import { rmSync } from 'node:fs';
import type { Semantic } from '@tidings/core';
import type { BacklogResult, BacklogStep } from './backlog.js';
import { bundle } from './bundle.js';
import { BenchChild } from './children.js';
import type { ConsumerChildConfig, LeaseStats } from './consumer-child.js';
import type { BenchContext } from './context.js';
import { STALL_MS, Tally, epochMs, payload, payloads } from './messages.js';
import { BenchFailure, type Measured } from './rows.js';
import { onSchedule, sendManyOptions, sendOptions, topicName, withSession, type Session, type StoreKind } from './scenarios.js';
import { percentiles, round } from './stats.js';

/**
 * Runs `fn` while `n` consumer processes (batchSize 100, concurrency 50 each) consume the session's topic, reporting
 * into `tally`; `fn` is given the first failure of the session or of a child. Stops the children afterwards and
 * answers `fn`'s result with what their leases came to, summed.
 */
async function withConsumers<T>(
  s: Session,
  kind: StoreKind,
  semantic: Semantic,
  n: number,
  tally: Tally,
  fn: (failed: () => Error | undefined) => Promise<T>,
): Promise<{ result: T; leases: LeaseStats }> {
  const config: ConsumerChildConfig = {
    storage: kind === 'PostgreSQL' ? 'postgres' : 'sqlite',
    target: s.store.target,
    topic: s.topic.name,
    semantic,
    batchSize: 100,
    concurrency: 50,
  };
  let reported: Error | undefined;
  const leases: LeaseStats = { leases: 0, empty: 0, short: 0, busyRetries: 0 };
  const children = Array.from(
    { length: n },
    () =>
      new BenchChild('consumer-child.ts', config, (m) => {
        if (m.type === 'handled') tally.markReported(m.triples as number[]);
        else if (m.type === 'leases') for (const k of Object.keys(leases) as Array<keyof LeaseStats>) leases[k] += (m.stats as LeaseStats)[k];
        else if (m.type === 'error') reported ??= new BenchFailure(`consumer process: ${String(m.message)}`);
      }),
  );
  const failed = () => s.failed() ?? reported ?? children.map((c) => c.failed()).find(Boolean);
  try {
    await Promise.all(children.map((c) => c.waitFor('ready', 60_000)));
    const result = await fn(failed);
    await Promise.all(children.map((c) => c.stop()));
    const error = failed();
    if (error) throw error;
    return { result, leases };
  } finally {
    for (const c of children) c.kill();
  }
}

/** A fixed rate of sends from this process to a consumer in a second process on the same SQLite file: send to handler start. */
export function secondProcessFixedRate(ctx: BenchContext, semantic: Semantic): Promise<Measured> {
  return withSession(ctx, 'SQLite file', semantic, async (s) => {
    const { rate, rateSeconds } = ctx.counts;
    const count = Math.round(rate * rateSeconds);
    const tally = new Tally(count, true);
    const { result } = await withConsumers(s, 'SQLite file', semantic, 1, tally, async (failed) => {
      const start = epochMs();
      await onSchedule(rate, count, (i, at) => s.topic.send(payload(i, at), sendOptions(semantic, i)), failed);
      await tally.finished(`${semantic} to a second process`, STALL_MS, failed);
      return {
        messagesPerSecond: count / ((tally.lastAt - start) / 1000),
        messages: tally.handled,
        duplicates: tally.duplicates,
        latencyMs: percentiles(tally.latencies),
        scheduledPerSecond: rate,
      };
    });
    return result;
  });
}

/**
 * Scale-out: batches of 100 sent from this process, consumed by `n` other processes (batchSize 100, concurrency 50
 * each) on one database; the aggregate messages/s, and what the processes' leases came to (empty and short leases,
 * retries on a busy database).
 */
export function consumerProcesses(ctx: BenchContext, kind: StoreKind, semantic: Semantic, n: number): Promise<Measured> {
  return withSession(ctx, kind, semantic, async (s) => {
    const count = ctx.counts.batch;
    const tally = new Tally(count);
    const { result, leases } = await withConsumers(s, kind, semantic, n, tally, async (failed) => {
      const start = epochMs();
      for (let i = 0; i < count; i += 100) await s.topic.sendMany(payloads(i, Math.min(100, count - i)), sendManyOptions(semantic));
      await tally.finished(`${semantic} to ${n} consumer processes`, STALL_MS, failed);
      return { messagesPerSecond: count / ((tally.lastAt - start) / 1000), messages: tally.handled, duplicates: tally.duplicates };
    });
    return { ...result, leases: { processes: n, ...leases } };
  });
}

/** One step of the backlog scenario in a fresh plain-node process; fails if it reports nothing for `STALL_MS`. */
async function backlogStep(bundlePath: string, req: BacklogStep): Promise<BacklogResult> {
  let lastHeard = Date.now();
  const child = new BenchChild('backlog-child.ts', req, () => (lastHeard = Date.now()), bundlePath);
  let stalled = false;
  const watchdog = setInterval(() => {
    if (Date.now() - lastHeard > STALL_MS) [stalled] = [true, child.kill()];
  }, 1000);
  try {
    const answer = await child.waitFor('result', 24 * 60 * 60_000);
    await child.stop();
    return answer.result as BacklogResult;
  } catch (error) {
    throw stalled ? new BenchFailure(`backlog ${req.step}: nothing heard for ${STALL_MS / 1000} s`) : error;
  } finally {
    clearInterval(watchdog);
    child.kill();
  }
}

const mb = (bytes: number) => round(bytes / 2 ** 20, 1);

/**
 * A backlog on SQLite, each step in a fresh process: store the small backlog; a consumer leases batches of 100
 * (concurrency 1) for a sample; top it up to the large backlog with sendMany of 10,000 (the messages/s reported);
 * a new consumer does the same. Reports both consumers' median lease time and peak RSS; every message stored must be
 * handled or still in the topic.
 */
export async function backlogScenario(ctx: BenchContext): Promise<Measured> {
  const [small, large] = ctx.counts.backlogs;
  const sample = ctx.counts.leaseSample;
  const file = ctx.file('backlog');
  const topic = topicName('backlog');
  const indices = large + 2 * sample + 1_000;
  try {
    const script = await bundle('backlog-child.ts');
    await backlogStep(script, { step: 'store', file, topic, from: 0, upTo: small });
    const atSmall = await backlogStep(script, { step: 'consume', file, topic, sample, indices });
    if (atSmall.left! + atSmall.handled! !== small) throw new BenchFailure(`${atSmall.handled} handled and ${atSmall.left} left of ${small} stored`);
    const upTo = small + large - atSmall.left!;
    const stored = await backlogStep(script, { step: 'store', file, topic, from: small, upTo });
    const atLarge = await backlogStep(script, { step: 'consume', file, topic, sample, indices });
    if (atLarge.left! + atLarge.handled! !== large) throw new BenchFailure(`${atLarge.handled} handled and ${atLarge.left} left of ${large} waiting`);
    return {
      messagesPerSecond: stored.messagesPerSecond!,
      messages: upTo,
      duplicates: atSmall.duplicates! + atLarge.duplicates!,
      rssMb: mb(atLarge.peakRss),
      backlog: {
        sizes: [small, large],
        leaseMs: [round(atSmall.leaseMs!, 3), round(atLarge.leaseMs!, 3)],
        leaseRatio: round(atLarge.leaseMs! / atSmall.leaseMs!, 3),
        consumerRssMb: [mb(atSmall.peakRss), mb(atLarge.peakRss)],
        producerRssMb: mb(stored.peakRss),
      },
    };
  } finally {
    for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
  }
}
