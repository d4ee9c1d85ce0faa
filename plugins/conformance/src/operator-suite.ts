import { InvalidOptionsError } from '@tidings/core';
import type { StorageAdapter, StoredMessage } from '@tidings/core/adapter';
import { describe, expect, it, type TestContext } from 'vitest';
import { T0, declareSubscription, deadLetterOf, idRange, sorted, waitFor, type SuiteContext, type TopicDriver } from './harness.js';

const ids = (rows: ReadonlyArray<{ id: string }>) => rows.map((m) => m.id);

/** The optional verbs an operator's console needs; a test of one the adapter lacks is skipped, saying so. */
type Verb = 'setPaused' | 'browse' | 'discard' | 'retryNow';

function needs(t: TestContext, storage: StorageAdapter<any>, ...verbs: Verb[]): void {
  const missing = verbs.filter((v) => typeof storage[v] !== 'function');
  if (missing.length > 0) t.skip(`the adapter has no ${missing.join(', ')}() (optional: the operator's console and CLI refuse that verb)`);
}

/** Every page of a view, following `next`, `limit` at a time. */
async function allPages(d: TopicDriver, view: 'waiting' | 'delayed' | 'leased' | 'dead', limit: number, now = T0): Promise<StoredMessage[][]> {
  const pages: StoredMessage[][] = [];
  let after: string | undefined;
  do {
    const page = await d.operator(now).browse({ view, limit, ...(after ? { after } : {}) });
    pages.push(page.messages);
    after = page.next;
    if (pages.length > 100) throw new Error('paging never ends: `next` keeps coming back');
  } while (after);
  return pages;
}

/**
 * Section 18 of the storage suite: the operator's verbs. A pause recorded with the subscription, pages of a
 * subscription's messages by view, id and key, emptying, discarding and retrying now, each touching only what it names.
 */
export function describeOperatorSection(context: () => SuiteContext): void {
  describe("18. the operator's verbs", () => {
    it('records a pause with the subscription, for every handle; a declaration keeps it; resume clears it', async (t) => {
      const ctx = context();
      const key = ctx.key();
      const d = await ctx.driver('at-least-once', { key, subscription: 'billing' });
      needs(t, d.storage, 'setPaused');
      const other = await ctx.storage(key);
      expect(await d.storage.setPaused!(d.topic, 'billing', T0)).toBe(true);
      expect((await other.subscriptions(d.topic)).find((s) => s.name === 'billing')).toMatchObject({ pausedAt: T0 });
      // A process declaring the subscription again (a restart) must not undo an operator's pause.
      await declareSubscription(other, d.topic, 'billing');
      expect((await d.storage.subscriptions(d.topic)).find((s) => s.name === 'billing')?.pausedAt).toBe(T0);
      expect(await other.setPaused!(d.topic, 'billing', undefined)).toBe(true);
      expect((await d.storage.subscriptions(d.topic)).find((s) => s.name === 'billing')?.pausedAt).toBeUndefined();
      expect(await d.storage.setPaused!(d.topic, 'nobody', T0)).toBe(false);
      expect(await d.storage.subscriptions(d.topic)).toHaveLength(1);
    });

    it('pages each view in delivery order: waiting (due), delayed (due later), leased (with its lease), dead', async (t) => {
      const d = await context().driver('at-least-once');
      needs(t, d.storage, 'browse');
      await d.store(['w1', 'w2', 'w3'], T0);
      await d.store(['later2'], T0, { availableAt: T0 + 2_000 });
      await d.store(['later1'], T0, { availableAt: T0 + 1_000 });
      await d.store(['x1', 'x2'], T0 + 1);
      const leased = await d.lease(T0 + 1, { limit: 2, token: 'tok', leaseMs: 500 });
      expect(sorted(ids(leased))).toEqual(['w1', 'w2']);
      await d
        .lease(T0 + 1, { limit: 1 })
        .then(([m]) => d.nack(m!, T0 + 1, { maxDeliveries: 1, deadLetter: deadLetterOf(`${d.topic}.dead`), error: 'Error: no' }));
      const view = async (v: 'waiting' | 'delayed' | 'leased' | 'dead') => (await d.operator(T0 + 10).browse({ view: v })).messages;
      expect(ids(await view('waiting'))).toEqual(['x1', 'x2']);
      expect(ids(await view('delayed'))).toEqual(['later1', 'later2']);
      expect((await view('leased')).map((m) => [m.id, m.state, m.leaseToken, m.leaseUntil])).toEqual([
        ['w1', 'leased', 'tok', T0 + 501],
        ['w2', 'leased', 'tok', T0 + 501],
      ]);
      expect((await view('dead')).map((m) => [m.id, m.lastError])).toEqual([['w3', 'Error: no']]);
    });

    it('pages by cursor without skipping or repeating, even as messages leave between pages', async (t) => {
      const d = await context().driver('at-least-once');
      needs(t, d.storage, 'browse');
      const all = idRange('m', 25);
      await d.store(all, T0);
      const pages = await allPages(d, 'waiting', 10);
      expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
      expect(pages.flat().map((m) => m.id)).toEqual(all);
      const first = await d.operator(T0).browse({ view: 'waiting', limit: 10 });
      expect(first.next).toBeTypeOf('string');
      // Two of the first page and one of the next are consumed meanwhile: the next page starts where the first ended.
      const gone = [all[0]!, all[5]!, all[10]!];
      const leased = await d.lease(T0, { limit: 12 });
      expect(
        sorted(
          await d.ack(
            leased.filter((m) => gone.includes(m.id)),
            T0,
          ),
        ),
      ).toEqual(sorted(gone));
      for (const m of leased.filter((m) => !gone.includes(m.id))) await d.nack(m, T0);
      const second = await d.operator(T0).browse({ view: 'waiting', limit: 10, after: first.next! });
      expect(ids(second.messages)).toEqual(all.slice(11, 21));
      const end = await d.operator(T0).browse({ view: 'waiting', limit: 100 });
      expect(end.next).toBeUndefined();
    });

    it('finds one message by id in any state, and a key in order, in its own subscription only', async (t) => {
      const ctx = context();
      const key = ctx.key();
      const topic = ctx.topic();
      const one = await ctx.driver('at-least-once', { key, topic, subscription: 'one' });
      const two = await ctx.driver('at-least-once', { key, topic, subscription: 'two' });
      needs(t, one.storage, 'browse');
      await one.store(['a', 'b', 'c', 'd'], T0, { key: (id) => (id === 'd' ? undefined : 'k1') });
      await one.lease(T0, { limit: 1 });
      expect(await one.operator(T0).message('a')).toMatchObject({ id: 'a', state: 'leased', key: 'k1', subscription: 'one', topic });
      expect(await one.operator(T0).message('zz')).toBeUndefined();
      expect(ids((await one.operator(T0).browse({ key: 'k1' })).messages)).toEqual(['a', 'b', 'c']);
      expect(ids((await one.operator(T0).browse({ key: 'k1', view: 'waiting' })).messages)).toEqual(['b', 'c']);
      expect(await two.operator(T0).message('a')).toMatchObject({ state: 'acked', subscription: 'two' });
      await two.storage.removeSubscription(topic, 'two');
      expect(await two.operator(T0).message('a')).toBeUndefined();
    });

    it('refuses a cursor it did not make with a typed error', async (t) => {
      const d = await context().driver('at-least-once');
      needs(t, d.storage, 'browse');
      await d.store(['a'], T0);
      const error = await d.storage.browse!({ topic: d.topic, subscription: d.subscription, state: 'acked', after: 'not-a-cursor', limit: 10 }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidOptionsError);
    });

    it("empties waiting and delayed messages, never leased ones nor another subscription's", async (t) => {
      const ctx = context();
      const key = ctx.key();
      const topic = ctx.topic();
      const one = await ctx.driver('exactly-once/end-to-end', { key, topic, subscription: 'one' });
      const two = await ctx.driver('exactly-once/end-to-end', { key, topic, subscription: 'two' });
      needs(t, one.storage, 'discard');
      await one.store(['a', 'b', 'c'], T0);
      await one.store(['later'], T0, { availableAt: T0 + 60_000 });
      const [held] = await one.lease(T0, { limit: 1 });
      expect(await one.operator(T0).empty()).toBe(3);
      expect(await one.counts()).toEqual({ leased: 1 });
      expect(await two.counts()).toEqual({ [two.ready]: 4 });
      // The handler still holding its message finishes it.
      expect(await one.ack([held!], T0)).toEqual([held!.id]);
      expect(await one.operator(T0).empty()).toBe(0);
    });

    it('discards dead letters, all or by id, and nothing in another state', async (t) => {
      const d = await context().driver('at-least-once');
      needs(t, d.storage, 'discard');
      await d.store(['a', 'b', 'c', 'w'], T0);
      for (const m of await d.lease(T0, { limit: 3 })) await d.nack(m, T0, { maxDeliveries: 1 });
      expect(await d.counts()).toEqual({ dead: 3, acked: 1 });
      expect(await d.operator(T0).discard(['b', 'w', 'nope'])).toBe(1);
      expect(sorted(ids(await d.peek('dead', 10)))).toEqual(['a', 'c']);
      expect(await d.operator(T0).discard([])).toBe(0);
      expect(await d.operator(T0).discard()).toBe(2);
      expect(await d.counts()).toEqual({ acked: 1 });
    });

    it('makes delayed messages due now, all or by id, leaving due ones and other states alone', async (t) => {
      const d = await context().driver('at-least-once');
      needs(t, d.storage, 'retryNow', 'browse');
      await d.store(['due'], T0);
      await d.store(['d1', 'd2', 'd3'], T0, { availableAt: T0 + 60_000 });
      expect(await d.operator(T0).retryNow(['d2', 'due'])).toEqual(['d2']);
      expect(ids((await d.operator(T0).browse({ view: 'waiting' })).messages)).toEqual(['due', 'd2']);
      expect(ids((await d.operator(T0).browse({ view: 'delayed' })).messages)).toEqual(['d1', 'd3']);
      expect(sorted(await d.operator(T0).retryNow())).toEqual(['d1', 'd3']);
      expect(sorted(ids(await d.lease(T0)))).toEqual(['d1', 'd2', 'd3', 'due']);
    });

    it('a paused subscription leases nothing in a real instance, its consumer says so, and resuming delivers what waited', async (t) => {
      const ctx = context();
      const key = ctx.key();
      const here = await ctx.tidings(key);
      needs(t, here.storage, 'setPaused');
      const name = ctx.topic();
      const topic = here.topic<number>(name, { semantic: 'at-least-once' });
      const got: number[] = [];
      const consumer = topic.consume((m) => void got.push(m.payload), { pollMs: 20 });
      await topic.send(1);
      await waitFor('the first message', () => got.length === 1);
      // Paused from another handle on the same data: as an operator's CLI in another process would.
      const there = await ctx.tidings(key);
      await there.topic(name, { semantic: 'at-least-once' }).subscription('default').pause();
      await waitFor('the consumer to see the pause', () => consumer.state === 'paused', 2_000);
      await topic.sendMany([2, 3]);
      await new Promise((r) => setTimeout(r, 300));
      expect(got).toEqual([1]);
      await there.topic(name, { semantic: 'at-least-once' }).subscription('default').resume();
      await waitFor('the messages stored while paused', () => got.length === 3, 5_000);
      expect(sorted(got.map(String))).toEqual(['1', '2', '3']);
      await consumer.stop();
    });
  });
}
