import { LIFECYCLES, type Lifecycle } from '@tidings/core';
import { lifecyclePlans } from '@tidings/core/adapter';
import { describe, expect, it } from 'vitest';
import { T0, bodyOf, copiesOf, declareSubscription, deadLetterOf, idRange, sorted, type SuiteContext, type TopicDriver } from './harness.js';

/** A topic's drivers, one per subscription, all recorded before anything is stored. */
async function subscribed(
  ctx: SuiteContext,
  lifecycle: Lifecycle,
  names: string[],
  o: { key?: string; ordering?: 'key' | 'key-strict' } = {},
): Promise<TopicDriver[]> {
  const key = o.key ?? ctx.key();
  const topic = ctx.topic();
  const drivers: TopicDriver[] = [];
  for (const subscription of names) drivers.push(await ctx.driver(lifecycle, { key, topic, subscription, ordering: o.ordering }));
  return drivers;
}

const ids = (rows: ReadonlyArray<{ id: string }>) => rows.map((m) => m.id);

/** The lifecycles whose messages are kept under a lease, and so whose keys a lease can hold. */
const LEASED = LIFECYCLES.filter((l) => lifecyclePlans[l].retry !== undefined);

/**
 * Sections 16 and 17 of the storage suite: subscriptions (a copy per subscription, each with its own state) and
 * ordering keys (a lease that hands out a key's messages one at a time, in store order).
 */
export function describeSubscriptionSections(context: () => SuiteContext): void {
  describe('16. subscriptions', () => {
    it('copies each stored message into every subscription recorded for the topic, none skipped', async () => {
      const [a, b, c] = await subscribed(context(), 'at-least-once', ['billing', 'email', 'analytics']);
      await a!.store(['m1', 'm2'], T0);
      for (const d of [a!, b!, c!]) {
        expect(await d.counts()).toEqual({ acked: 2 });
        expect(await d.peek('acked', 10)).toMatchObject([
          { id: 'm1', subscription: d.subscription, topic: d.topic, body: bodyOf('m1'), deliveries: 0 },
          { id: 'm2', subscription: d.subscription, body: bodyOf('m2') },
        ]);
      }
    });

    it('gives a subscription only the messages stored after it was recorded', async () => {
      const [early] = await subscribed(context(), 'at-least-once', ['early']);
      await early!.store(['before'], T0);
      await declareSubscription(early!.storage, early!.topic, 'late');
      await early!.store(['after'], T0 + 1);
      expect(await early!.counts()).toEqual({ acked: 2 });
      const copies = await early!.storage.peek({ topic: early!.topic, subscription: 'late', state: 'acked', limit: 10 });
      expect(ids(copies)).toEqual(['after']);
    });

    it.each(LEASED)(
      "%s: keeps each subscription's copy in its own state: a lease, nack, ack or death in one leaves the others as they are",
      async (lifecycle) => {
        const [one, two] = await subscribed(context(), lifecycle, ['one', 'two']);
        const { ready } = one!;
        await one!.store(['a', 'b', 'c'], T0);
        const leased = await one!.lease(T0, { leaseMs: 1_000 });
        expect(sorted(ids(leased))).toEqual(['a', 'b', 'c']);
        expect(await two!.counts()).toEqual({ [ready]: 3 });
        const byId = new Map(leased.map((m) => [m.id, m]));
        expect(await one!.ack([byId.get('a')!], T0)).toEqual(['a']);
        expect(await one!.nack(byId.get('b')!, T0, { delayMs: 100 })).toEqual(['b']);
        expect(await one!.nack(byId.get('c')!, T0, { maxDeliveries: 1, deadLetter: deadLetterOf(`${one!.topic}.dead`) })).toEqual(['c']);
        expect(await one!.counts()).toEqual({ [ready]: 1, dead: 1 });
        expect(await two!.counts()).toEqual({ [ready]: 3 });
        const theirs = await two!.lease(T0, { leaseMs: 1_000 });
        expect(theirs.map((m) => [m.id, m.deliveries, m.subscription])).toEqual([
          ['a', 1, 'two'],
          ['b', 1, 'two'],
          ['c', 1, 'two'],
        ]);
        const swept = await two!.expire(T0 + 1_000);
        expect(sorted(swept.requeued.map((m) => `${m.id}:${m.deliveries}`))).toEqual(['a:1', 'b:1', 'c:1']);
        expect(swept.dead).toEqual([]);
        expect(await one!.counts()).toEqual({ [ready]: 1, dead: 1 });
        expect(await one!.redrive(T0 + 10)).toBe(1);
        expect(await two!.counts()).toEqual({ [ready]: 3 });
      },
    );

    it('counts and peeks each subscription on its own', async () => {
      const [one, two] = await subscribed(context(), 'at-least-once', ['one', 'two']);
      await one!.store(['a', 'b'], T0);
      await two!.lease(T0, { limit: 1 });
      const all = await one!.storage.counts(one!.topic);
      expect(copiesOf(all, one!.topic, 'one')).toEqual({ acked: 2 });
      expect(copiesOf(all, one!.topic, 'two')).toEqual({ acked: 1, leased: 1 });
      expect(ids(await two!.peek('leased', 10))).toEqual(['a']);
      expect(await one!.peek('leased', 10)).toEqual([]);
    });

    it('records each subscription once (the first declaration wins) and lists them by topic and name, across handles', async () => {
      const ctx = context();
      const key = ctx.key();
      const [x, y] = [await ctx.storage(key), await ctx.storage(key)];
      const topic = ctx.topic();
      const first = { topic, name: 'billing', maxDeliveries: 3, deadLetter: `${topic}.dead`, declaredAt: T0 };
      const other = { topic, name: 'billing', maxDeliveries: 9, declaredAt: T0 + 1 };
      const [kept, alsoKept] = await Promise.all([x.declareSubscription(first), y.declareSubscription(other)]);
      expect(alsoKept).toEqual(kept);
      expect([first, other]).toContainEqual(kept);
      expect(await x.declareSubscription({ ...other, maxDeliveries: 7 })).toEqual(kept);
      await y.declareSubscription({ topic, name: 'analytics', maxDeliveries: 5, declaredAt: T0 });
      await x.declareSubscription({ topic: `${topic}.other`, name: 'a', maxDeliveries: 5, declaredAt: T0 });
      expect((await x.subscriptions(topic)).map((s) => s.name)).toEqual(['analytics', 'billing']);
      expect((await y.subscriptions()).filter((s) => s.topic.startsWith(topic)).map((s) => `${s.topic}/${s.name}`)).toEqual([
        `${topic}/analytics`,
        `${topic}/billing`,
        `${topic}.other/a`,
      ]);
      expect((await x.subscriptions(topic)).find((s) => s.name === 'analytics')).toEqual({ topic, name: 'analytics', maxDeliveries: 5, declaredAt: T0 });
    });

    it('removes a subscription with every copy it holds, in every state, and copies nothing more into it', async () => {
      const [keep, drop] = await subscribed(context(), 'at-least-once', ['keep', 'drop']);
      await keep!.store(['a', 'b', 'c'], T0);
      const [leased] = await drop!.lease(T0, { limit: 1 });
      await drop!.nack(leased!, T0, { maxDeliveries: 1 });
      expect(await drop!.counts()).toEqual({ acked: 2, dead: 1 });
      expect(await drop!.storage.removeSubscription(drop!.topic, 'drop')).toBe(3);
      expect(await drop!.counts()).toEqual({});
      expect((await keep!.storage.subscriptions(keep!.topic)).map((s) => s.name)).toEqual(['keep']);
      await keep!.store(['d'], T0);
      expect(await drop!.counts()).toEqual({});
      expect(await keep!.counts()).toEqual({ acked: 4 });
      expect(await drop!.storage.removeSubscription(drop!.topic, 'drop')).toBe(0);
    });

    it('leaves no copy in a subscription removed while another handle stores', async () => {
      const ctx = context();
      const key = ctx.key();
      const topic = ctx.topic();
      const keep = await ctx.driver('at-least-once', { key, topic, subscription: 'keep' });
      const drop = await ctx.driver('at-least-once', { key, topic, subscription: 'drop' });
      const stores = Array.from({ length: 20 }, (_, i) => keep.store(idRange(`b${i}`, 20), T0));
      const removed = drop.storage.removeSubscription(topic, 'drop');
      await Promise.all([...stores, removed]);
      expect(await drop.counts()).toEqual({});
      expect(await keep.counts()).toEqual({ acked: 400 });
      expect((await keep.storage.subscriptions(topic)).map((s) => s.name)).toEqual(['keep']);
    });

    it('keeps nothing for a topic with no subscription, and refuses nothing: its results are not duplicates', async () => {
      const ctx = context();
      const storage = await ctx.storage();
      const topic = ctx.topic();
      const results = await storage.store({ topic, state: 'acked', messages: [{ id: 'a', body: bodyOf('a'), availableAt: T0 }], now: T0 });
      expect(results).toEqual([{ id: 'a', duplicate: false }]);
      expect(copiesOf(await storage.counts(topic), topic)).toEqual({});
    });

    it('answers an id inside the dedup window as a duplicate for the whole topic, even once every subscription consumed it', async () => {
      const [one, two] = await subscribed(context(), 'exactly-once/end-to-end', ['one', 'two']);
      expect(await one!.store(['a'], T0, { dedupMs: 10_000 })).toEqual([{ id: 'a', duplicate: false }]);
      for (const d of [one!, two!]) {
        const [m] = await d.lease(T0);
        expect(await d.ack([m!], T0)).toEqual(['a']);
      }
      expect(await one!.store(['a'], T0 + 1, { dedupMs: 10_000 })).toEqual([{ id: 'a', duplicate: true }]);
      expect(await one!.counts()).toEqual({});
      expect(await two!.counts()).toEqual({});
    });

    it('gives no second copy to a subscription that holds the id, and answers duplicate only when every one holds it', async () => {
      const [one, two] = await subscribed(context(), 'at-least-once', ['one', 'two']);
      await one!.store(['a'], T0);
      expect(await one!.store(['a'], T0)).toEqual([{ id: 'a', duplicate: true }]);
      const [m] = await one!.lease(T0);
      await one!.ack([m!], T0);
      expect(await one!.store(['a'], T0 + 1)).toEqual([{ id: 'a', duplicate: false }]);
      expect(await one!.counts()).toEqual({ acked: 1 });
      expect(await two!.counts()).toEqual({ acked: 1 });
      expect((await two!.peek('acked', 10))[0]).toMatchObject({ id: 'a', createdAt: T0 });
    });
  });

  describe('17. ordering keys', () => {
    const keyOf = (id: string) => id.split('-')[0];

    it('keeps the key with every copy, and leases ignore keys unless asked to hold them', async () => {
      const [d] = await subscribed(context(), 'at-least-once', ['default']);
      await d!.store(['k-1', 'k-2', 'free'], T0, { key: (id) => (id === 'free' ? undefined : keyOf(id)) });
      expect((await d!.peek('acked', 10)).map((m) => [m.id, m.key ?? null])).toEqual([
        ['k-1', 'k'],
        ['k-2', 'k'],
        ['free', null],
      ]);
      const leased = await d!.lease(T0);
      expect(leased.map((m) => [m.id, m.key ?? null])).toEqual([
        ['k-1', 'k'],
        ['k-2', 'k'],
        ['free', null],
      ]);
    });

    it.each(LIFECYCLES)(
      '%s: hands out only the first waiting message of each key, never two of one key in a batch; messages without a key as they come',
      async (lifecycle) => {
        const [d] = await subscribed(context(), lifecycle, ['default'], { ordering: 'key' });
        await d!.store(['a-1', 'b-1', 'a-2', 'x', 'b-2', 'a-3', 'y'], T0, { key: (id) => (id.includes('-') ? keyOf(id) : undefined) });
        expect(ids(await d!.lease(T0))).toEqual(['a-1', 'b-1', 'x', 'y']);
      },
    );

    it.each(LEASED)(
      "%s: does not hand out a key's next message while the one before is leased, and hands it out once that one is settled",
      async (lifecycle) => {
        const [d] = await subscribed(context(), lifecycle, ['default'], { ordering: 'key' });
        await d!.store(['k-1', 'k-2', 'k-3'], T0, { key: keyOf });
        const [first] = await d!.lease(T0, { leaseMs: 1_000 });
        expect(first!.id).toBe('k-1');
        expect(await d!.lease(T0)).toEqual([]);
        expect(await d!.ack([first!], T0)).toEqual(['k-1']);
        expect(ids(await d!.lease(T0))).toEqual(['k-2']);
      },
    );

    it.each(LEASED)('%s: never leases a later message of a key before an earlier one, even when the later one is due first', async (lifecycle) => {
      const [d] = await subscribed(context(), lifecycle, ['default'], { ordering: 'key' });
      await d!.store(['k-1'], T0, { key: keyOf, availableAt: T0 + 100 });
      await d!.store(['k-2'], T0, { key: keyOf, availableAt: T0 });
      expect(await d!.lease(T0 + 50)).toEqual([]);
      expect(ids(await d!.lease(T0 + 100))).toEqual(['k-1']);
    });

    it.each(LEASED)('%s: a nacked message holds its key through its backoff; an expired lease keeps the order', async (lifecycle) => {
      const [d] = await subscribed(context(), lifecycle, ['default'], { ordering: 'key' });
      await d!.store(['k-1', 'k-2'], T0, { key: keyOf });
      const [first] = await d!.lease(T0, { leaseMs: 1_000 });
      expect(await d!.nack(first!, T0, { delayMs: 500 })).toEqual(['k-1']);
      expect(await d!.lease(T0 + 100)).toEqual([]);
      const [again] = await d!.lease(T0 + 500, { leaseMs: 1_000 });
      expect(again).toMatchObject({ id: 'k-1', deliveries: 2 });
      expect(await d!.expire(T0 + 1_500)).toEqual({ requeued: [{ id: 'k-1', deliveries: 2 }], dead: [] });
      expect(ids(await d!.lease(T0 + 1_500))).toEqual(['k-1']);
    });

    it.each(LEASED)("%s: a dead message lets its key go on under 'key', and holds it under 'key-strict' until it is redriven", async (lifecycle) => {
      const ctx = context();
      for (const ordering of ['key', 'key-strict'] as const) {
        const [d] = await subscribed(ctx, lifecycle, ['default'], { ordering });
        await d!.store(['k-1', 'k-2'], T0, { key: keyOf });
        const [first] = await d!.lease(T0);
        expect(await d!.nack(first!, T0, { maxDeliveries: 1 })).toEqual(['k-1']);
        if (ordering === 'key') {
          expect(ids(await d!.lease(T0))).toEqual(['k-2']);
        } else {
          expect(await d!.lease(T0)).toEqual([]);
          expect(await d!.redrive(T0 + 1)).toBe(1);
          expect(ids(await d!.lease(T0 + 1))).toEqual(['k-1']);
        }
      }
    });

    it('holds keys per subscription: a key leased in one subscription is free in another', async () => {
      const [one, two] = await subscribed(context(), 'exactly-once/broker', ['one', 'two'], { ordering: 'key' });
      await one!.store(['k-1', 'k-2'], T0, { key: keyOf });
      expect(ids(await one!.lease(T0))).toEqual(['k-1']);
      expect(ids(await two!.lease(T0))).toEqual(['k-1']);
      expect(await one!.lease(T0)).toEqual([]);
    });

    it("fills a batch with other keys' first messages when one key has a deep backlog ahead of them", async () => {
      const [d] = await subscribed(context(), 'at-least-once', ['default'], { ordering: 'key' });
      await d!.store(idRange('hot', 300), T0, { key: () => 'hot' });
      await d!.store(idRange('cold', 20), T0, { key: (id) => id });
      const batch = await d!.lease(T0, { limit: 10 });
      expect(ids(batch)).toEqual(['hot-0', ...idRange('cold', 9)]);
    });

    it('lets two brokers leasing at once hand out at most one message of a key between them', async () => {
      const ctx = context();
      const key = ctx.key();
      const topic = ctx.topic();
      const one = await ctx.driver('at-least-once', { key, topic, ordering: 'key' });
      const two = await ctx.driver('at-least-once', { key, topic, ordering: 'key' });
      const keys = 50;
      await one.store(
        Array.from({ length: keys * 4 }, (_, i) => `k${i % keys}-${Math.floor(i / keys)}`),
        T0,
        { key: keyOf },
      );
      const leased = (
        await Promise.all([one.lease(T0, { limit: 40 }), two.lease(T0, { limit: 40 }), one.lease(T0, { limit: 40 }), two.lease(T0, { limit: 40 })])
      ).flat();
      const perKey = new Map<string, string[]>();
      for (const m of leased) perKey.set(m.key!, [...(perKey.get(m.key!) ?? []), m.id]);
      for (const [k, held] of perKey) expect(held, `key ${k}`).toEqual([`${k}-0`]);
      expect(perKey.size).toBe(keys);
    });
  });
}
