// One topic fanned out to subscriptions, each consumed on its own.
import type { Semantic } from '@tidings/core';
import type { BenchContext } from './context.js';
import { STALL_MS, Tally, epochMs, messageId, payloads, type BenchPayload } from './messages.js';
import type { Measured } from './rows.js';
import { withSession, type StoreKind } from './scenarios.js';

/** Subscriptions a fanned-out run declares, each read by a consumer of its own. */
export const SUBSCRIPTIONS = ['billing', 'email', 'analytics'];

/**
 * As `batches` at concurrency 50, on a topic with three subscriptions, each consumed on its own (batchSize 100,
 * concurrency 50): messages handled per second summed over the subscriptions, each message counted once per subscription.
 */
export function fannedOutBatches(ctx: BenchContext, kind: StoreKind, semantic: Semantic): Promise<Measured> {
  return withSession(
    ctx,
    kind,
    semantic,
    async (s) => {
      const count = ctx.counts.batch;
      const tallies = SUBSCRIPTIONS.map(() => new Tally(count));
      const consumers = SUBSCRIPTIONS.map((name, k) =>
        s.topic.subscription(name).consume((m) => tallies[k]!.mark(m.payload), { batchSize: 100, concurrency: 50 }),
      );
      try {
        const start = epochMs();
        const options = semantic === 'exactly-once' ? { id: (p: BenchPayload) => messageId(p.i) } : {};
        for (let i = 0; i < count; i += 100) await s.topic.sendMany(payloads(i, Math.min(100, count - i)), options);
        await Promise.all(tallies.map((t, k) => t.finished(`${semantic} on ${kind}, subscription ${SUBSCRIPTIONS[k]}`, STALL_MS, s.failed)));
        const last = Math.max(...tallies.map((t) => t.lastAt));
        const handled = tallies.reduce((a, t) => a + t.handled, 0);
        return { messagesPerSecond: handled / ((last - start) / 1000), messages: handled, duplicates: tallies.reduce((a, t) => a + t.duplicates, 0) };
      } finally {
        await Promise.all(consumers.map((c) => c.stop()));
      }
    },
    [],
    { subscriptions: SUBSCRIPTIONS },
  );
}
