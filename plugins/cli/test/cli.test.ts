import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger, type TopicOptions } from '@tidings/core';
import { topicTotals, type StateCounts, type StorageAdapter } from '@tidings/core/adapter';
import Database from 'better-sqlite3';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { dlqList, dlqRedrive, purge, run, stats, subscriptionsList, subscriptionsRemove, type Output, type SubscriptionStats } from '@tidings/cli';
import { freshPostgresDatabase } from '../../../test/support/databases.js';
import { leaseOne } from './support.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const pkg = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tidings-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DAY = 86_400_000;

/** What the database holds after `fill`, per topic over its subscriptions (receipts' default subscription holds nothing). */
const FILLED: StateCounts = { orders: { acked: 3, dead: 2 }, payments: { stored: 1, dead: 1 }, receipts: {} };

/** The same as `stats` rows: every topic of `fill` has its default subscription alone, and no ordering. */
const FILLED_ROWS: SubscriptionStats[] = [
  { topic: 'orders', subscription: 'default', ordering: 'none', counts: { acked: 3, dead: 2 }, total: 5, pausedAt: null },
  { topic: 'payments', subscription: 'default', ordering: 'none', counts: { stored: 1, dead: 1 }, total: 2, pausedAt: null },
  { topic: 'receipts', subscription: 'default', ordering: 'none', counts: {}, total: 0, pausedAt: null },
];

/** Captures what a command writes, line by line. */
function capture(): Output & { stdout: string[]; stderr: string[]; text(): string } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t), text: () => stdout.join('\n') };
}

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Fills a database the way an application would: orders (at-least-once) with 3 waiting and 2 dead-lettered,
 * payments (exactly-once, broker) with 1 waiting and 1 dead, and receipts (exactly-once, end-to-end) all
 * consumed, so only its dedup and idempotency records remain.
 */
async function fill(storage: StorageAdapter<any>): Promise<void> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
  try {
    const orders = tidings.topic<{ n: number }>('orders', { semantic: 'at-least-once', maxDeliveries: 1 });
    const payments = tidings.topic<{ n: number }>('payments', { semantic: 'exactly-once', scope: 'broker', maxDeliveries: 1 });
    const receipts = tidings.topic<{ n: number }>('receipts', { semantic: 'exactly-once', dedupWindowMs: 1_000, idempotencyWindowMs: 1_000 });
    const items = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ({ n: from + i }));
    await orders.sendMany(items(1, 5), { id: (p) => `order-${p.n}` });
    await payments.sendMany(items(1, 2), { id: (p) => `pay-${p.n}` });
    await receipts.sendMany(items(1, 2), { id: (p) => `receipt-${p.n}` });
    const fail = (n: number) => async (m: { payload: { n: number } }) => {
      if (m.payload.n <= n) throw new Error('refused');
    };
    const consumers = [orders.consume(fail(2), { pollMs: 10 }), payments.consume(fail(1), { pollMs: 10 }), receipts.consume(fail(0), { pollMs: 10 })];
    // Whatever order storage lists the topics in.
    await until('the first messages to settle', async () =>
      isDeepStrictEqual(topicTotals(await storage.counts()), { orders: { dead: 2 }, payments: { dead: 1 } }),
    );
    await Promise.all(consumers.map((c) => c.stop()));
    await orders.sendMany(items(6, 8), { id: (p) => `order-${p.n}` });
    await payments.send({ n: 3 }, { id: 'pay-3' });
  } finally {
    await tidings.close();
  }
}

/** A filled SQLite file of its own, so a test that changes it changes no other test's. */
const template = join(dir, 'template.db');
let copies = 0;
function filledCopy(): string {
  const file = join(dir, `copy-${++copies}.db`);
  copyFileSync(template, file);
  return file;
}

beforeAll(async () => {
  await fill(sqliteStorage({ file: template }));
  // The copies must not depend on a WAL file the template left behind.
  expect(readdirSync(dir).filter((f) => f.startsWith('template.db-'))).toEqual([]);
});

describe('tidings stats', () => {
  it('prints a row per topic and subscription with its ordering, its count per state and a total, declared subscriptions without messages included, and an all row', async () => {
    const io = capture();
    const result = await stats({ db: template }, io);
    expect(result).toEqual({ topics: FILLED, subscriptions: FILLED_ROWS });
    expect(io.text().split('\n')).toEqual([
      `SQLite file ${template}`,
      'topic     subscription  ordering  acked  stored  dead  total',
      'orders    default       none          3       0     2      5',
      'payments  default       none          0       1     1      2',
      'receipts  default       none          0       0     0      0',
      '(all)                                 3       1     3      7',
    ]);
  });

  it('prints JSON with --json, and one topic with --topic', async () => {
    const io = capture();
    await stats({ db: template, topic: 'payments', json: true }, io);
    expect(JSON.parse(io.text())).toEqual({ db: template, topics: { payments: FILLED.payments }, subscriptions: [FILLED_ROWS[1]] });
  });

  it('refuses a topic without messages, naming the topics there are', async () => {
    await expect(stats({ db: template, topic: 'ordres' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_TOPIC',
      message: `Topic "ordres" is unknown to SQLite file ${template}: no process declared it and it has no messages. Known topics: orders, payments, receipts.`,
    });
  });

  it('refuses a SQLite file that does not exist, saying where it looked, and does not create it', async () => {
    const missing = join(dir, 'nowhere', 'tidings.db');
    const error = await stats({ db: missing }, capture()).catch((e) => e);
    expect(error.code).toBe('DB_NOT_FOUND');
    expect(error.message).toContain(`No Tidings database at ${missing}`);
    expect(error.message).toContain('sqliteStorage');
    expect(existsSync(join(dir, 'nowhere'))).toBe(false);
  });

  it('refuses a file that is not a SQLite database, and leaves it as it was', async () => {
    const file = join(dir, 'notes.txt');
    copyFileSync(fileURLToPath(import.meta.url), file);
    const before = statSync(file).size;
    await expect(stats({ db: file }, capture())).rejects.toMatchObject({ code: 'NOT_A_DATABASE' });
    expect(statSync(file).size).toBe(before);
  });
});

describe('tidings dlq', () => {
  it('lists the dead letters of a topic, oldest first, with deliveries, payload and the error they died of', async () => {
    const io = capture();
    const result = await dlqList({ db: template, topic: 'orders' }, io);
    expect(result.total).toBe(2);
    expect(result.messages.map((m) => m.id)).toEqual(['order-1', 'order-2']);
    const lines = io.text().split('\n');
    expect(lines[0]).toBe(`2 dead letters in topic "orders" (SQLite file ${template})`);
    expect(lines[1]).toMatch(/^id\s+deliveries\s+created\s+payload\s+last error$/);
    expect(lines[2]).toMatch(/^order-1\s+1\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+\{"n":1\}\s+Error: refused$/);
    expect(lines).toHaveLength(4);
  });

  it('says how many it left out when --limit cuts the list, and prints parsed payloads with --json', async () => {
    const io = capture();
    await dlqList({ db: template, topic: 'orders', limit: 1 }, io);
    expect(io.text()).toContain('Showing 1 of 2; pass --limit 2 to see them all.');
    const json = capture();
    await dlqList({ db: template, topic: 'orders', limit: 1, json: true }, json);
    expect(JSON.parse(json.text())).toMatchObject({
      topic: 'orders',
      total: 2,
      messages: [{ id: 'order-1', deliveries: 1, payload: { n: 1 }, lastError: expect.stringMatching(/^Error: refused\n\s+at /) }],
    });
  });

  it('redrives one dead letter into the state its at-least-once topic waits in, read from the topic registry, and a consumer then gets it', async () => {
    const db = filledCopy();
    const io = capture();
    expect(await dlqRedrive({ db, topic: 'orders', ids: ['order-2'] }, io)).toEqual({ subscription: 'default', state: 'acked', redriven: 1, missing: [] });
    expect(io.text()).toBe('Redrove 1 dead letter of topic "orders" to state acked (at-least-once).');
    expect(io.stderr).toEqual([]);

    const tidings = await Tidings.create({ storage: sqliteStorage({ file: db }), purgeIntervalMs: 0 });
    const seen: string[] = [];
    const consumer = tidings.topic('orders', { semantic: 'at-least-once' }).consume(async (m) => void seen.push(m.id), { pollMs: 10 });
    await until('the redriven message', async () => seen.includes('order-2'));
    await consumer.stop();
    expect(await tidings.counts('orders')).toEqual({ orders: { dead: 1 } });
    await tidings.close();
  });

  it('redrives every dead letter of an exactly-once broker topic into stored', async () => {
    const db = filledCopy();
    expect(await dlqRedrive({ db, topic: 'payments' }, capture())).toEqual({ subscription: 'default', state: 'stored', redriven: 1, missing: [] });
    expect((await stats({ db }, capture())).topics.payments).toEqual({ stored: 2 });
  });

  it('names the requested ids that were not dead letters', async () => {
    const db = filledCopy();
    const io = capture();
    expect(await dlqRedrive({ db, topic: 'orders', ids: ['order-1', 'order-7', 'nope'] }, io)).toEqual({
      subscription: 'default',
      state: 'acked',
      redriven: 1,
      missing: ['order-7', 'nope'],
    });
    expect(io.stderr).toEqual(['tidings: not dead letters of topic "orders", left as they are: order-7, nope.']);
  });

  it.each([
    ['at-least-once', {}, 'acked'],
    ['exactly-once', { scope: 'broker' }, 'stored'],
    ['exactly-once', { scope: 'end-to-end' }, 'acked'],
  ] as const)(
    'redrives a %s %j topic whose only messages are dead letters to its ready state (%s), and its consumer gets them',
    async (semantic, extra, ready) => {
      const file = join(dir, `only-dead-${semantic}-${Object.values(extra).join('')}.db`);
      const options = { semantic, ...extra, maxDeliveries: 1 } as TopicOptions;
      const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
      const jobs = tidings.topic('jobs', options);
      await jobs.send({}, { id: 'job-1' });
      // Its one delivery fails, so the machine dead-letters it.
      const failing = jobs.consume(() => Promise.reject(new Error('declined')), { pollMs: 10 });
      await until('the dead letter', async () => (await tidings.deadLetters('jobs')).length === 1);
      await failing.stop();
      await tidings.close();
      const io = capture();
      expect(await dlqRedrive({ db: file, topic: 'jobs' }, io)).toEqual({ subscription: 'default', state: ready, redriven: 1, missing: [] });
      expect(io.stderr).toEqual([]);
      expect((await stats({ db: file }, capture())).topics.jobs).toEqual({ [ready]: 1 });

      const again = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
      const seen: string[] = [];
      const consumer = again.topic('jobs', options).consume(async (m) => void seen.push(m.id), { pollMs: 10 });
      await until('the redriven message', async () => seen.includes('job-1'));
      await consumer.stop();
      await again.close();
    },
  );

  it('says an at-most-once topic has nothing to redrive, since its machine never dead-letters, and touches nothing', async () => {
    const file = join(dir, 'only-dead-at-most-once.db');
    const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
    await tidings.topic('jobs', { semantic: 'at-most-once' }).ready();
    await tidings.close();
    // A row no at-most-once lifecycle can leave, as an operator's import might.
    const raw = new Database(file);
    raw
      .prepare(`INSERT INTO tidings_message (topic, id, body, state, deliveries, available_at, created_at) VALUES ('jobs', 'job-1', '{}', 'dead', 1, 0, 0)`)
      .run();
    raw.close();
    const io = capture();
    expect(await dlqRedrive({ db: file, topic: 'jobs' }, io)).toEqual({ subscription: 'default', state: 'stored', redriven: 0, missing: [] });
    expect(io.text()).toBe('Topic "jobs" is at-most-once: its messages are never dead-lettered, so there is nothing to redrive.');
    expect((await stats({ db: file }, capture())).topics.jobs).toEqual({ dead: 1 });
  });

  it('refuses to guess the semantic of a topic the registry does not record, saying how to get it recorded', async () => {
    const db = filledCopy();
    const raw = new Database(db);
    raw.prepare(`DELETE FROM tidings_topic WHERE name = 'orders'`).run();
    raw.close();
    await expect(dlqRedrive({ db, topic: 'orders' }, capture())).rejects.toMatchObject({
      code: 'TOPIC_NOT_RECORDED',
      message: expect.stringContaining('Start the application that declares it once'),
    });
    expect((await stats({ db }, capture())).topics.orders).toEqual(FILLED.orders);
  });

  it('lists no dead letters, and exits 0, for a recorded topic that holds no messages', async () => {
    const file = join(dir, 'empty-topic.db');
    const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
    await tidings.topic('quiet', { semantic: 'at-least-once' }).ready();
    await tidings.close();
    const io = capture();
    expect(await dlqList({ db: file, topic: 'quiet' }, io)).toEqual({ subscription: 'default', total: 0, messages: [] });
    expect(io.text()).toBe(`No dead letters in topic "quiet" (SQLite file ${file}).`);
    expect(await run(['node', 'tidings', 'dlq', 'list', 'quiet', '--db', file], capture())).toBe(0);
  });
});

/**
 * Fills a database with a topic of several subscriptions and no default one: shipments (at-least-once, ordered by
 * key) to billing, which dead-lettered ship-1 and ship-2 and consumed the rest, and email, which has not consumed
 * anything yet; audit was declared after the messages were stored, so it holds none.
 */
async function fillSubscribed(storage: StorageAdapter<any>): Promise<void> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
  try {
    const shipments = tidings.topic<{ n: number }>('shipments', {
      semantic: 'at-least-once',
      ordering: 'key',
      subscriptions: { billing: { maxDeliveries: 1 }, email: {} },
    });
    await shipments.sendMany(
      [1, 2, 3, 4].map((n) => ({ n })),
      { id: (p) => `ship-${p.n}`, key: (p) => `customer-${p.n}` },
    );
    const billing = shipments.subscription('billing');
    const consumer = billing.consume(
      async (m) => {
        if (m.payload.n <= 2) throw new Error('invoice refused');
      },
      { pollMs: 10 },
    );
    await until('billing to settle', async () => isDeepStrictEqual(await billing.counts(), { dead: 2 }));
    await consumer.stop();
    await shipments.subscription('audit').ready();
  } finally {
    await tidings.close();
  }
}

/** What `fillSubscribed` leaves, as `stats` rows. */
const SUBSCRIBED_ROWS: SubscriptionStats[] = [
  { topic: 'shipments', subscription: 'audit', ordering: 'key', counts: {}, total: 0, pausedAt: null },
  { topic: 'shipments', subscription: 'billing', ordering: 'key', counts: { dead: 2 }, total: 2, pausedAt: null },
  { topic: 'shipments', subscription: 'email', ordering: 'key', counts: { acked: 4 }, total: 4, pausedAt: null },
];

describe('tidings and subscriptions', () => {
  const subscribed = join(dir, 'subscribed.db');
  let copiesMade = 0;
  const subscribedCopy = () => {
    const file = join(dir, `subscribed-${++copiesMade}.db`);
    copyFileSync(subscribed, file);
    return file;
  };
  beforeAll(() => fillSubscribed(sqliteStorage({ file: subscribed })));

  it('prints a row per subscription with its own counts, the ordering, and the subscription that holds nothing', async () => {
    const io = capture();
    expect(await stats({ db: subscribed }, io)).toEqual({ topics: { shipments: { acked: 4, dead: 2 } }, subscriptions: SUBSCRIBED_ROWS });
    expect(io.text().split('\n')).toEqual([
      `SQLite file ${subscribed}`,
      'topic      subscription  ordering  acked  dead  total',
      'shipments  audit         key           0     0      0',
      'shipments  billing       key           0     2      2',
      'shipments  email         key           4     0      4',
      '(all)                                  4     2      6',
    ]);
  });

  it('shows one subscription with --subscription, and refuses one that no topic has, naming those there are', async () => {
    const io = capture();
    await stats({ db: subscribed, subscription: 'email', json: true }, io);
    expect(JSON.parse(io.text())).toEqual({ db: subscribed, topics: { shipments: { acked: 4 } }, subscriptions: [SUBSCRIBED_ROWS[2]] });
    await expect(stats({ db: subscribed, topic: 'shipments', subscription: 'emails' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_SUBSCRIPTION',
      message: `Subscription "emails" is unknown to topic "shipments" in SQLite file ${subscribed}: no process declared it and it holds no messages. Known subscriptions: audit, billing, email.`,
    });
  });

  it("lists and redrives one subscription's dead letters, leaving the other subscriptions' copies as they are", async () => {
    const db = subscribedCopy();
    const io = capture();
    const listed = await dlqList({ db, topic: 'shipments', subscription: 'billing' }, io);
    expect([listed.subscription, listed.total, listed.messages.map((m) => m.id)]).toEqual(['billing', 2, ['ship-1', 'ship-2']]);
    expect(io.text().split('\n')[0]).toBe(`2 dead letters in subscription "billing" of topic "shipments" (SQLite file ${db})`);
    expect(await dlqList({ db, topic: 'shipments', subscription: 'email' }, capture())).toEqual({ subscription: 'email', total: 0, messages: [] });
    const redriven = capture();
    expect(await dlqRedrive({ db, topic: 'shipments', subscription: 'billing', ids: ['ship-2'] }, redriven)).toEqual({
      subscription: 'billing',
      state: 'acked',
      redriven: 1,
      missing: [],
    });
    expect(redriven.text()).toBe('Redrove 1 dead letter of subscription "billing" of topic "shipments" to state acked (at-least-once).');
    expect((await stats({ db }, capture())).subscriptions.map((r) => [r.subscription, r.counts])).toEqual([
      ['audit', {}],
      ['billing', { acked: 1, dead: 1 }],
      ['email', { acked: 4 }],
    ]);

    // The redriven copy goes to billing's consumers alone, under the topic's recorded ordering.
    const tidings = await Tidings.create({ storage: sqliteStorage({ file: db }), purgeIntervalMs: 0, logger: silentLogger });
    const seen: string[] = [];
    const billing = tidings.topic('shipments', { semantic: 'at-least-once', ordering: 'key', subscriptions: ['billing'] }).subscription('billing');
    const consumer = billing.consume(async (m) => void seen.push(`${m.subscription}:${m.id}:${m.key}`), { pollMs: 10 });
    await until('the redriven copy', async () => seen.length === 1);
    await consumer.stop();
    await tidings.close();
    expect(seen).toEqual(['billing:ship-2:customer-2']);
  });

  it('refuses to pick a subscription for a topic that has no default one, naming its subscriptions, and one the topic does not have', async () => {
    const db = subscribedCopy();
    for (const command of [() => dlqList({ db, topic: 'shipments' }, capture()), () => dlqRedrive({ db, topic: 'shipments' }, capture())]) {
      await expect(command()).rejects.toMatchObject({
        code: 'SUBSCRIPTION_REQUIRED',
        message: 'Topic "shipments" has no default subscription, so name one with --subscription: audit, billing, email (e.g. --subscription audit).',
      });
    }
    await expect(dlqRedrive({ db, topic: 'shipments', subscription: 'biling' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_SUBSCRIPTION',
      message: expect.stringContaining('Known subscriptions: audit, billing, email.'),
    });
    await expect(dlqList({ db, topic: 'orders', subscription: 'billing' }, capture())).rejects.toMatchObject({ code: 'UNKNOWN_TOPIC' });
    expect((await stats({ db }, capture())).subscriptions).toEqual(SUBSCRIBED_ROWS);
  });

  it('lists the recorded subscriptions with their delivery limit, dead-letter topic and copies, of one topic or all', async () => {
    const io = capture();
    const listed = await subscriptionsList({ db: subscribed }, io);
    expect(listed.map((s) => [s.topic, s.name, s.maxDeliveries, s.deadLetter, s.messages])).toEqual([
      ['shipments', 'audit', 5, undefined, 0],
      ['shipments', 'billing', 1, undefined, 2],
      ['shipments', 'email', 5, undefined, 4],
    ]);
    const lines = io.text().split('\n');
    expect(lines[1]).toMatch(/^topic\s+subscription\s+max deliveries\s+dead letters to\s+declared\s+messages$/);
    expect(lines[3]).toMatch(/^shipments\s+billing\s+1\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+2$/);
    const json = capture();
    await subscriptionsList({ db: template, topic: 'orders', json: true }, json);
    expect(JSON.parse(json.text())).toEqual({
      db: template,
      subscriptions: [
        {
          topic: 'orders',
          name: 'default',
          maxDeliveries: 1,
          deadLetter: null,
          declaredAt: expect.stringMatching(/Z$/),
          counts: { acked: 3, dead: 2 },
          messages: 5,
          pausedAt: null,
        },
      ],
    });
    await expect(subscriptionsList({ db: template, topic: 'ordres' }, capture())).rejects.toMatchObject({ code: 'UNKNOWN_TOPIC' });
  });

  it('removes a subscription with every copy it holds, and says how many; the others keep theirs', async () => {
    const db = subscribedCopy();
    const io = capture();
    expect(await subscriptionsRemove({ db, topic: 'shipments', subscription: 'billing' }, io)).toEqual({ dropped: 2, leased: 0 });
    expect(io.text()).toBe(`Removed subscription "billing" of topic "shipments" from SQLite file ${db}, with the 2 copies of messages it held.`);
    expect((await stats({ db }, capture())).subscriptions).toEqual([SUBSCRIBED_ROWS[0], SUBSCRIBED_ROWS[2]]);
    expect((await subscriptionsList({ db }, capture())).map((s) => s.name)).toEqual(['audit', 'email']);
    await expect(subscriptionsRemove({ db, topic: 'shipments', subscription: 'billing' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_SUBSCRIPTION',
      message: expect.stringContaining('Known subscriptions: audit, email.'),
    });
  });

  it('refuses to remove a subscription while a copy of it is leased, and removes it with --force', async () => {
    const db = subscribedCopy();
    expect(await leaseOne(db, 'shipments', 'email')).toBe('ship-1');
    await expect(subscriptionsRemove({ db, topic: 'shipments', subscription: 'email' }, capture())).rejects.toMatchObject({
      code: 'SUBSCRIPTION_IN_USE',
      message: expect.stringMatching(/^Subscription "email" of topic "shipments" has 1 leased message: .* pass --force/),
    });
    expect((await stats({ db, subscription: 'email' }, capture())).subscriptions[0]!.counts).toEqual({ acked: 3, leased: 1 });
    const io = capture();
    expect(await subscriptionsRemove({ db, topic: 'shipments', subscription: 'email', force: true, json: true }, io)).toEqual({ dropped: 4, leased: 1 });
    expect(JSON.parse(io.text())).toEqual({ db, topic: 'shipments', subscription: 'email', dropped: 4, leased: 1, forced: true });
    expect((await stats({ db }, capture())).subscriptions.map((r) => r.subscription)).toEqual(['audit', 'billing']);
  });

  it('exits 1 with one line on stderr for an unknown subscription or a leased one, naming what there is', async () => {
    const db = subscribedCopy();
    await leaseOne(db, 'shipments', 'email');
    const argv = (...args: string[]) => ['node', 'tidings', ...args, '--db', db];
    const cases: Array<[string[], string]> = [
      [
        ['dlq', 'list', 'shipments'],
        'tidings: Topic "shipments" has no default subscription, so name one with --subscription: audit, billing, email (e.g. --subscription audit).',
      ],
      [
        ['dlq', 'redrive', 'shipments', '--subscription', 'nope'],
        `tidings: Subscription "nope" is unknown to topic "shipments" in SQLite file ${db}: no process declared it and it holds no messages. Known subscriptions: audit, billing, email.`,
      ],
      [
        ['stats', '--subscription', 'nope'],
        `tidings: Subscription "nope" is unknown to any topic of SQLite file ${db}: no process declared it and it holds no messages. Known subscriptions: audit, billing, email.`,
      ],
      [
        ['subscriptions', 'remove', 'shipments', 'email'],
        expect.stringMatching(/^tidings: Subscription "email" of topic "shipments" has 1 leased message/) as unknown as string,
      ],
      [
        ['subscriptions', 'remove', 'shipment', 'email'],
        expect.stringMatching(/^tidings: Topic "shipment" is unknown to SQLite file .* Known topics: shipments\.$/) as unknown as string,
      ],
    ];
    for (const [args, line] of cases) {
      const io = capture();
      expect([args, await run(argv(...args), io)]).toEqual([args, 1]);
      expect(io.stderr).toEqual([line]);
      expect(io.stdout).toEqual([]);
    }
    const removed = capture();
    expect(await run(argv('subscriptions', 'remove', 'shipments', 'email', '--force'), removed)).toBe(0);
    expect(removed.stdout[0]).toMatch(/with the 4 copies of messages it held \(1 of them leased: their consumers lose the leases\)\.$/);
  });
});

describe('tidings purge', () => {
  it('drops expired dedup and idempotency records and keeps dead letters unless --dead-older-than is given', async () => {
    const db = filledCopy();
    const io = capture();
    expect(await purge({ db, now: Date.now() + 2 * DAY }, io)).toEqual({ dedup: 2, idempotency: 2, dead: 0, total: 4 });
    expect(io.text()).toBe(
      `Purged 4 rows from SQLite file ${db}: 2 expired dedup records, 2 expired idempotency records, no dead letters (pass --dead-older-than 7d to drop old ones).`,
    );
    expect(await purge({ db, now: Date.now() + 2 * DAY }, capture())).toEqual({ dedup: 0, idempotency: 0, dead: 0, total: 0 });
  });

  it('drops only the dead letters older than --dead-older-than, of one topic with --topic', async () => {
    const db = filledCopy();
    expect(await purge({ db, topic: 'orders', deadOlderThanMs: DAY, now: Date.now() + DAY / 2 }, capture())).toMatchObject({ dead: 0 });
    const io = capture();
    expect(await purge({ db, topic: 'orders', deadOlderThanMs: DAY, now: Date.now() + 2 * DAY }, io)).toEqual({ dedup: 0, idempotency: 0, dead: 2, total: 2 });
    expect(io.text()).toContain('2 dead letters older than 1d');
    expect((await stats({ db }, capture())).topics).toEqual({ ...FILLED, orders: { acked: 3 } });
  });

  it('knows a topic that holds only dedup records, and refuses one that holds nothing', async () => {
    const db = filledCopy();
    await expect(purge({ db, topic: 'reciepts' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_TOPIC',
      message: expect.stringContaining('orders, payments, receipts'),
    });
    expect(await purge({ db, topic: 'receipts', now: Date.now() + 2 * DAY }, capture())).toMatchObject({ dedup: 2 });
  });
});

describe('the tidings command line, in process', () => {
  const argv = (...args: string[]) => ['node', 'tidings', ...args];

  it.each([
    [['dlq', 'list', 'orders', '--limit', 'ten', '--db', template], 'tidings: --limit must be a whole number >= 1, got "ten".'],
    [
      ['purge', '--dead-older-than', '7 days', '--db', template],
      'tidings: --dead-older-than takes milliseconds or a whole number with a unit (30m, 12h, 7d, 2w), got "7 days".',
    ],
    [['dlq', 'redrive', 'orders', '--semantic', 'at-least-once', '--db', template], "tidings: unknown option '--semantic'"],
    [['demo', '--messages', '-5'], 'tidings: --messages must be a whole number >= 1, got "-5".'],
    [['demo', '--seed', 'lucky'], 'tidings: --seed must be a whole number >= 0, got "lucky".'],
    [['stats', '--colour'], "tidings: unknown option '--colour'"],
    [
      ['stats', '--db', 'mysql://app:s3cret@db/orders'],
      'tidings: --db mysql://app:***@db/orders is not a database tidings can open: pass a SQLite file path or a postgres:// URL.',
    ],
  ])('refuses %j with one line on stderr and exit code 1', async (args, line) => {
    const io = capture();
    expect(await run(argv(...args), io)).toBe(1);
    expect(io.stderr[0]).toBe(line);
    expect(io.stdout).toEqual([]);
  });

  it('exits 1 when a requested id was not a dead letter, after redriving the others', async () => {
    const db = filledCopy();
    const io = capture();
    expect(await run(argv('dlq', 'redrive', 'orders', '--id', 'order-1', '--id', 'order-9', '--db', db), io)).toBe(1);
    expect(io.stdout[0]).toMatch(/^Redrove 1 dead letter of topic "orders"/);
  });

  it('hands the demo its options and prints the random seed it chose, on stderr so --json stays clean', async () => {
    const io = capture();
    const write = process.stdout.write;
    // The demo prints its report itself; keep it out of the test's output.
    process.stdout.write = (() => true) as typeof process.stdout.write;
    try {
      expect(await run(argv('demo', '--json', '--messages', '20', '--faults', 'none', '--dir', join(dir, 'demo')), io)).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(/^seed \d+ \(replay with --seed \d+\)$/);
  });

  it('shows an unreachable PostgreSQL URL without its password', async () => {
    const io = capture();
    expect(await run(argv('stats', '--db', 'postgres://app:s3cret@127.0.0.1:9/orders'), io)).toBe(1);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(/^tidings: .*postgres:\/\/app:\*\*\*@127\.0\.0\.1:9\/orders/);
    expect(io.stderr[0]).not.toContain('s3cret');
  });
});

describe('tidings on PostgreSQL', () => {
  let url: string;
  beforeAll(async () => {
    url = await freshPostgresDatabase('cli');
    await fill(postgresStorage({ url }));
  });

  it('counts, lists and redrives like on SQLite', async () => {
    expect(await stats({ db: url }, capture())).toEqual({ topics: FILLED, subscriptions: FILLED_ROWS });
    expect((await dlqList({ db: url, topic: 'orders' }, capture())).messages.map((m) => m.id)).toEqual(['order-1', 'order-2']);
    expect(await dlqRedrive({ db: url, topic: 'payments', ids: ['pay-1'] }, capture())).toEqual({
      subscription: 'default',
      state: 'stored',
      redriven: 1,
      missing: [],
    });
    expect(await purge({ db: url, now: Date.now() + 2 * DAY }, capture())).toEqual({ dedup: 2, idempotency: 2, dead: 0, total: 4 });
    expect((await stats({ db: url }, capture())).topics).toEqual({ ...FILLED, payments: { stored: 2 } });
  });

  it('counts, lists, redrives and removes per subscription like on SQLite', async () => {
    const subscribed = await freshPostgresDatabase('cli_subscriptions');
    await fillSubscribed(postgresStorage({ url: subscribed }));
    expect((await stats({ db: subscribed }, capture())).subscriptions).toEqual(SUBSCRIBED_ROWS);
    expect((await dlqList({ db: subscribed, topic: 'shipments', subscription: 'billing' }, capture())).messages.map((m) => m.id)).toEqual(['ship-1', 'ship-2']);
    await expect(dlqList({ db: subscribed, topic: 'shipments' }, capture())).rejects.toMatchObject({ code: 'SUBSCRIPTION_REQUIRED' });
    expect(await dlqRedrive({ db: subscribed, topic: 'shipments', subscription: 'billing' }, capture())).toMatchObject({
      subscription: 'billing',
      redriven: 2,
    });
    expect(await subscriptionsRemove({ db: subscribed, topic: 'shipments', subscription: 'email' }, capture())).toEqual({ dropped: 4, leased: 0 });
    expect((await subscriptionsList({ db: subscribed }, capture())).map((r) => [r.name, r.counts])).toEqual([
      ['audit', {}],
      ['billing', { acked: 2 }],
    ]);
  });

  it('refuses an unknown topic there too, naming the topics it has', async () => {
    await expect(dlqList({ db: url, topic: 'nope' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_TOPIC',
      message: expect.stringContaining('Known topics: orders, payments, receipts.'),
    });
  });

  it('refuses a database the server does not have, and does not create it', async () => {
    const missing = url.replace(/\/[^/]*$/, '/no_such_db');
    await expect(stats({ db: missing }, capture())).rejects.toMatchObject({
      code: 'DB_NOT_FOUND',
      message: expect.stringContaining('"no_such_db" does not exist'),
    });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query(`SELECT 1 FROM pg_database WHERE datname = 'no_such_db'`);
    await client.end();
    expect(rows).toEqual([]);
  });
});

describe('the tidings bin, spawned', () => {
  const bin = join(pkg, 'bin', 'tidings.js');
  const tidings = (...args: string[]) =>
    promisify(execFile)(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 20_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  beforeAll(() => {
    // The bin runs dist/, which `npm ci` builds; rebuild it only when the sources are newer, so the test checks this code.
    const built = join(pkg, 'dist', 'cli.js');
    const newest = Math.max(...readdirSync(join(pkg, 'src')).map((f) => statSync(join(pkg, 'src', f)).mtimeMs));
    if (!existsSync(built) || statSync(built).mtimeMs < newest) execFileSync('npm', ['run', 'build', '-w', '@tidings/cli'], { cwd: root, stdio: 'ignore' });
  });

  it('prints the counts as JSON and exits 0', async () => {
    const r = await tidings('stats', '--json', '--db', template);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual({ db: template, topics: FILLED, subscriptions: FILLED_ROWS });
  });

  it('reads .tidings/tidings.db in the working folder by default, and says so when it is missing, with no stack trace', async () => {
    const r = await tidings('stats');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `tidings: No Tidings database at ${join(dir, '.tidings', 'tidings.db')} (--db .tidings/tidings.db). ` +
        `An application creates it when it opens sqliteStorage({ file: '.tidings/tidings.db' }); run tidings from the folder that holds it, or pass --db <file> (or --db postgres://user:password@host:5432/db).\n`,
    );
    expect(existsSync(join(dir, '.tidings'))).toBe(false);
  });

  it.each([
    [['dlq', 'list', 'ordres', '--db', template], /^tidings: Topic "ordres" is unknown to SQLite file .*Known topics: orders, payments, receipts\.\n$/],
    [['stats', '--db', 'postgres://app:s3cret@127.0.0.1:9/orders'], /^tidings: .*postgres:\/\/app:\*\*\*@127\.0\.0\.1:9\/orders.*\n$/],
    [['stats', '--db', 'postgres://app:s3cret@no host/orders'], /^tidings: .*"postgres:\/\/app:\*\*\*@no host\/orders" is not a URL.*\n$/],
    [['purge', '--dead-older-than', 'soon', '--db', template], /^tidings: --dead-older-than takes milliseconds or a whole number with a unit .*\n$/],
    [
      ['dlq', 'redrive', 'orders', '--subscription', 'billing', '--db', template],
      /^tidings: Subscription "billing" is unknown to topic "orders" in SQLite file .*Known subscriptions: default\.\n$/,
    ],
    [
      ['subscriptions', 'list', '--topic', 'ordres', '--db', template],
      /^tidings: Topic "ordres" is unknown to SQLite file .*Known topics: orders, payments, receipts\.\n$/,
    ],
  ])('exits 1 with one line on stderr for %j', async (args, stderr) => {
    const r = await tidings(...args);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toMatch(stderr);
    expect(r.stderr).not.toContain('s3cret');
  });

  it('opens the database --db names even where MIKRO_ORM_* variables or a .env file name another', async () => {
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, '.env'), `MIKRO_ORM_DB_NAME=${join(app, 'from-dotenv.db')}\n`);
    const r = await promisify(execFile)(process.execPath, [bin, 'stats', '--json', '--db', template], {
      cwd: app,
      env: { ...process.env, MIKRO_ORM_CLIENT_URL: 'postgres://elsewhere/db' },
      encoding: 'utf8',
    });
    expect(JSON.parse(r.stdout).topics).toEqual(FILLED);
    expect(readdirSync(app)).toEqual(['.env']);
  });

  it('lists the subscription commands and options in its help', async () => {
    const top = await tidings('--help');
    expect(top).toMatchObject({ code: 0, stderr: '' });
    expect(top.stdout).toMatch(/^\s+subscriptions\s+the subscriptions storage records/m);
    const stats = await tidings('stats', '--help');
    expect(stats.stdout).toContain('--subscription <name>');
    expect(stats.stdout).toMatch(/a row per topic and\s+subscription/);
    expect((await tidings('dlq', 'redrive', '--help')).stdout).toContain('--subscription <name>');
    const remove = await tidings('subscriptions', 'remove', '--help');
    expect(remove.stdout).toMatch(/^Usage: tidings subscriptions remove \[options\] <topic> <name>$/m);
    expect(remove.stdout).toContain('--force');
  });

  it('runs as `npx tidings` from the repository root', () => {
    expect(execFileSync('npx', ['--no-install', 'tidings', '--version'], { cwd: root, encoding: 'utf8' }).trim()).toBe('0.1.0');
  });
});
