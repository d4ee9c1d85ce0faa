import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Tidings, silentLogger, type TransitionEvent } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-subscriptions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Storage over fresh data: two calls with the same key are two handles on the same data. */
const backends: Array<[string, () => Promise<(key?: string) => Promise<StorageAdapter<any>>>]> = [
  [
    'memory',
    async () => {
      const one = memoryStorage();
      return async () => one;
    },
  ],
  [
    'SQLite file',
    async () => {
      const file = join(dir, `subs-${++n}.db`);
      return async () => sqliteStorage({ file });
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await freshPostgresDatabase('subs');
      return async () => postgresStorage({ url });
    },
  ],
];

let n = 0;
const unique = (prefix: string) => `${prefix}.${process.pid}.${++n}`;
const fast = { backoff: { initialMs: 1, maxMs: 5 } };

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(backends)('subscriptions and ordering keys through Tidings on %s', (_name, backend) => {
  const instances: Tidings<any>[] = [];
  let storageOf: ((key?: string) => Promise<StorageAdapter<any>>) | undefined;
  afterEach(async () => {
    await Promise.all(instances.splice(0).map((t) => t.close({ graceMs: 1_000 })));
    storageOf = undefined;
  });

  /** An instance on this test's data: a second call is a second process on the same database. */
  async function instance(): Promise<Tidings<any>> {
    storageOf ??= await backend();
    const t = await Tidings.create({ storage: await storageOf(), purgeIntervalMs: 0, logger: silentLogger });
    instances.push(t);
    return t;
  }

  it('delivers every message to every subscription, each at its own pace: a failing one dead-letters to its own topic, a slow one delays no other', async () => {
    const tidings = await instance();
    const name = unique('orders');
    const orders = tidings.topic<{ n: number }>(name, {
      semantic: 'at-least-once',
      ...fast,
      subscriptions: { billing: {}, email: { maxDeliveries: 2, deadLetter: `${name}.email.dead` }, analytics: {} },
    });
    await orders.ready();
    const total = 30;
    const got: Record<string, number[]> = { billing: [], email: [], analytics: [] };
    let analyticsDone!: () => void;
    const analyticsFinished = new Promise<void>((r) => (analyticsDone = r));
    // Billing cannot finish until analytics has everything: analytics waiting on billing would never end.
    orders.subscription('billing').consume(
      async (m) => {
        await analyticsFinished;
        got.billing!.push(m.payload.n);
      },
      { concurrency: 5, pollMs: 10 },
    );
    orders.subscription('email').consume(
      () => {
        throw new Error('mail server down');
      },
      { pollMs: 10 },
    );
    orders.subscription('analytics').consume(
      (m) => {
        got.analytics!.push(m.payload.n);
        if (got.analytics!.length === total) analyticsDone();
      },
      { concurrency: 5, pollMs: 10 },
    );
    await orders.sendMany(Array.from({ length: total }, (_, i) => ({ n: i })));
    await until('analytics and billing to get every message', () => got.billing!.length === total && got.analytics!.length === total);
    await until('email to dead-letter every message', async () => (await orders.subscription('email').counts()).dead === total);
    expect([...got.analytics!].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect([...got.billing!].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect((await tidings.counts(`${name}.email.dead`))[`${name}.email.dead`]).toEqual({ acked: total });
    expect(await orders.subscription('billing').counts()).toEqual({});
    expect(await orders.subscription('email').redrive()).toBe(total);
  });

  it('gives a subscription declared later only what is stored from then on, and names each message and event with its subscription', async () => {
    const tidings = await instance();
    const topic = tidings.topic<string>(unique('late'), { semantic: 'at-least-once' });
    const transitions: TransitionEvent[] = [];
    tidings.events.on('transition', (e) => transitions.push(e));
    await topic.send('before');
    const audit = topic.subscription('audit');
    await audit.ready();
    await topic.send('after');
    const seen: string[] = [];
    audit.consume((m) => void seen.push(`${m.subscription}:${m.payload}`), { pollMs: 10 });
    topic.consume((m) => void seen.push(`${m.subscription}:${m.payload}`), { pollMs: 10 });
    await until('three deliveries', () => seen.length === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.sort()).toEqual(['audit:after', 'default:after', 'default:before']);
    expect((await topic.subscriptions()).map((s) => s.name)).toEqual(['audit', 'default']);
    const leases = transitions
      .filter((e) => e.event === 'LEASE')
      .map((e) => e.subscription)
      .sort();
    expect(leases).toEqual(['audit', 'default', 'default']);
    expect(transitions.filter((e) => e.event === 'STORE').every((e) => e.subscription === undefined)).toBe(true);
  });

  it('deduplicates a producer id once for the topic, and consumes exactly once per subscription', async () => {
    const tidings = await instance();
    const topic = tidings.topic<string>(unique('e2e'), { semantic: 'exactly-once', subscriptions: ['billing', 'email'] });
    const seen: string[] = [];
    for (const sub of ['billing', 'email']) topic.subscription(sub).consume((m) => void seen.push(`${sub}:${m.id}`), { pollMs: 10 });
    expect(await topic.send('a', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: false });
    expect(await topic.send('a', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: true });
    await until('both subscriptions', () => seen.length === 2);
    expect(await topic.send('a', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: true });
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.sort()).toEqual(['billing:order-1', 'email:order-1']);
    expect(() => topic.consume(() => undefined)).toThrow(/declared with subscriptions billing, email and no default one.*subscription\('billing'\)/);
  });

  it('refuses to remove a subscription in use, then drops its copies and copies nothing more into it', async () => {
    const tidings = await instance();
    const topic = tidings.topic<number>(unique('remove'), { semantic: 'at-least-once', subscriptions: ['keep', 'drop'] });
    await topic.sendMany([1, 2, 3]);
    const consumer = topic.subscription('drop').consume(() => new Promise(() => undefined), { pollMs: 10, batchSize: 1 });
    await until('a lease', async () => ((await topic.subscription('drop').counts()).leased ?? 0) > 0);
    await expect(topic.subscription('drop').remove()).rejects.toMatchObject({
      code: 'SUBSCRIPTION_IN_USE',
      message: expect.stringMatching(/stop its consumers/),
    });
    await consumer.stop({ graceMs: 0 });
    await expect(topic.subscription('drop').remove()).rejects.toMatchObject({ code: 'SUBSCRIPTION_IN_USE' });
    // The abandoned lease runs out; a sweep takes it back, and then nothing holds the subscription.
    await tidings.storage.expire({ topic: topic.name, subscription: 'drop', from: 'leased', to: 'acked', now: Date.now() + 60_000 });
    expect(await topic.subscription('drop').remove()).toBe(3);
    await topic.send(4);
    expect((await topic.subscriptions()).map((s) => s.name)).toEqual(['keep']);
    expect((await tidings.subscriptionCounts(topic.name))[topic.name]).toEqual({ keep: { acked: 4 } });
  });

  it('hands the messages of one key to handlers one at a time in the order they were stored, while other keys run alongside', { timeout: 40_000 }, async () => {
    const tidings = await instance();
    const topic = tidings.topic<{ key: string; seq: number }>(unique('ordered'), {
      semantic: 'exactly-once',
      ordering: 'key',
      subscriptions: ['a', 'b'],
      ...fast,
    });
    const keys = 8;
    const perKey = 6;
    const log: Record<string, string[]> = { a: [], b: [] };
    let inFlight = 0;
    let widest = 0;
    const running = new Set<string>();
    const overlaps: string[] = [];
    for (const sub of ['a', 'b']) {
      topic.subscription(sub).consume(
        async (m) => {
          const slot = `${sub}:${m.key}`;
          if (running.has(slot)) overlaps.push(`${slot}#${m.payload.seq}`);
          running.add(slot);
          widest = Math.max(widest, ++inFlight);
          // A first delivery fails now and then: the retry must still come before the key's next message.
          if (m.payload.seq % 3 === 1 && m.attempt === 1) {
            running.delete(slot);
            inFlight--;
            throw new Error('try again');
          }
          await new Promise((r) => setTimeout(r, 2));
          log[sub]!.push(`${m.key}:${m.payload.seq}`);
          running.delete(slot);
          inFlight--;
        },
        { concurrency: 8, batchSize: 20, pollMs: 10 },
      );
    }
    for (let seq = 0; seq < perKey; seq++) {
      await topic.sendMany(
        Array.from({ length: keys }, (_, k) => ({ key: `k${k}`, seq })),
        { id: (p) => `${p.key}-${p.seq}`, key: (p) => p.key },
      );
    }
    await until('every message in both subscriptions', () => log.a!.length === keys * perKey && log.b!.length === keys * perKey, 30_000);
    expect(overlaps).toEqual([]);
    for (const sub of ['a', 'b']) {
      for (let k = 0; k < keys; k++) {
        const order = log[sub]!.filter((e) => e.startsWith(`k${k}:`)).map((e) => Number(e.split(':')[1]));
        expect(order, `${sub} k${k}`).toEqual(Array.from({ length: perKey }, (_, i) => i));
      }
    }
    expect(widest).toBeGreaterThan(1);
  });

  it('refuses a process that declares the topic with another ordering: TOPIC_CONFLICT', async () => {
    const one = await instance();
    const two = await instance();
    const name = unique('conflict');
    await one.topic(name, { semantic: 'at-least-once', ordering: 'key' }).ready();
    await expect(two.topic(name, { semantic: 'at-least-once' }).ready()).rejects.toMatchObject({
      code: 'TOPIC_CONFLICT',
      message: expect.stringMatching(/ordered by key.*ordering 'none'/),
    });
  });
});
