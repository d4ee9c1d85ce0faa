import { LIFECYCLES, TidingsError, lifecycleTables, semanticOf, type Lifecycle, type LifecycleEventType, type MessageState } from '@tidings/core';
import { lifecyclePlans, type StoredMessage, type TopicRecord } from '@tidings/core/adapter';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LEASED_LIFECYCLES,
  SuiteContext,
  T0,
  bodyOf,
  countsOf,
  deadLetterOf,
  idRange,
  rejectionOf,
  sleep,
  sorted,
  waitFor,
  type StorageFactory,
  type DeadLetterTopic,
  TopicDriver,
  copiesOf,
  holding,
} from './harness.js';
import { describeOperatorSection } from './operator-suite.js';
import { describeSubscriptionSections } from './subscription-suite.js';

/** Tuning for adapters that are slower or less capable than the defaults assume. */
export interface StorageSuiteOptions {
  /** Messages two brokers race over in section 3 (default 10 000). */
  raceMessages?: number;
  /** Time allowed for each race, in ms (default 60 000). */
  raceTimeoutMs?: number;
  /** Set false when `transaction` cannot roll back; section 12 then skips its rollback tests. */
  rollback?: boolean;
  /**
   * Set false when other handles see a transaction's writes before it commits (memory storage: one process, no
   * isolation); section 12 then skips the test that another handle never reads what a rolled-back transaction wrote.
   */
  isolation?: boolean;
  /**
   * Set false for storage that keeps nothing once closed (memory). Otherwise section 19 closes every handle on some
   * data, opens a new one with the factory and the same key, and finds every acknowledged write there.
   */
  persistent?: boolean;
}

const HOUR = 3_600_000;
/** The first test's name: when it fails, the rest is skipped. */
const BASICS = '0. the basics';

/** What a consumer does with a message, in the order its machine takes the events. */
function consumeEvents(lifecycle: Lifecycle): LifecycleEventType[] {
  const { steps } = lifecyclePlans[lifecycle];
  return [...steps.lease, ...steps.handled].map((s) => s.event);
}

/** Stores `ids`, leases them and nacks each with deliveries used up, so they end dead. */
async function kill(d: TopicDriver, ids: string[], now: number, deadLetter?: DeadLetterTopic): Promise<void> {
  await d.store(ids, now);
  const leased = await d.lease(now, { limit: ids.length });
  expect(sorted(leased.map((m) => m.id))).toEqual(sorted(ids));
  for (const m of leased) expect(await d.nack(m, now, { maxDeliveries: 1, deadLetter })).toEqual([m.id]);
}

/**
 * Registers the storage adapter conformance suite: numbered sections that drive the adapter exactly
 * as Tidings' core does (states from the lifecycle plans), and through real `Tidings` instances.
 * `factory({ key })` must return adapters over the same data for the same key (two handles are two
 * brokers on one database; an in-process adapter may return the same instance) and independent
 * data for different keys. If the adapter has an `idempotencyStore()`, run `describeIdempotencyStore` on it too.
 */
export function describeStorageAdapter(name: string, factory: StorageFactory, options: StorageSuiteOptions = {}): void {
  const raceMessages = options.raceMessages ?? 10_000;
  const raceTimeoutMs = options.raceTimeoutMs ?? 60_000;
  const rollback = options.rollback ?? true;
  const isolation = options.isolation ?? true;
  const persistent = options.persistent ?? true;
  /** Why the basics failed, if they did: every other test is then skipped with that line instead of timing out. */
  let broken: string | undefined;

  describe(`storage adapter conformance: ${name}`, () => {
    let ctx: SuiteContext;
    beforeEach((t) => {
      if (broken !== undefined && !t.task.name.startsWith(BASICS)) t.skip(`skipped: the basics failed (${broken})`);
      ctx = new SuiteContext(factory);
    });
    afterEach(() => ctx?.dispose());

    // First, and quick: an adapter that cannot do this would fail every section after a wait for its race timeouts.
    it(`${BASICS}: opens, records a subscription, stores, leases, acks and closes, each within 5 s`, async () => {
      try {
        const step = <T>(what: string, work: Promise<T>) =>
          Promise.race([
            work,
            new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not settle within 5 s`)), 5_000).unref()),
          ]).catch((error: unknown) => {
            throw new Error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
          });
        const d = await step('open and declareSubscription', ctx.driver('at-least-once'));
        expect(await step('store', d.store(['basic'], T0))).toEqual([{ id: 'basic', duplicate: false }]);
        const leased = await step('lease', d.lease(T0));
        expect(leased.map((m) => m.id)).toEqual(['basic']);
        expect(await step('settle', d.ack(leased, T0))).toEqual(['basic']);
        await step('close', d.storage.close());
      } catch (error) {
        broken = error instanceof Error ? error.message.split('\n')[0] : String(error);
        throw error;
      }
    });

    describe.each(LIFECYCLES)('1. lifecycle: %s', (lifecycle) => {
      const table = lifecycleTables[lifecycle];

      it(`stores a batch in the state its machine stores in (${table.storedState}), acking each id in order`, async () => {
        const d = await ctx.driver(lifecycle);
        const ids = idRange('m', 3);
        expect(await d.store(ids, T0)).toEqual(ids.map((id) => ({ id, duplicate: false })));
        expect(await d.counts()).toEqual({ [table.storedState]: 3 });
        const held = await d.peek(table.storedState, 10);
        expect(sorted(held.map((m) => m.id))).toEqual(ids);
        for (const m of held) {
          expect(m).toMatchObject({ topic: d.topic, body: bodyOf(m.id), state: table.storedState, deliveries: 0, availableAt: T0, createdAt: T0 });
        }
      });

      if (lifecycle === 'at-most-once') {
        it('deletes messages as it hands them out, and never hands them out again', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(idRange('m', 3), T0);
          const leased = await d.lease(T0, { token: 'tok' });
          expect(sorted(leased.map((m) => m.id))).toEqual(idRange('m', 3));
          for (const m of leased) expect(m).toMatchObject({ topic: d.topic, body: bodyOf(m.id), deliveries: 1 });
          expect(await d.counts()).toEqual({});
          expect(await d.lease(T0 + HOUR)).toEqual([]);
        });
      } else {
        it('keeps a leased message under its lease until the consumer settles it, then removes it', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(idRange('m', 3), T0);
          const leased = await d.lease(T0, { token: 'tok', leaseMs: 1_000 });
          expect(sorted(leased.map((m) => m.id))).toEqual(idRange('m', 3));
          for (const m of leased) {
            expect(m).toMatchObject({ topic: d.topic, body: bodyOf(m.id), state: 'leased', deliveries: 1, leaseToken: 'tok', leaseUntil: T0 + 1_000 });
          }
          expect(await d.counts()).toEqual({ leased: 3 });
          expect(await d.lease(T0)).toEqual([]);
          expect(sorted(await d.ack(leased, T0))).toEqual(idRange('m', 3));
          expect(await d.counts()).toEqual({});
        });
      }

      if (table.allows('consumed', 'DELETE') && lifecycle !== 'at-least-once') {
        it('keeps a consumed message until its DELETE, which needs no lease token', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a', 'b'], T0);
          const leased = await d.lease(T0);
          expect(sorted(await d.settle(leased, 'leased', ['CONSUME'], T0))).toEqual(['a', 'b']);
          expect(await d.counts()).toEqual({ consumed: 2 });
          expect(sorted((await d.peek('consumed', 10)).map((m) => m.id))).toEqual(['a', 'b']);
          expect(sorted(await d.settle([{ id: 'a' }, { id: 'b' }], 'consumed', ['DELETE'], T0))).toEqual(['a', 'b']);
          expect(await d.counts()).toEqual({});
        });
      }

      it("delivers every message once through a real Tidings instance, along its machine's path", async () => {
        const tidings = await ctx.tidings();
        const name = ctx.topic();
        const topic = tidings.topic<number>(name, { ...semanticOf(lifecycle), leaseMs: 10_000 });
        const paths = new Map<string, string[]>();
        tidings.events.on('transition', (e) => {
          if (e.topic !== name) return;
          if (!paths.has(e.id)) paths.set(e.id, []);
          paths.get(e.id)!.push(`${e.from} -${e.event}-> ${e.to}`);
        });
        const got: number[] = [];
        const consumer = topic.consume((m) => void got.push(m.payload), { concurrency: 4, batchSize: 8, pollMs: 10 });
        const acks = [...(await topic.sendMany(Array.from({ length: 20 }, (_, i) => i))), await topic.send(20)];
        const expected = table.walk('sent', [...table.storeEvents, ...consumeEvents(lifecycle)]).map((s) => `${s.from} -${s.event}-> ${s.to}`);
        await waitFor('every message to finish its lifecycle', () => acks.every((a) => paths.get(a.id)?.length === expected.length));
        await consumer.stop();
        expect(got.sort((x, y) => x - y)).toEqual(Array.from({ length: 21 }, (_, i) => i));
        for (const a of acks) expect(paths.get(a.id)).toEqual(expected);
        expect(countsOf(await tidings.counts(name), name)).toEqual({});
      });
    });

    describe('2. dedup', () => {
      it('answers an id inside the dedup window as a duplicate with the same id, keeping the original', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['a', 'b'], T0);
        const again = await d.storage.store({
          topic: d.topic,
          state: d.table.storedState,
          messages: [
            { id: 'b', body: '"changed"', availableAt: T0 },
            { id: 'c', body: bodyOf('c'), availableAt: T0 },
          ],
          now: T0 + 1,
          dedupUntil: T0 + 1 + 300_000,
        });
        expect(again).toEqual([
          { id: 'b', duplicate: true },
          { id: 'c', duplicate: false },
        ]);
        expect(await d.counts()).toEqual({ acked: 3 });
        const b = (await d.peek('acked', 10)).find((m) => m.id === 'b');
        expect(b?.body).toBe(bodyOf('b'));
      });

      it('still answers duplicate after the message was consumed and deleted, while the window holds', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['a'], T0, { dedupMs: 1_000 });
        expect(await d.ack(await d.lease(T0), T0)).toEqual(['a']);
        expect(await d.counts()).toEqual({});
        expect(await d.store(['a'], T0 + 999)).toEqual([{ id: 'a', duplicate: true }]);
        expect(await d.counts()).toEqual({});
      });

      it('accepts the id again once the window has passed, even before a purge', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['a'], T0, { dedupMs: 1_000 });
        await d.ack(await d.lease(T0), T0);
        expect(await d.store(['a'], T0 + 1_001)).toEqual([{ id: 'a', duplicate: false }]);
        expect(await d.counts()).toEqual({ acked: 1 });
      });

      it('holds an id while now < dedupUntil and frees it at now == dedupUntil, where a new store opens a new window', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['a'], T0, { dedupMs: 1_000 });
        expect(await d.ack(await d.lease(T0), T0)).toEqual(['a']);
        expect(await d.store(['a'], T0 + 999)).toEqual([{ id: 'a', duplicate: true }]);
        expect(await d.store(['a'], T0 + 1_000, { dedupMs: 1_000 })).toEqual([{ id: 'a', duplicate: false }]);
        expect(await d.ack(await d.lease(T0 + 1_000), T0 + 1_000)).toEqual(['a']);
        // The store at T0 + 1 000 opened a window until T0 + 2 000, with the same boundary.
        expect(await d.store(['a'], T0 + 1_999)).toEqual([{ id: 'a', duplicate: true }]);
        expect(await d.store(['a'], T0 + 2_000)).toEqual([{ id: 'a', duplicate: false }]);
        expect(await d.counts()).toEqual({ acked: 1 });
      });

      it('frees an id whose window has passed once purged, and keeps ids whose window holds', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['short'], T0, { dedupMs: 1_000 });
        await d.store(['long'], T0, { dedupMs: 10_000 });
        await d.ack(await d.lease(T0), T0);
        // Only short's dedup record has expired; both messages were deleted by the ack.
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 2_000 })).toBe(1);
        expect(await d.store(['short', 'long'], T0 + 2_000)).toEqual([
          { id: 'short', duplicate: false },
          { id: 'long', duplicate: true },
        ]);
      });

      it.each(['at-least-once', 'exactly-once/end-to-end'] as const)(
        'answers an id repeated inside one batch as a duplicate of its first occurrence (%s)',
        async (lifecycle) => {
          const d = await ctx.driver(lifecycle);
          expect(await d.store(['a', 'b', 'a'], T0)).toEqual([
            { id: 'a', duplicate: false },
            { id: 'b', duplicate: false },
            { id: 'a', duplicate: true },
          ]);
          expect(await d.counts()).toEqual({ [d.table.storedState]: 2 });
        },
      );

      it('answers an id it still holds as a duplicate even without a dedup window', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a'], T0);
        expect(await d.store(['a'], T0 + 1)).toEqual([{ id: 'a', duplicate: true }]);
        expect(await d.counts()).toEqual({ acked: 1 });
      });

      it('forgets an id once its message is deleted when no dedup window was asked for', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a'], T0);
        await d.ack(await d.lease(T0), T0);
        expect(await d.store(['a'], T0 + 1)).toEqual([{ id: 'a', duplicate: false }]);
      });

      it('keeps ids per topic: the same id in two topics is two messages', async () => {
        const key = ctx.key();
        const one = await ctx.driver('exactly-once/end-to-end', { key });
        const two = await ctx.driver('exactly-once/end-to-end', { key });
        expect(await one.store(['a'], T0)).toEqual([{ id: 'a', duplicate: false }]);
        expect(await two.store(['a'], T0)).toEqual([{ id: 'a', duplicate: false }]);
        expect(await one.counts()).toEqual({ acked: 1 });
        expect(await two.counts()).toEqual({ acked: 1 });
      });

      it('stores each id once when two brokers store the same ids at once', async () => {
        const key = ctx.key();
        const topic = ctx.topic();
        const a = await ctx.driver('exactly-once/end-to-end', { key, topic });
        const b = await ctx.driver('exactly-once/end-to-end', { key, topic });
        const ids = idRange('m', 200);
        const storeAll = async (d: TopicDriver, order: string[]) => {
          const out = [];
          for (let i = 0; i < order.length; i += 50) out.push(...(await d.store(order.slice(i, i + 50), T0)));
          return out;
        };
        const results = (await Promise.all([storeAll(a, ids), storeAll(b, [...ids].reverse())])).flat();
        const stored = results.filter((r) => !r.duplicate).map((r) => r.id);
        expect(sorted(stored)).toEqual(sorted(ids));
        expect(results).toHaveLength(400);
        expect(await a.counts()).toEqual({ acked: 200 });
      });

      it('answers a resend of a producer id through Tidings with the original ack, and delivers it once', async () => {
        const tidings = await ctx.tidings();
        const topic = tidings.topic<string>(ctx.topic(), { semantic: 'exactly-once', scope: 'end-to-end' });
        expect(await topic.send('first', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: false });
        expect(await topic.send('second', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: true });
        const got: string[] = [];
        const consumer = topic.consume((m) => void got.push(m.payload), { pollMs: 10 });
        await waitFor('the message to be consumed', () => got.length === 1);
        expect(await topic.send('third', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: true });
        await sleep(100);
        await consumer.stop();
        expect(got).toEqual(['first']);
      });
    });

    describe('3. leasing under concurrency', () => {
      it.each(['at-least-once', 'at-most-once'] as const)(
        `never hands one message to two leases and misses none while two brokers race over ${raceMessages} messages (%s)`,
        async (lifecycle) => {
          const key = ctx.key();
          const topic = ctx.topic();
          const brokers = [await ctx.driver(lifecycle, { key, topic }), await ctx.driver(lifecycle, { key, topic })];
          const ids = idRange('r', raceMessages);
          const limit = 50;
          const holding = new Set<string>();
          const done = new Set<string>();
          const doubles: string[] = [];
          const oversized: number[] = [];
          const lostSettles: string[] = [];
          let producing = true;
          const deadline = Date.now() + raceTimeoutMs - 5_000;

          const producer = (async () => {
            for (let i = 0; i < ids.length; i += 500) await brokers[(i / 500) % 2]!.store(ids.slice(i, i + 500), T0);
            producing = false;
          })();
          const worker = async (d: TopicDriver) => {
            while (done.size < ids.length && Date.now() < deadline) {
              const batch = await d.lease(T0, { limit, leaseMs: HOUR });
              if (batch.length > limit) oversized.push(batch.length);
              if (batch.length === 0) {
                await sleep(producing ? 0 : 1);
                continue;
              }
              for (const m of batch) {
                if (holding.has(m.id) || done.has(m.id)) doubles.push(m.id);
                holding.add(m.id);
              }
              if (lifecycle === 'at-most-once') {
                for (const m of batch) {
                  holding.delete(m.id);
                  done.add(m.id);
                }
                continue;
              }
              // A first delivery at the head of a batch is nacked, so releases interleave with leases and settles.
              const nacked = batch[0]!.deliveries === 1 ? [batch[0]!] : [];
              for (const m of nacked) {
                // Released messages may be leased again, so they stop counting as held before the release.
                holding.delete(m.id);
                if ((await d.nack(m, T0, { maxDeliveries: 100 })).length !== 1) lostSettles.push(m.id);
              }
              const acked = batch.slice(nacked.length);
              const won = new Set(await d.ack(acked, T0));
              for (const m of acked) {
                if (won.has(m.id)) done.add(m.id);
                else lostSettles.push(m.id);
                holding.delete(m.id);
              }
            }
          };
          await Promise.all(brokers.flatMap((d) => [worker(d), worker(d), worker(d), worker(d)]));
          await producer;

          expect(doubles).toEqual([]);
          expect(oversized).toEqual([]);
          expect(lostSettles).toEqual([]);
          expect(done.size).toBe(ids.length);
          for (const d of brokers) expect(await d.lease(T0 + HOUR)).toEqual([]);
          expect(await brokers[0]!.counts()).toEqual({});
        },
        raceTimeoutMs,
      );

      it('lets a settle with a stale lease token lose to the lease that replaced it', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a'], T0);
        const [first] = await d.lease(T0, { leaseMs: 1_000, token: 'old' });
        expect((await d.expire(T0 + 2_000)).requeued.map((r) => r.id)).toEqual(['a']);
        const [second] = await d.lease(T0 + 2_000, { token: 'new' });
        expect(second).toMatchObject({ id: 'a', deliveries: 2, leaseToken: 'new' });
        expect(await d.ack([first!], T0 + 2_001)).toEqual([]);
        expect(await d.counts()).toEqual({ leased: 1 });
        expect(await d.ack([second!], T0 + 2_001)).toEqual(['a']);
      });

      it('lets a release or an extendLease with a stale lease token lose', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a'], T0);
        const [first] = await d.lease(T0, { leaseMs: 1_000, token: 'old' });
        await d.expire(T0 + 2_000);
        const [second] = await d.lease(T0 + 2_000, { token: 'new' });
        expect(await d.nack(first!, T0 + 2_001)).toEqual([]);
        expect(await d.extendLease({ id: 'a', leaseToken: 'old' }, T0 + HOUR)).toBe(false);
        expect(await d.counts()).toEqual({ leased: 1 });
        expect(await d.extendLease(second!, T0 + HOUR)).toBe(true);
      });

      it('lets exactly one of two brokers win when both settle the same leases at once', async () => {
        const key = ctx.key();
        const topic = ctx.topic();
        const a = await ctx.driver('at-least-once', { key, topic });
        const b = await ctx.driver('at-least-once', { key, topic });
        const ids = idRange('m', 100);
        await a.store(ids, T0);
        const leased = await a.lease(T0, { limit: 100 });
        const [wonA, wonB] = await Promise.all([a.ack(leased, T0), b.ack([...leased].reverse(), T0)]);
        expect(sorted([...wonA, ...wonB])).toEqual(sorted(ids));
        expect(await a.counts()).toEqual({});
      });

      it('requeues each expired lease once when two brokers sweep at once', async () => {
        const key = ctx.key();
        const topic = ctx.topic();
        const a = await ctx.driver('at-least-once', { key, topic });
        const b = await ctx.driver('at-least-once', { key, topic });
        const ids = idRange('m', 200);
        await a.store(ids, T0);
        await a.lease(T0, { limit: 200, leaseMs: 1_000 });
        const results = await Promise.all([a.expire(T0 + 2_000), b.expire(T0 + 2_000)]);
        expect(sorted(results.flatMap((r) => r.requeued.map((x) => x.id)))).toEqual(sorted(ids));
        expect(results.flatMap((r) => r.dead)).toEqual([]);
        expect(await a.counts()).toEqual({ acked: 200 });
      });

      it('dead-letters each expired lease once, with one copy, when two brokers sweep at once', async () => {
        const key = ctx.key();
        const topic = ctx.topic();
        const a = await ctx.driver('at-least-once', { key, topic });
        const b = await ctx.driver('at-least-once', { key, topic });
        const dlq = await ctx.driver('at-least-once', { key, topic: `${topic}.dead` });
        const ids = idRange('m', 200);
        await a.store(ids, T0);
        await a.lease(T0, { limit: 200, leaseMs: 1_000 });
        const sweep = { maxDeliveries: 1, deadLetter: deadLetterOf(dlq.topic) };
        const results = await Promise.all([a.expire(T0 + 2_000, sweep), b.expire(T0 + 2_000, sweep)]);
        expect(sorted(results.flatMap((r) => r.dead.map((x) => x.id)))).toEqual(sorted(ids));
        expect(await a.counts()).toEqual({ dead: 200 });
        expect(await dlq.counts()).toEqual({ acked: 200 });
      });
    });

    describe('4. lease expiry', () => {
      describe.each(LEASED_LIFECYCLES)('%s', (lifecycle) => {
        it('requeues an expired lease with its deliveries kept, and leaves leases before their deadline alone', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a', 'b'], T0);
          const [early] = await d.lease(T0, { limit: 1, leaseMs: 1_000 });
          const [late] = await d.lease(T0 + 500, { limit: 1, leaseMs: 1_000 });
          expect(await d.expire(T0 + 999)).toEqual({ requeued: [], dead: [] });
          expect(await d.expire(T0 + 1_200)).toEqual({ requeued: [{ id: early!.id, deliveries: 1 }], dead: [] });
          expect(await d.counts()).toEqual({ [d.retryState]: 1, leased: 1 });
          const again = await d.lease(T0 + 1_200);
          expect(again).toHaveLength(1);
          expect(again[0]).toMatchObject({ id: early!.id, deliveries: 2, body: bodyOf(early!.id) });
          expect(await d.expire(T0 + 1_600)).toEqual({ requeued: [{ id: late!.id, deliveries: 1 }], dead: [] });
        });

        it('dead-letters an expired lease once deliveries reach maxDeliveries, copying it into the dead-letter topic in the given state', async () => {
          const key = ctx.key();
          const d = await ctx.driver(lifecycle, { key });
          const dlq = await ctx.driver('at-least-once', { key, topic: `${d.topic}.dead` });
          const sweep = { maxDeliveries: 2, deadLetter: deadLetterOf(dlq.topic) };
          await d.store(['a'], T0);
          await d.lease(T0, { leaseMs: 1_000 });
          expect(await d.expire(T0 + 1_001, sweep)).toEqual({ requeued: [{ id: 'a', deliveries: 1 }], dead: [] });
          await d.lease(T0 + 1_001, { leaseMs: 1_000 });
          expect(await d.expire(T0 + 2_002, sweep)).toEqual({ requeued: [], dead: [{ id: 'a', deliveries: 2 }] });
          expect(await d.counts()).toEqual({ dead: 1 });
          expect(await d.peek('dead', 10)).toMatchObject([{ id: 'a', state: 'dead', deliveries: 2, body: bodyOf('a') }]);
          expect(await dlq.counts()).toEqual({ acked: 1 });
          const [copy] = await dlq.lease(T0 + 2_002);
          expect(copy).toMatchObject({ id: 'a', topic: dlq.topic, body: bodyOf('a'), deliveries: 1 });
        });

        it('dead-letters without a copy when no dead-letter topic is given', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a'], T0);
          await d.lease(T0, { leaseMs: 1_000 });
          expect(await d.expire(T0 + 1_001, { maxDeliveries: 1 })).toEqual({ requeued: [], dead: [{ id: 'a', deliveries: 1 }] });
          expect(holding(await d.storage.counts())).toEqual([d.topic]);
        });

        it('extends a live lease so it outlives its first deadline', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a'], T0);
          const [m] = await d.lease(T0, { leaseMs: 1_000 });
          expect(await d.extendLease(m!, T0 + 5_000)).toBe(true);
          expect(await d.expire(T0 + 2_000)).toEqual({ requeued: [], dead: [] });
          expect(await d.counts()).toEqual({ leased: 1 });
          expect((await d.expire(T0 + 5_001)).requeued).toEqual([{ id: 'a', deliveries: 1 }]);
        });

        it('extends a lease past its deadline that no sweep has taken back yet (nobody else holds it), but not one a sweep requeued', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a', 'b'], T0);
          const [a, b] = await d.lease(T0, { leaseMs: 1_000 });
          expect(await d.extendLease(a!, T0 + 9_000, { now: T0 + 2_000 })).toBe(true);
          expect((await d.expire(T0 + 3_000)).requeued).toEqual([{ id: b!.id, deliveries: 1 }]);
          expect(await d.extendLease(b!, T0 + 9_000, { now: T0 + 3_000 })).toBe(false);
          expect(await d.counts()).toEqual({ leased: 1, [d.retryState]: 1 });
        });

        it('refuses to extend a lease once its message was settled, or one it never made', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a'], T0);
          const leased = await d.lease(T0);
          await d.ack(leased, T0);
          expect(await d.extendLease(leased[0]!, T0 + HOUR)).toBe(false);
          expect(await d.extendLease({ id: 'nope', leaseToken: 'nope' }, T0 + HOUR)).toBe(false);
        });
      });
    });

    describe('5. nack and backoff', () => {
      describe.each(LEASED_LIFECYCLES)('%s', (lifecycle) => {
        it('puts a nacked message back with its deliveries kept, and does not lease it before its availableAt', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a'], T0);
          const [m] = await d.lease(T0);
          expect(await d.nack(m!, T0, { delayMs: 500 })).toEqual(['a']);
          expect(await d.counts()).toEqual({ [d.retryState]: 1 });
          expect(await d.lease(T0 + 499)).toEqual([]);
          expect(await d.lease(T0 + 500)).toMatchObject([{ id: 'a', deliveries: 2 }]);
        });

        it('keeps the error of each nack with the message, through redelivery, dead-lettering and its dead-letter copy', async () => {
          const key = ctx.key();
          const d = await ctx.driver(lifecycle, { key });
          const dlq = await ctx.driver('at-least-once', { key, topic: `${d.topic}.dead` });
          await d.store(['a'], T0);
          const [first] = await d.lease(T0);
          expect(first!.lastError).toBeUndefined();
          await d.nack(first!, T0, { error: 'Error: first failure' });
          const [second] = await d.lease(T0);
          expect(second).toMatchObject({ id: 'a', deliveries: 2, lastError: 'Error: first failure' });
          await d.nack(second!, T0, { maxDeliveries: 2, error: 'Error: second failure\n    at handler (orders.ts:12:5)', deadLetter: deadLetterOf(dlq.topic) });
          expect(await d.peek('dead', 10)).toMatchObject([{ id: 'a', lastError: 'Error: second failure\n    at handler (orders.ts:12:5)' }]);
          expect(await dlq.peek('acked', 10)).toMatchObject([{ id: 'a', lastError: 'Error: second failure\n    at handler (orders.ts:12:5)' }]);
        });

        it('keeps other messages leasable while a nacked one waits out its backoff', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['a', 'b'], T0);
          const [m] = await d.lease(T0, { limit: 1 });
          await d.nack(m!, T0, { delayMs: HOUR });
          const other = await d.lease(T0 + 1);
          expect(other.map((x) => x.id)).toEqual([m!.id === 'a' ? 'b' : 'a']);
        });

        it('dead-letters a nacked message once the machine says its deliveries are used up', async () => {
          const key = ctx.key();
          const d = await ctx.driver(lifecycle, { key });
          const dlq = await ctx.driver('at-least-once', { key, topic: `${d.topic}.dead` });
          await kill(d, ['a'], T0, deadLetterOf(dlq.topic));
          expect(await d.counts()).toEqual({ dead: 1 });
          expect(await dlq.peek('acked', 10)).toMatchObject([{ id: 'a', body: bodyOf('a'), deliveries: 0 }]);
        });
      });
    });

    describe('6. dead-letter and redrive', () => {
      describe.each(LEASED_LIFECYCLES)('%s', (lifecycle) => {
        it('lists dead messages with their deliveries', async () => {
          const d = await ctx.driver(lifecycle);
          await kill(d, ['a', 'b'], T0);
          const dead = await d.peek('dead', 10);
          expect(sorted(dead.map((m) => m.id))).toEqual(['a', 'b']);
          for (const m of dead) expect(m).toMatchObject({ topic: d.topic, state: 'dead', deliveries: 1, body: bodyOf(m.id) });
        });

        it('redrives only the given ids, as new lifecycles with deliveries reset', async () => {
          const d = await ctx.driver(lifecycle);
          await kill(d, ['a', 'b', 'c'], T0);
          expect(await d.redrive(T0 + 10, ['a'])).toBe(1);
          expect(await d.counts()).toEqual({ dead: 2, [d.table.storedState]: 1 });
          expect(await d.lease(T0 + 10)).toMatchObject([{ id: 'a', deliveries: 1, body: bodyOf('a') }]);
        });

        it('redrives every dead message when no ids are given, and then finds none', async () => {
          const d = await ctx.driver(lifecycle);
          await kill(d, ['a', 'b', 'c'], T0);
          expect(await d.redrive(T0 + 10)).toBe(3);
          expect(await d.redrive(T0 + 10)).toBe(0);
          expect(await d.counts()).toEqual({ [d.table.storedState]: 3 });
        });

        it('leaves ids alone that are not dead', async () => {
          const d = await ctx.driver(lifecycle);
          await kill(d, ['a'], T0);
          await d.store(['alive'], T0);
          expect(await d.redrive(T0 + 10, ['alive', 'unknown'])).toBe(0);
          expect(await d.counts()).toEqual({ dead: 1, [d.table.storedState]: 1 });
        });
      });

      it('dead-letters through Tidings after maxDeliveries, and redrives the message back to a consumer', async () => {
        const tidings = await ctx.tidings();
        const name = ctx.topic();
        const topic = tidings.topic<string>(name, {
          semantic: 'at-least-once',
          maxDeliveries: 2,
          deadLetter: `${name}.dead`,
          backoff: { initialMs: 1, maxMs: 2 },
        });
        let failing = true;
        const attempts: number[] = [];
        const consumed: string[] = [];
        const consumer = topic.consume(
          (m) => {
            attempts.push(m.attempt);
            if (failing) throw new Error('failing on purpose');
            consumed.push(m.payload);
          },
          { pollMs: 10 },
        );
        const { id } = await topic.send('x');
        await waitFor('the message to be dead-lettered', async () => (await tidings.deadLetters(name)).length === 1);
        expect(attempts).toEqual([1, 2]);
        expect(await tidings.deadLetters(name)).toMatchObject([{ id, deliveries: 2 }]);
        expect(countsOf(await tidings.counts(), `${name}.dead`)).toEqual({ acked: 1 });
        failing = false;
        expect(await tidings.redrive(name)).toBe(1);
        await waitFor('the redriven message to be consumed', () => consumed.length === 1);
        await consumer.stop();
        expect(attempts).toEqual([1, 2, 1]);
        expect(countsOf(await tidings.counts(name), name)).toEqual({});
      });
    });

    describe('7. delayed delivery', () => {
      describe.each(LIFECYCLES)('%s', (lifecycle) => {
        it('does not hand out a message before its availableAt, and does from that instant', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['later'], T0, { availableAt: T0 + 1_000 });
          expect(await d.lease(T0 + 999)).toEqual([]);
          expect(await d.lease(T0 + 1_000)).toMatchObject([{ id: 'later', availableAt: T0 + 1_000 }]);
        });

        it('does not let a delayed message hold back ready ones stored after it', async () => {
          const d = await ctx.driver(lifecycle);
          await d.store(['later'], T0, { availableAt: T0 + HOUR });
          await d.store(['now'], T0);
          expect((await d.lease(T0)).map((m) => m.id)).toEqual(['now']);
        });
      });

      it('delivers a delayed send through Tidings no earlier than its delay', async () => {
        const tidings = await ctx.tidings();
        const topic = tidings.topic(ctx.topic(), { semantic: 'at-least-once' });
        let deliveredAt = 0;
        const consumer = topic.consume(() => void (deliveredAt = Date.now()), { pollMs: 10 });
        const sentAt = Date.now();
        await topic.send('x', { delayMs: 300 });
        await waitFor('the delayed message', () => deliveredAt > 0);
        await consumer.stop();
        expect(deliveredAt - sentAt).toBeGreaterThanOrEqual(300);
      });
    });

    describe('8. retention purge', () => {
      it('removes rows in the given states created before `before`, and nothing else', async () => {
        const d = await ctx.driver('at-least-once');
        await kill(d, ['old-1', 'old-2'], T0);
        await kill(d, ['new'], T0 + 10_000);
        await d.store(['alive'], T0);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 20_000, before: T0 + 5_000, states: ['dead'] })).toBe(2);
        expect(await d.counts()).toEqual({ dead: 1, acked: 1 });
        expect((await d.peek('dead', 10)).map((m) => m.id)).toEqual(['new']);
      });

      it('removes no rows without `before`, and only the named topic when one is given', async () => {
        const key = ctx.key();
        const one = await ctx.driver('at-least-once', { key });
        const two = await ctx.driver('at-least-once', { key });
        await kill(one, ['a'], T0);
        await kill(two, ['a'], T0);
        expect(await one.storage.purge({ now: T0 + HOUR, states: ['dead'] })).toBe(0);
        expect(await one.storage.purge({ topic: one.topic, now: T0 + HOUR, before: T0 + 1, states: ['dead'] })).toBe(1);
        expect(await one.counts()).toEqual({});
        expect(await two.counts()).toEqual({ dead: 1 });
      });

      it('removes consumed rows exactly-once left behind', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['a'], T0);
        await d.settle(await d.lease(T0), 'leased', ['CONSUME'], T0);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + HOUR, before: T0 + 1, states: ['consumed'] })).toBe(1);
        expect(await d.counts()).toEqual({});
      });

      it('drops dedup records whose window has passed and counts them, keeping the rest', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['a', 'b'], T0, { dedupMs: 1_000 });
        await d.store(['c'], T0, { dedupMs: HOUR });
        await d.ack(await d.lease(T0), T0);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 500 })).toBe(0);
        // a's and b's records have expired, c's holds; the messages themselves were deleted by the ack.
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 2_000 })).toBe(2);
        expect(await d.store(['a', 'b', 'c'], T0 + 2_000)).toEqual([
          { id: 'a', duplicate: false },
          { id: 'b', duplicate: false },
          { id: 'c', duplicate: true },
        ]);
      });
    });

    describe('8. retention purge: what it leaves alone', () => {
      it('drops a dedup record at now == dedupUntil, not before', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['a'], T0, { dedupMs: 1_000 });
        await d.ack(await d.lease(T0), T0);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 999 })).toBe(0);
        expect(await d.store(['a'], T0 + 999)).toEqual([{ id: 'a', duplicate: true }]);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 1_000 })).toBe(1);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 1_000 })).toBe(0);
      });

      it.each([
        ['without states', { before: T0 + HOUR }],
        ['with empty states', { before: T0 + HOUR, states: [] }],
        ['with states but without before', { states: ['dead', 'acked'] as MessageState[] }],
      ])('removes no message rows %s, only the dedup records whose window has passed, and counts just those', async (_, rows) => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await kill(d, ['dead'], T0);
        await d.store(['gone-1', 'gone-2'], T0, { dedupMs: 1_000 });
        await d.ack(await d.lease(T0), T0);
        await d.store(['held'], T0);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 2_000, ...rows })).toBe(2);
        expect(await d.counts()).toEqual({ dead: 1, acked: 1 });
        // The records of dead and held (windows until T0 + 300 000) were kept.
        expect(await d.store(['dead', 'held'], T0 + 2_000)).toEqual([
          { id: 'dead', duplicate: true },
          { id: 'held', duplicate: true },
        ]);
      });

      it('drops the expired dedup records of every topic when no topic is given', async () => {
        const key = ctx.key();
        const one = await ctx.driver('exactly-once/end-to-end', { key });
        const two = await ctx.driver('exactly-once/end-to-end', { key });
        for (const d of [one, two]) {
          await d.store(['a'], T0, { dedupMs: 1_000 });
          await d.ack(await d.lease(T0), T0);
        }
        expect(await one.storage.purge({ now: T0 + 2_000 })).toBe(2);
      });

      it('leaves old rows in every state it was not asked to remove: waiting, delayed, leased, consumed, dead', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['waiting'], T0);
        await d.store(['delayed'], T0, { availableAt: T0 + 10 });
        await d.store(['leased', 'consumed', 'dead'], T0);
        const held = new Map((await d.lease(T0, { limit: 10, leaseMs: HOUR })).map((m) => [m.id, m]));
        expect(sorted(held.keys())).toEqual(['consumed', 'dead', 'leased', 'waiting']);
        // 'waiting' goes back to wait, 'consumed' is consumed and kept, 'dead' dies, 'leased' stays leased.
        expect(await d.nack(held.get('waiting')!, T0)).toEqual(['waiting']);
        expect(await d.settle([held.get('consumed')!], 'leased', ['CONSUME'], T0)).toEqual(['consumed']);
        expect(await d.nack(held.get('dead')!, T0, { maxDeliveries: 1 })).toEqual(['dead']);
        expect(await d.counts()).toEqual({ [d.ready]: 2, leased: 1, consumed: 1, dead: 1 });
        // Every row is old; asked for one state at a time, a purge takes that state's rows and nothing else.
        const purge = (state: MessageState) => d.storage.purge({ topic: d.topic, now: T0 + 2 * HOUR, before: T0 + HOUR, states: [state] });
        expect(await purge('dead')).toBe(1);
        expect(await d.counts()).toEqual({ [d.ready]: 2, leased: 1, consumed: 1 });
        expect(await purge('consumed')).toBe(1);
        expect(await d.counts()).toEqual({ [d.ready]: 2, leased: 1 });
        expect(sorted((await d.peek(d.ready, 10)).map((m) => m.id))).toEqual(['delayed', 'waiting']);
        expect((await d.peek('leased', 10)).map((m) => m.id)).toEqual(['leased']);
      });

      it('keeps a row created at exactly `before`: only rows created before it go', async () => {
        const d = await ctx.driver('at-least-once');
        await kill(d, ['edge'], T0);
        expect(await d.storage.purge({ topic: d.topic, now: T0 + HOUR, before: T0, states: ['dead'] })).toBe(0);
        expect(await d.counts()).toEqual({ dead: 1 });
        expect(await d.storage.purge({ topic: d.topic, now: T0 + HOUR, before: T0 + 1, states: ['dead'] })).toBe(1);
      });
    });

    describe('9. counts and peek', () => {
      it('counts messages by state and topic, leaving out states with none', async () => {
        const key = ctx.key();
        const one = await ctx.driver('at-least-once', { key });
        const two = await ctx.driver('exactly-once/broker', { key });
        await one.store(['a', 'b', 'c'], T0);
        await one.lease(T0, { limit: 1 });
        await two.store(['a'], T0);
        const only = await one.storage.counts(one.topic);
        expect(holding(only)).toEqual([one.topic]);
        expect(copiesOf(only, one.topic)).toEqual({ acked: 2, leased: 1 });
        const all = await one.storage.counts();
        expect(copiesOf(all, one.topic)).toEqual({ acked: 2, leased: 1 });
        expect(copiesOf(all, two.topic)).toEqual({ stored: 1 });
      });

      it('peeks at messages in one state, up to the limit, without changing them', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(idRange('m', 5), T0);
        const some = await d.peek('acked', 3);
        expect(some).toHaveLength(3);
        for (const m of some) {
          expect(m).toMatchObject({ topic: d.topic, body: bodyOf(m.id), state: 'acked', deliveries: 0, availableAt: T0, createdAt: T0 });
        }
        expect(await d.peek('leased', 10)).toEqual([]);
        expect(await d.counts()).toEqual({ acked: 5 });
        const [leased] = await d.lease(T0, { limit: 1, token: 'tok', leaseMs: 1_000 });
        expect(await d.peek('leased', 10)).toMatchObject([{ id: leased!.id, state: 'leased', deliveries: 1, leaseToken: 'tok', leaseUntil: T0 + 1_000 }]);
      });

      it('answers for a topic it has never seen with no counts and no messages', async () => {
        const storage = await ctx.storage();
        const topic = ctx.topic();
        expect(copiesOf(await storage.counts(topic), topic)).toEqual({});
        expect(await storage.peek({ topic, subscription: 'default', state: 'dead', limit: 10 })).toEqual([]);
      });
    });

    describe('10. closing', () => {
      it('closes twice, also both at once, without error', async () => {
        const storage = await ctx.storage();
        await Promise.all([storage.close(), storage.close()]);
        await storage.close();
      });

      it('rejects every operation after close with ClosedError instead of hanging', async () => {
        const storage = await ctx.storage();
        const topic = ctx.topic();
        const item = { id: 'a', leaseToken: 'tok' };
        await storage.close();
        const subscription = 'default';
        const operations: Record<string, () => unknown> = {
          store: () => storage.store({ topic, state: 'acked', messages: [{ id: 'a', body: '1', availableAt: T0 }], now: T0 }),
          lease: () =>
            storage.lease({ topic, subscription, from: 'acked', to: 'leased', limit: 1, now: T0, leaseUntil: T0 + 1, leaseToken: 'tok', remove: false }),
          extendLease: () => storage.extendLease({ topic, subscription, state: 'leased', item, leaseUntil: T0 + 1, now: T0 }),
          settle: () => storage.settle({ topic, subscription, from: 'leased', to: 'deleted', items: [item], remove: true, now: T0 }),
          release: () => storage.release({ topic, subscription, from: 'leased', to: 'acked', items: [{ ...item, availableAt: T0 }], now: T0 }),
          expire: () => storage.expire({ topic, subscription, from: 'leased', to: 'acked', now: T0 }),
          redrive: () => storage.redrive({ topic, subscription, from: 'dead', to: 'acked', now: T0 }),
          counts: () => storage.counts(topic),
          peek: () => storage.peek({ topic, subscription, state: 'dead', limit: 1 }),
          purge: () => storage.purge({ now: T0 }),
          transaction: () => storage.transaction(async () => 1),
          declareTopic: () => storage.declareTopic({ name: topic, lifecycle: 'at-least-once', maxDeliveries: 5, declaredAt: T0 }),
          topics: () => storage.topics(),
          declareSubscription: () => storage.declareSubscription({ topic, name: subscription, maxDeliveries: 5, declaredAt: T0 }),
          subscriptions: () => storage.subscriptions(topic),
          removeSubscription: () => storage.removeSubscription(topic, subscription),
        };
        const wrong: string[] = [];
        for (const [op, run] of Object.entries(operations)) {
          const error = await rejectionOf(run);
          if (!(error instanceof TidingsError) || error.code !== 'CLOSED') wrong.push(`${op}: ${String(error)}`);
        }
        expect(wrong).toEqual([]);
      });
    });

    describe('11. bad input', () => {
      it('stores an empty batch as a no-op that returns []', async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        expect(await d.store([], T0)).toEqual([]);
        expect(await d.counts()).toEqual({});
      });

      it('settles, releases, extends and redrives unknown ids as no-ops', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a'], T0);
        expect(await d.ack([{ id: 'nope', leaseToken: 'tok' }], T0)).toEqual([]);
        expect(await d.settle([], 'leased', ['CONSUME', 'DELETE'], T0)).toEqual([]);
        expect(
          await d.nack(
            {
              id: 'nope',
              topic: d.topic,
              subscription: d.subscription,
              body: '1',
              state: 'leased',
              deliveries: 1,
              availableAt: T0,
              createdAt: T0,
              leaseToken: 'tok',
            },
            T0,
          ),
        ).toEqual([]);
        expect(await d.extendLease({ id: 'nope', leaseToken: 'tok' }, T0 + 1)).toBe(false);
        expect(await d.redrive(T0, ['nope'])).toBe(0);
        expect(await d.counts()).toEqual({ acked: 1 });
      });

      it('leases nothing from an empty or unknown topic, nor with limit 0', async () => {
        const d = await ctx.driver('at-least-once');
        expect(await d.lease(T0)).toEqual([]);
        expect(await d.expire(T0)).toEqual({ requeued: [], dead: [] });
        await d.store(['a'], T0);
        expect(await d.lease(T0, { limit: 0 })).toEqual([]);
        expect(await d.counts()).toEqual({ acked: 1 });
      });

      it('keeps bodies byte for byte and ids of up to 200 characters of any kind, case-sensitive', async () => {
        const d = await ctx.driver('at-least-once');
        const ids = ['x'.repeat(200), 'ünïcødé ✓ 🚀', 'with space', 'a:b.c-d_e/f', 'quote\'"', 'ID-a', 'id-a'];
        const bodies = new Map(
          ids.map((id, i) => [id, i === 0 ? JSON.stringify('é✓'.repeat(50_000)) : JSON.stringify({ id, nested: [null, true, 1.5, '\u0000\n\t'] })]),
        );
        const results = await d.storage.store({
          topic: d.topic,
          state: 'acked',
          messages: ids.map((id) => ({ id, body: bodies.get(id)!, availableAt: T0 })),
          now: T0,
        });
        expect(results).toEqual(ids.map((id) => ({ id, duplicate: false })));
        const leased: StoredMessage[] = await d.lease(T0, { limit: 100 });
        expect(sorted(leased.map((m) => m.id))).toEqual(sorted(ids));
        for (const m of leased) expect(m.body).toBe(bodies.get(m.id));
      });
    });

    describe('12. transactions', () => {
      it('resolves with what the callback returns, committing what was written with its handle', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['a'], T0);
        const leased = await d.lease(T0);
        const result = await d.storage.transaction(async (tx) => {
          await d.store(['b'], T0, { tx });
          // A handler's ctx.extendLease runs inside its transaction; a single-connection database must not wait on itself.
          expect(await d.extendLease(leased[0]!, T0 + HOUR, { tx })).toBe(true);
          expect(await d.settle(leased, 'leased', ['CONSUME'], T0, tx)).toEqual(['a']);
          return 42;
        });
        expect(result).toBe(42);
        expect(await d.counts()).toEqual({ consumed: 1, stored: 1 });
      });

      it("passes the callback's rejection through", async () => {
        const storage = await ctx.storage();
        const boom = new Error('boom');
        await expect(
          storage.transaction(async () => {
            throw boom;
          }),
        ).rejects.toBe(boom);
      });

      it.skipIf(!rollback)('rolls back stores and settles made with its handle when the callback throws', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['a'], T0);
        const leased = await d.lease(T0);
        await expect(
          d.storage.transaction(async (tx) => {
            await d.store(['b'], T0, { tx });
            expect(await d.settle(leased, 'leased', ['CONSUME'], T0, tx)).toEqual(['a']);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        expect(await d.counts()).toEqual({ leased: 1 });
        expect(await d.settle(leased, 'leased', ['CONSUME'], T0)).toEqual(['a']);
      });

      it.skipIf(!rollback)("rolls back its own idempotency store's records made with the handle", async ({ skip }) => {
        const storage = await ctx.storage();
        const idempotency = storage.idempotencyStore?.();
        if (!idempotency) skip('the adapter has no idempotency store of its own');
        const topic = ctx.topic();
        await expect(
          storage.transaction(async (tx) => {
            expect(await idempotency!.record(topic, ['a'], T0 + HOUR, tx)).toEqual(['a']);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        expect([...(await idempotency!.seen(topic, ['a']))]).toEqual([]);
      });
    });

    describe('12. transactions: handles', () => {
      it('refuses a handle whose transaction has ended, committed or rolled back, with a StorageError, and writes nothing through it', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['a'], T0);
        const leased = await d.lease(T0, { leaseMs: 1_000 });
        const committed = await d.storage.transaction(async (tx) => tx);
        let rolledBack: unknown;
        await expect(
          d.storage.transaction(async (tx) => {
            rolledBack = tx;
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        const idempotency = d.storage.idempotencyStore?.();
        const wrong: string[] = [];
        for (const [when, tx] of Object.entries({ committed, 'rolled back': rolledBack })) {
          const operations: Record<string, () => unknown> = {
            store: () => d.store(['late'], T0, { tx }),
            settle: () => d.settle(leased, 'leased', ['CONSUME'], T0, tx),
            extendLease: () => d.extendLease(leased[0]!, T0 + HOUR, { tx }),
            ...(idempotency && { 'idempotency record': () => idempotency.record(d.topic, ['late'], T0 + HOUR, tx) }),
          };
          for (const [op, run] of Object.entries(operations)) {
            const error = await rejectionOf(run);
            if (!(error instanceof TidingsError) || error.code !== 'STORAGE_ERROR') wrong.push(`${op} after the transaction ${when}: ${String(error)}`);
          }
        }
        expect(wrong).toEqual([]);
        expect(await d.counts()).toEqual({ leased: 1 });
        expect(await d.peek('leased', 10)).toMatchObject([{ id: 'a', leaseUntil: T0 + 1_000 }]);
        if (idempotency) expect([...(await idempotency.seen(d.topic, ['late']))]).toEqual([]);
        expect(await d.settle(leased, 'leased', ['CONSUME'], T0)).toEqual(['a']);
      });

      it('completes, or refuses at once with TRANSACTION_HANDLE_REQUIRED, a call made inside a transaction without its handle; never hangs', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['held'], T0);
        const [held] = await d.lease(T0, { token: 'tok' });
        const operations: Record<string, () => Promise<unknown>> = {
          store: () => d.store(['inside'], T0),
          counts: () => d.storage.counts(d.topic),
          extendLease: () => d.extendLease(held!, T0 + HOUR),
          settle: () => d.settle([held!], 'leased', ['CONSUME'], T0),
          lease: () => d.lease(T0),
          transaction: () => d.storage.transaction(async () => 1),
        };
        const outcomes = await d.storage.transaction(async () => {
          const out: Record<string, Outcome<unknown>> = {};
          // A hang fails the test here, after 2 s, instead of at the test's timeout.
          for (const [op, run] of Object.entries(operations)) out[op] = await outcomeOf(run, 2_000);
          return out;
        });
        const wrong = Object.entries(outcomes)
          .filter(([, o]) => 'error' in o && (o.error as TidingsError)?.code !== 'TRANSACTION_HANDLE_REQUIRED')
          .map(([op, o]) => `${op}: ${String((o as { error: unknown }).error)}`);
        expect(wrong).toEqual([]);
        // What completed is done; what was refused left nothing behind.
        const expected = {
          store: [{ id: 'inside', duplicate: false }],
          extendLease: true,
          settle: ['held'],
          lease: [expect.objectContaining({ id: 'inside', deliveries: 1 })],
          transaction: 1,
        };
        for (const [op, value] of Object.entries(expected)) if ('value' in outcomes[op]!) expect(outcomes[op]!.value, op).toEqual(value);
        const stored = 'value' in outcomes.store! ? 1 : 0;
        const settled = 'value' in outcomes.settle! ? 1 : 0;
        const total = Object.values(await d.counts()).reduce((n, c) => n + (c ?? 0), 0);
        expect(total).toBe(1 + stored);
        expect((await d.peek('consumed', 10)).map((m) => m.id)).toEqual(settled ? ['held'] : []);
      });

      it("lets a second handle's conflicting store and settle lose to a transaction on the first that holds the same rows, waiting for it or failing with STORAGE_BUSY", async () => {
        const { one, two, leased } = await twoBrokersLeasingA(ctx);
        const open = holdTransaction(one, async (tx) => ({
          settled: await one.settle(leased, 'leased', ['CONSUME'], T0, tx),
          stored: await one.store(['b'], T0, { tx }),
        }));
        const written = await open.written;
        expect(written).toEqual({ settled: ['a'], stored: [{ id: 'b', duplicate: false }] });
        const rivals = Promise.all([outcomeOf(() => two.settle(leased, 'leased', ['CONSUME'], T0)), outcomeOf(() => two.store(['b'], T0))]);
        await sleep(100);
        open.commit();
        await open.ended;
        const [settle, store] = await rivals;
        expect(busyOr(settle, []), 'the rival settle').toEqual([]);
        expect(busyOr(store, [{ id: 'b', duplicate: true }]), 'the rival store').toEqual([{ id: 'b', duplicate: true }]);
        expect(await two.counts()).toEqual({ consumed: 1, stored: 1 });
      });

      it.skipIf(!isolation || !rollback)('never shows a second handle what a transaction on the first wrote and then rolled back', async () => {
        const { one, two, leased } = await twoBrokersLeasingA(ctx);
        const open = holdTransaction(one, async (tx) => {
          await one.settle(leased, 'leased', ['CONSUME'], T0, tx);
          await one.store(['b'], T0, { tx });
        });
        await open.written;
        const reads = Promise.all([outcomeOf(() => two.counts()), outcomeOf(() => two.peek('leased', 10))]);
        const rivals = Promise.all([outcomeOf(() => two.settle(leased, 'leased', ['CONSUME'], T0)), outcomeOf(() => two.store(['b'], T0))]);
        await sleep(100);
        open.rollBack();
        await expect(open.ended).rejects.toThrow('rolled back on purpose');
        const [counts, peeked] = await reads;
        expect(busyOr(counts, { leased: 1 }), 'counts on the second handle').toEqual({ leased: 1 });
        expect(
          busyOr(peeked, [leased[0]!]).map((m) => m.id),
          'peek on the second handle',
        ).toEqual(['a']);
        // Once the first let go of its rows, the second's calls find them as they were before: 'a' still leased
        // under its token, 'b' never stored. So each either wins, or gave up with STORAGE_BUSY and changed nothing.
        const [settle, store] = await rivals;
        const won = busyOr(settle, 'gave up');
        expect([['a'], 'gave up']).toContainEqual(won);
        const stored = busyOr(store, 'gave up');
        expect([[{ id: 'b', duplicate: false }], 'gave up']).toContainEqual(stored);
        expect(await two.counts()).toEqual({ ...(won === 'gave up' ? { leased: 1 } : { consumed: 1 }), ...(stored !== 'gave up' && { stored: 1 }) });
      });
    });

    describe.skipIf(!rollback)('12. transactions: what a rollback undoes', () => {
      it("undoes a store's dedup record: a new window is forgotten, and the passed one it replaced comes back", async () => {
        const d = await ctx.driver('exactly-once/end-to-end');
        await d.store(['a'], T0, { dedupMs: 1_000 });
        await d.ack(await d.lease(T0), T0);
        await expect(
          d.storage.transaction(async (tx) => {
            expect(await d.store(['a', 'b'], T0 + 1_000, { dedupMs: 5_000, tx })).toEqual([
              { id: 'a', duplicate: false },
              { id: 'b', duplicate: false },
            ]);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        expect(await d.counts()).toEqual({});
        // a's first record (window passed at T0 + 1 000) is back, so a purge finds it; b never had one.
        expect(await d.storage.purge({ topic: d.topic, now: T0 + 2_000 })).toBe(1);
        expect(await d.store(['a', 'b'], T0 + 2_000)).toEqual([
          { id: 'a', duplicate: false },
          { id: 'b', duplicate: false },
        ]);
      });

      it("undoes an extendLease made with the handle: the lease's first deadline holds again", async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['a'], T0);
        const [m] = await d.lease(T0, { leaseMs: 1_000 });
        await expect(
          d.storage.transaction(async (tx) => {
            expect(await d.extendLease(m!, T0 + HOUR, { tx })).toBe(true);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        expect(await d.peek('leased', 10)).toMatchObject([{ id: 'a', leaseUntil: T0 + 1_000 }]);
        expect((await d.expire(T0 + 1_000)).requeued).toEqual([{ id: 'a', deliveries: 1 }]);
      });

      it('undoes two settles of one message in the order they were made: the message is leased again', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['a'], T0);
        const leased = await d.lease(T0);
        await expect(
          d.storage.transaction(async (tx) => {
            expect(await d.settle(leased, 'leased', ['CONSUME'], T0, tx)).toEqual(['a']);
            expect(await d.settle(leased, 'consumed', ['DELETE'], T0, tx)).toEqual(['a']);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        expect(await d.counts()).toEqual({ leased: 1 });
        expect(await d.ack(leased, T0)).toEqual(['a']);
      });
    });

    describe('13. topic registry', () => {
      const record = (name: string, lifecycle: Lifecycle, extra: Partial<TopicRecord> = {}): TopicRecord => ({
        name,
        lifecycle,
        maxDeliveries: 5,
        declaredAt: T0,
        ...extra,
      });

      it('records a declared topic and lists every topic by name, with its dead-letter topic when it has one', async () => {
        const storage = await ctx.storage();
        const [b, a] = [ctx.topic(), ctx.topic()].sort().reverse();
        expect(await storage.declareTopic(record(b!, 'exactly-once/broker'))).toEqual(record(b!, 'exactly-once/broker'));
        expect(await storage.declareTopic(record(a!, 'at-least-once', { deadLetter: `${a}.dead`, maxDeliveries: 3 }))).toEqual(
          record(a!, 'at-least-once', { deadLetter: `${a}.dead`, maxDeliveries: 3 }),
        );
        expect(await storage.topics()).toEqual([record(a!, 'at-least-once', { deadLetter: `${a}.dead`, maxDeliveries: 3 }), record(b!, 'exactly-once/broker')]);
      });

      it('keeps the first declaration: a later one of the same name, with another lifecycle, gets the first back', async () => {
        const storage = await ctx.storage();
        const name = ctx.topic();
        await storage.declareTopic(record(name, 'exactly-once/end-to-end'));
        expect(await storage.declareTopic(record(name, 'at-most-once', { declaredAt: T0 + 1 }))).toEqual(record(name, 'exactly-once/end-to-end'));
        expect(await storage.topics()).toEqual([record(name, 'exactly-once/end-to-end')]);
      });

      it('agrees across handles on the same data, also when two declare at once', async () => {
        const key = ctx.key();
        const [one, two] = [await ctx.storage(key), await ctx.storage(key)];
        const name = ctx.topic();
        const [first, second] = await Promise.all([one.declareTopic(record(name, 'at-least-once')), two.declareTopic(record(name, 'at-most-once'))]);
        expect(second).toEqual(first);
        expect(await two.topics()).toEqual([first]);
      });

      it('refuses, through Tidings, a topic declared with another semantic than the one recorded: TOPIC_CONFLICT on ready(), send and consume', async () => {
        const key = ctx.key();
        const name = ctx.topic();
        const first = await ctx.tidings(key);
        await first.topic(name, { semantic: 'exactly-once', scope: 'broker' }).ready();
        const second = await ctx.tidings(key);
        const conflicting = second.topic(name, { semantic: 'at-least-once' });
        await expect(conflicting.ready()).rejects.toMatchObject({ code: 'TOPIC_CONFLICT', message: expect.stringContaining('recorded') });
        await expect(conflicting.send(1)).rejects.toMatchObject({ code: 'TOPIC_CONFLICT' });
        expect(await second.topics()).toEqual([expect.objectContaining({ name, lifecycle: 'exactly-once/broker' })]);
        expect(countsOf(await second.counts(name), name)).toEqual({});
      });
    });

    describe('14. states, leases and listings', () => {
      it('changes nothing when a compare-and-set names a state the message is not in, with or without its token', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['a'], T0);
        const [m] = await d.lease(T0, { leaseMs: 1_000 });
        expect(await d.settle([m!], 'consumed', ['DELETE'], T0)).toEqual([]);
        expect(await d.storage.extendLease({ topic: d.topic, subscription: d.subscription, state: 'stored', item: m!, leaseUntil: T0 + HOUR, now: T0 })).toBe(
          false,
        );
        expect(
          await d.storage.release({ topic: d.topic, subscription: d.subscription, from: 'stored', to: 'dead', items: [{ ...m!, availableAt: T0 }], now: T0 }),
        ).toEqual([]);
        expect(await d.peek('leased', 10)).toMatchObject([{ id: 'a', leaseToken: m!.leaseToken, leaseUntil: T0 + 1_000 }]);
        expect(await d.ack([m!], T0)).toEqual(['a']);
      });

      it('expires a lease at now == leaseUntil, not before', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a'], T0);
        await d.lease(T0, { leaseMs: 1_000 });
        expect(await d.expire(T0 + 999)).toEqual({ requeued: [], dead: [] });
        expect(await d.expire(T0 + 1_000)).toEqual({ requeued: [{ id: 'a', deliveries: 1 }], dead: [] });
      });

      it('keeps no lease on a message that left the leased state: consumed, nacked, requeued or dead', async () => {
        const d = await ctx.driver('exactly-once/broker');
        await d.store(['consumed', 'nacked', 'expired', 'dead'], T0);
        const leased = new Map((await d.lease(T0, { leaseMs: 1_000 })).map((m) => [m.id, m]));
        expect(await d.settle([leased.get('consumed')!], 'leased', ['CONSUME'], T0)).toEqual(['consumed']);
        expect(await d.nack(leased.get('nacked')!, T0, { delayMs: HOUR })).toEqual(['nacked']);
        expect(await d.nack(leased.get('dead')!, T0, { maxDeliveries: 1 })).toEqual(['dead']);
        expect((await d.expire(T0 + 1_000)).requeued).toEqual([{ id: 'expired', deliveries: 1 }]);
        const rows = [...(await d.peek('consumed', 10)), ...(await d.peek('stored', 10)), ...(await d.peek('dead', 10))];
        expect(sorted(rows.map((m) => m.id))).toEqual(['consumed', 'dead', 'expired', 'nacked']);
        for (const m of rows)
          expect({ id: m.id, leaseToken: m.leaseToken, leaseUntil: m.leaseUntil }).toEqual({ id: m.id, leaseToken: undefined, leaseUntil: undefined });
      });

      it('keeps the dead-letter copy it already holds as it is when the message dies again', async () => {
        const key = ctx.key();
        const d = await ctx.driver('at-least-once', { key });
        const dlq = await ctx.driver('at-least-once', { key, topic: `${d.topic}.dead` });
        await kill(d, ['a'], T0, deadLetterOf(dlq.topic));
        const [copy] = await dlq.lease(T0);
        expect(await d.redrive(T0 + 10)).toBe(1);
        const [again] = await d.lease(T0 + 10);
        expect(await d.nack(again!, T0 + 10, { maxDeliveries: 1, deadLetter: deadLetterOf(dlq.topic) })).toEqual(['a']);
        expect(await dlq.counts()).toEqual({ leased: 1 });
        expect(await dlq.ack([copy!], T0 + 10)).toEqual(['a']);
      });

      it('leaves states without messages out of its counts', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a', 'b'], T0);
        const [a] = await d.lease(T0, { limit: 1 });
        await d.ack([a!], T0);
        const all = await d.storage.counts();
        const counted = Object.values({ ...(await d.storage.counts(d.topic))[d.topic]?.default, ...all[d.topic]?.default });
        expect(counted).toEqual([1]);
        for (const topic of Object.values(all)) for (const sub of Object.values(topic)) for (const n of Object.values(sub)) expect(n).toBeGreaterThan(0);
      });

      it('lists any number of topics by name, whatever order they were declared in', async () => {
        const storage = await ctx.storage();
        const prefix = ctx.topic();
        const names = ['c', 'e', 'a', 'd', 'b', 'f'].map((n) => `${prefix}.${n}`);
        for (const name of names) await storage.declareTopic({ name, lifecycle: 'at-least-once', maxDeliveries: 5, declaredAt: T0 });
        expect((await storage.topics()).map((t) => t.name)).toEqual([...names].sort());
      });

      it('has a name for logs and errors, and so does its idempotency store', async () => {
        const storage = await ctx.storage();
        expect(storage.name).toMatch(/\S/);
        if (storage.idempotencyStore) expect(storage.idempotencyStore().name).toMatch(/\S/);
      });
    });

    describe('15. moves named by the request', () => {
      /** Stores `id` and leases it `n` times (each lease but the last expired at once), so it ends leased with `n` deliveries until T0 + HOUR. */
      async function leasedWith(d: TopicDriver, id: string, n: number): Promise<void> {
        await d.store([id], T0);
        for (let i = 1; i <= n; i++) {
          const [m] = await d.lease(T0, { leaseMs: i === n ? HOUR : 0 });
          expect(m).toMatchObject({ id, deliveries: i });
          if (i < n)
            expect(await d.storage.expire({ topic: d.topic, subscription: d.subscription, from: 'leased', to: d.ready, now: T0 })).toMatchObject([{ id }]);
        }
      }

      it('expires only leases whose deliveries lie in the range (atLeast inclusive, below exclusive), returning them as they now are', async () => {
        const d = await ctx.driver('at-least-once');
        await leasedWith(d, 'two', 2);
        await leasedWith(d, 'three', 3);
        await leasedWith(d, 'four', 4);
        const now = T0 + 2 * HOUR;
        const expire = (deliveries: { atLeast?: number; below?: number }) =>
          d.storage.expire({ topic: d.topic, subscription: d.subscription, from: 'leased', to: 'dead', now, deliveries });
        const moved = await expire({ atLeast: 3, below: 4 });
        expect(moved).toEqual([expect.objectContaining({ id: 'three', topic: d.topic, state: 'dead', deliveries: 3, body: bodyOf('three') })]);
        expect(moved[0]!.leaseToken ?? undefined).toBeUndefined();
        expect((await expire({ atLeast: 4 })).map((m) => m.id)).toEqual(['four']);
        expect((await expire({ below: 3 })).map((m) => m.id)).toEqual(['two']);
        expect(await d.counts()).toEqual({ dead: 3 });
      });

      it('moves nothing before the deadline, and exactly at it (leaseUntil <= now)', async () => {
        const d = await ctx.driver('at-least-once');
        await leasedWith(d, 'a', 1);
        const expire = (now: number) => d.storage.expire({ topic: d.topic, subscription: d.subscription, from: 'leased', to: d.ready, now });
        expect(await expire(T0 + HOUR - 1)).toEqual([]);
        expect((await expire(T0 + HOUR)).map((m) => ({ id: m.id, state: m.state, availableAt: m.availableAt }))).toEqual([
          { id: 'a', state: d.ready, availableAt: T0 + HOUR },
        ]);
      });

      it.skipIf(!rollback)('undoes a release and an expire made with a transaction handle when the transaction rolls back', async () => {
        const d = await ctx.driver('at-least-once');
        await d.store(['a', 'b'], T0);
        const [a, b] = await d.lease(T0, { leaseMs: 1_000 });
        await expect(
          d.storage.transaction(async (tx) => {
            expect(
              await d.storage.release(
                {
                  topic: d.topic,
                  subscription: d.subscription,
                  from: 'leased',
                  to: 'dead',
                  items: [{ id: a!.id, leaseToken: a!.leaseToken, availableAt: T0, error: 'Error: x' }],
                  now: T0,
                },
                tx,
              ),
            ).toEqual([a!.id]);
            expect(
              (await d.storage.expire({ topic: d.topic, subscription: d.subscription, from: 'leased', to: 'dead', now: T0 + 1_000 }, tx)).map((m) => m.id),
            ).toEqual([b!.id]);
            throw new Error('rolled back');
          }),
        ).rejects.toThrow('rolled back');
        expect(await d.counts()).toEqual({ leased: 2 });
        expect(sorted(await d.ack([a!, b!], T0))).toEqual(sorted([a!.id, b!.id]));
      });

      it('keeps headers byte for byte through store, lease, peek, nack, expiry and dead-lettering, and none where none were given', async () => {
        const d = await ctx.driver('at-least-once');
        const headers = JSON.stringify({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x-tenant': 'ünï ✓' });
        await d.storage.store({
          topic: d.topic,
          state: 'acked',
          messages: [
            { id: 'h', body: bodyOf('h'), availableAt: T0, headers },
            { id: 'n', body: bodyOf('n'), availableAt: T0 },
          ],
          now: T0,
        });
        const leased = await d.lease(T0, { leaseMs: 1_000 });
        const byId = new Map(leased.map((m) => [m.id, m]));
        expect(byId.get('h')!.headers).toBe(headers);
        expect(byId.get('n')!.headers ?? undefined).toBeUndefined();
        expect(await d.nack(byId.get('h')!, T0)).toEqual(['h']);
        expect((await d.peek('acked', 10)).find((m) => m.id === 'h')!.headers).toBe(headers);
        const [again] = await d.lease(T0, { leaseMs: 1_000 });
        expect(again).toMatchObject({ id: 'h', headers });
        const dead = await d.storage.expire({ topic: d.topic, subscription: d.subscription, from: 'leased', to: 'dead', now: T0 + 1_000 });
        expect(Object.fromEntries(dead.map((m) => [m.id, m.headers ?? null]))).toEqual({ h: headers, n: null });
      });

      it("stores a message's lastError when the request carries one (a dead-letter copy keeps its source's)", async () => {
        const d = await ctx.driver('at-least-once');
        const { storage, topic } = d;
        await storage.store({
          topic,
          state: 'acked',
          messages: [
            { id: 'a', body: bodyOf('a'), availableAt: T0, lastError: 'Error: declined\n    at pay (payments.ts:3:9)' },
            { id: 'b', body: bodyOf('b'), availableAt: T0 },
          ],
          now: T0,
        });
        const rows = await d.peek('acked', 10);
        expect(rows.map((m) => [m.id, m.lastError ?? null])).toEqual([
          ['a', 'Error: declined\n    at pay (payments.ts:3:9)'],
          ['b', null],
        ]);
      });
    });

    describeSubscriptionSections(() => ctx);
    describeOperatorSection(() => ctx);

    describe.skipIf(!persistent)('19. durability', () => {
      it('keeps every acknowledged write when every handle closes: messages in each state, leases, errors, dedup records, the registry', async () => {
        const key = ctx.key();
        const d = await ctx.driver('exactly-once/end-to-end', { key });
        await d.store(['waiting', 'leased', 'dead', 'gone'], T0, { dedupMs: HOUR, key: (id) => (id === 'waiting' ? 'k1' : undefined) });
        await d.store(['delayed'], T0, { availableAt: T0 + HOUR, dedupMs: HOUR });
        const held = new Map((await d.lease(T0, { limit: 10, leaseMs: HOUR, token: 'tok' })).map((m) => [m.id, m]));
        expect(await d.nack(held.get('waiting')!, T0)).toEqual(['waiting']);
        expect(await d.nack(held.get('dead')!, T0, { maxDeliveries: 1, error: 'Error: refused' })).toEqual(['dead']);
        expect(await d.ack([held.get('gone')!], T0)).toEqual(['gone']);
        const counts = await d.counts();
        const topics = await d.storage.topics();
        const subscriptions = await d.storage.subscriptions(d.topic);

        const again = new TopicDriver(await ctx.reopen(key), d.topic, d.lifecycle);
        expect(await again.counts()).toEqual(counts);
        expect(counts).toEqual({ [d.ready]: 2, leased: 1, dead: 1 });
        expect((await again.peek('leased', 10)).map((m) => [m.id, m.leaseToken, m.leaseUntil, m.deliveries])).toEqual([['leased', 'tok', T0 + HOUR, 1]]);
        expect((await again.peek('dead', 10)).map((m) => [m.id, m.lastError])).toEqual([['dead', 'Error: refused']]);
        expect(sorted((await again.peek(d.ready, 10)).map((m) => `${m.id}:${m.availableAt}:${m.key ?? '-'}`))).toEqual([
          `delayed:${T0 + HOUR}:-`,
          `waiting:${T0}:k1`,
        ]);
        expect(await again.storage.topics()).toEqual(topics);
        expect(await again.storage.subscriptions(d.topic)).toEqual(subscriptions);
        // The dedup window outlives the process: every id is still refused, the consumed one too.
        expect(await again.store(['waiting', 'gone', 'new'], T0 + 1)).toEqual([
          { id: 'waiting', duplicate: true },
          { id: 'gone', duplicate: true },
          { id: 'new', duplicate: false },
        ]);
      });
    });
  });
}

/** How an operation ended: what it resolved to, or what it rejected with. */
type Outcome<T> = { value: T } | { error: unknown };

/** How `op` ended; a synchronous throw counts as a rejection, and one still pending after `ms` fails the test. */
async function outcomeOf<T>(op: () => Promise<T>, ms = 10_000): Promise<Outcome<T>> {
  const hung = new Error(`still pending after ${ms} ms`);
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(hung), ms);
  });
  try {
    return { value: await Promise.race([Promise.resolve().then(op), hang]) };
  } catch (error) {
    if (error === hung) throw hung;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The value of a call on a second handle, which may instead have given up waiting for the first with `STORAGE_BUSY`:
 * then it saw and changed nothing, and `unchanged` (what it would have answered then) stands in. Any other rejection is rethrown.
 */
function busyOr<T, U>(outcome: Outcome<T>, unchanged: U): T | U {
  if ('value' in outcome) return outcome.value;
  if (outcome.error instanceof TidingsError && outcome.error.code === 'STORAGE_BUSY') return unchanged;
  throw outcome.error;
}

/** A transaction on `d`'s storage kept open after `write` until the test commits or rolls it back. */
/** Two handles (two brokers) on one exactly-once/broker topic's data, with `a` stored and leased through the first. */
async function twoBrokersLeasingA(ctx: SuiteContext): Promise<{ one: TopicDriver; two: TopicDriver; leased: StoredMessage[] }> {
  const key = ctx.key();
  const topic = ctx.topic();
  const one = await ctx.driver('exactly-once/broker', { key, topic });
  const two = await ctx.driver('exactly-once/broker', { key, topic });
  await one.store(['a'], T0);
  return { one, two, leased: await one.lease(T0) };
}

function holdTransaction<T>(
  d: TopicDriver,
  write: (tx: unknown) => Promise<T>,
): { written: Promise<T>; ended: Promise<void>; commit(): void; rollBack(): void } {
  let end!: (commit: boolean) => void;
  const decided = new Promise<boolean>((r) => (end = r));
  let wrote!: (value: T) => void;
  let failed!: (error: unknown) => void;
  const written = new Promise<T>((resolve, reject) => {
    wrote = resolve;
    failed = reject;
  });
  const ended = d.storage.transaction(async (tx) => {
    try {
      wrote(await write(tx));
    } catch (error) {
      failed(error);
      throw error;
    }
    if (!(await decided)) throw new Error('rolled back on purpose');
  });
  // A transaction that fails before its writes are done is reported through `written`.
  ended.catch(() => undefined);
  return { written, ended, commit: () => end(true), rollBack: () => end(false) };
}
