import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PAUSE_CHECK_MS, Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { dlqDiscard, emptySubscription, messagesList, messagesShow, pauseSubscription, retryNow, run, stats, type Output } from '@tidings/cli';
import { freshPostgresDatabase } from '../../../test/support/databases.js';
import { leaseOne } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-cli-operator-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `operator-${++files}.db`);

/** Captures what a command writes, line by line. */
function capture(): Output & { stdout: string[]; stderr: string[]; text(): string } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t), text: () => stdout.join('\n') };
}

/** Runs the real command line, as `tidings <args>`, and returns its exit code with what it wrote. */
async function tidings(...args: string[]): Promise<{ code: number; stdout: string[]; stderr: string[]; text: string }> {
  const io = capture();
  const code = await run(['node', 'tidings', ...args], io);
  return { code, stdout: io.stdout, stderr: io.stderr, text: io.text() };
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Applications opened by a test, closed after it whatever happened. */
const opened: Tidings[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});
async function app(storage: StorageAdapter<any>): Promise<Tidings> {
  const t = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
  opened.push(t);
  return t;
}

/** Dead-letters the messages of a topic declared with `maxDeliveries: 1` by a consumer that throws for `dead` ids. */
async function consumeFailing(topic: ReturnType<Tidings['topic']>, dead: string[], error = 'card declined'): Promise<void> {
  const consumer = topic.consume(
    async (m) => {
      if (dead.includes(m.id)) throw new Error(error);
    },
    { pollMs: 10 },
  );
  await until('the dead letters', async () => ((await topic.subscription('default').counts()).dead ?? 0) === dead.length);
  await consumer.stop();
}

describe('tidings pause and resume', () => {
  it('records the pause with the subscription, so a running consumer leases nothing until resume, and shows it in stats', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    const orders = t.topic<{ n: number }>('orders', { semantic: 'at-least-once', subscriptions: ['billing'] });
    const handled: string[] = [];
    const consumer = orders.subscription('billing').consume(async (m) => void handled.push(m.id), { pollMs: 10 });
    await orders.send({ n: 1 }, { id: 'o-1' });
    await until('o-1 to be handled', () => handled.length === 1);

    const paused = await tidings('pause', 'orders', '--subscription', 'billing', '--db', db);
    expect(paused).toMatchObject({ code: 0, stderr: [] });
    expect(paused.stdout).toEqual([
      `Paused orders/billing: consumers in every process stop leasing within a second and finish what they hold; sends still store. \`tidings resume orders --subscription billing --db ${db}\` lets them go on.`,
    ]);
    const [record] = await t.subscriptions('orders');
    expect(record).toMatchObject({ name: 'billing', pausedAt: expect.any(Number) });

    // The consumer reads pauses every PAUSE_CHECK_MS; after that, what is sent waits.
    await sleep(2 * PAUSE_CHECK_MS);
    await orders.send({ n: 2 }, { id: 'o-2' });
    await sleep(2 * PAUSE_CHECK_MS);
    expect(handled).toEqual(['o-1']);
    expect(await orders.subscription('billing').counts()).toEqual({ acked: 1 });

    const row = (await stats({ db }, capture())).subscriptions[0]!;
    expect(row).toMatchObject({ subscription: 'billing', pausedAt: record!.pausedAt });
    const table = (await tidings('stats', '--db', db)).stdout[0]!.split('\n');
    expect(table[1]).toMatch(/^topic\s+subscription\s+ordering\s+acked\s+total\s+paused since$/);
    expect(table[2]).toBe(`orders  billing       none          1      1  ${new Date(record!.pausedAt!).toISOString()}`);

    const again = await tidings('pause', 'orders', '--subscription', 'billing', '--db', db);
    expect(again.stdout[0]).toBe(
      `orders/billing was already paused since ${new Date(record!.pausedAt!).toISOString()}; left as it was. \`tidings resume orders --subscription billing --db ${db}\` lets its consumers go on.`,
    );
    expect((await t.subscriptions('orders'))[0]!.pausedAt).toBe(record!.pausedAt);

    const resumed = await tidings('resume', 'orders', '--subscription', 'billing', '--db', db);
    expect(resumed).toMatchObject({
      code: 0,
      stdout: [`Resumed orders/billing (paused since ${new Date(record!.pausedAt!).toISOString()}): consumers in every process lease again within a second.`],
    });
    expect((await t.subscriptions('orders'))[0]!.pausedAt).toBeUndefined();
    await until('o-2 to be handled after resume', () => handled.length === 2, 5_000);
    expect(handled).toEqual(['o-1', 'o-2']);
    expect((await tidings('resume', 'orders', '--subscription', 'billing', '--db', db)).stdout).toEqual(['orders/billing is not paused; nothing to resume.']);
    await consumer.stop();
  });

  it('pauses the default subscription without --subscription, and prints JSON with --json', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    await t.topic('orders', { semantic: 'at-least-once' }).ready();
    const io = capture();
    const result = await pauseSubscription({ db, topic: 'orders', json: true, now: Date.UTC(2026, 0, 2) }, io);
    expect(result).toEqual({ subscription: 'default', paused: true, pausedAt: expect.any(Number), changed: true });
    expect(JSON.parse(io.text())).toEqual({
      db,
      topic: 'orders',
      subscription: 'default',
      paused: true,
      pausedAt: new Date(result.pausedAt!).toISOString(),
      changed: true,
    });
    expect((await tidings('resume', 'orders', '--db', db)).stdout[0]).toMatch(/^Resumed orders\/default \(paused since /);
  });
});

describe('tidings messages list', () => {
  it('pages through waiting messages in delivery order, printing the command for the next page, until there is none', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    const orders = t.topic<{ n: number }>('orders', { semantic: 'at-least-once', ordering: 'key' });
    await orders.sendMany(
      [1, 2, 3, 4, 5, 6, 7].map((n) => ({ n })),
      { id: (p) => `m-${p.n}`, key: (p) => `customer-${p.n % 2}` },
    );

    const first = await tidings('messages', 'list', 'orders', '--limit', '3', '--db', db);
    expect(first.code).toBe(0);
    const lines = first.stdout[0]!.split('\n');
    expect(lines[0]).toBe(`3 waiting messages of topic "orders" (SQLite file ${db}), in delivery order`);
    expect(lines[1]).toMatch(/^id\s+key\s+state\s+deliveries\s+available at\s+created at\s+last error$/);
    const cells = lines[2]!.split(/\s{2,}/);
    expect(cells.slice(0, 4)).toEqual(['m-1', 'customer-1', 'waiting', '0']);
    expect(cells[4]).toMatch(ISO);
    expect(cells[5]).toMatch(ISO);
    expect(lines[5]).toMatch(
      new RegExp(`^Next page: tidings messages list orders --state waiting --limit 3 --after \\S+ --db ${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
    );

    // Follow the printed command, as an operator would, page after page.
    const seen: string[] = [];
    let page = first;
    for (let pages = 1; ; pages++) {
      const text = page.stdout[0]!.split('\n');
      seen.push(
        ...text
          .slice(2)
          .filter((l) => l.startsWith('m-'))
          .map((l) => l.split(' ')[0]!),
      );
      const next = text.find((l) => l.startsWith('Next page: tidings '));
      if (!next) {
        expect(pages).toBe(3);
        break;
      }
      page = await tidings(...next.slice('Next page: tidings '.length).split(' '));
      expect(page.code).toBe(0);
    }
    expect(seen).toEqual(['m-1', 'm-2', 'm-3', 'm-4', 'm-5', 'm-6', 'm-7']);
  });

  it('prints { messages, next } with --json, filters by key, and lists one id in any state', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    const orders = t.topic<{ n: number }>('orders', { semantic: 'at-least-once', ordering: 'key' });
    await orders.sendMany(
      [1, 2, 3, 4, 5].map((n) => ({ n })),
      { id: (p) => `m-${p.n}`, key: (p) => `customer-${p.n % 2}` },
    );
    const io = capture();
    const result = await messagesList({ db, topic: 'orders', limit: 2, json: true }, io);
    const json = JSON.parse(io.text());
    expect(Object.keys(json)).toEqual(['db', 'topic', 'subscription', 'state', 'messages', 'next']);
    expect(json.messages.map((m: { id: string }) => m.id)).toEqual(['m-1', 'm-2']);
    expect(json.messages[0]).toMatchObject({
      id: 'm-1',
      key: 'customer-1',
      state: 'waiting',
      deliveries: 0,
      payload: { n: 1 },
      lastError: null,
      createdAt: expect.stringMatching(ISO),
    });
    expect(json.next).toBe(result.next);
    const rest = await messagesList({ db, topic: 'orders', after: result.next!, limit: 10 }, capture());
    expect(rest.messages.map((m) => m.id)).toEqual(['m-3', 'm-4', 'm-5']);
    expect(rest.next).toBeUndefined();

    expect((await messagesList({ db, topic: 'orders', key: 'customer-0' }, capture())).messages.map((m) => m.id)).toEqual(['m-2', 'm-4']);
    expect(await leaseOne(db, 'orders')).toBe('m-1');
    const one = await tidings('messages', 'list', 'orders', '--id', 'm-1', '--db', db);
    expect(one.stdout[0]!.split('\n')[0]).toBe(`1 message in any state with id "m-1" of topic "orders" (SQLite file ${db}), in delivery order`);
    expect(one.stdout[0]!.split('\n')[2]).toMatch(/^m-1\s+customer-1\s+leased\s+1\s/);
    expect((await tidings('messages', 'list', 'orders', '--state', 'leased', '--db', db)).stdout[0]).toContain('1 leased message of topic "orders"');
    expect((await tidings('messages', 'list', 'orders', '--state', 'dead', '--db', db)).stdout).toEqual([
      `No dead messages in topic "orders" (SQLite file ${db}).`,
    ]);
  });

  it('tells delayed messages from waiting ones, and retry-now makes them due', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    const orders = t.topic<{ n: number }>('orders', { semantic: 'at-least-once' });
    await orders.send({ n: 1 }, { id: 'now-1' });
    await orders.send({ n: 2 }, { id: 'later-1', delayMs: 3_600_000 });
    await orders.send({ n: 3 }, { id: 'later-2', delayMs: 3_600_000 });
    await orders.send({ n: 4 }, { id: 'now-2' });

    const ids = async (state?: string) => (await messagesList({ db, topic: 'orders', state }, capture())).messages.map((m) => m.id);
    expect(await ids()).toEqual(['now-1', 'now-2']);
    expect(await ids('delayed')).toEqual(['later-1', 'later-2']);
    const delayed = (await tidings('messages', 'list', 'orders', '--state', 'delayed', '--db', db)).stdout[0]!.split('\n');
    expect(delayed[2]).toMatch(/^later-1\s+delayed\s+0\s/);
    const availableAt = Date.parse(delayed[2]!.split(/\s{2,}/)[3]!);
    expect(availableAt).toBeGreaterThan(Date.now() + 3_500_000);

    const one = await tidings('retry-now', 'orders', '--id', 'later-2', '--id', 'now-1', '--db', db);
    expect(one).toMatchObject({
      code: 1,
      stdout: ['Made 1 delayed message of topic "orders" due now: consumers lease it on their next poll.'],
      stderr: ['tidings: not delayed messages of topic "orders", left as they are: now-1.'],
    });
    expect(await ids('delayed')).toEqual(['later-1']);
    expect(await retryNow({ db, topic: 'orders' }, capture())).toEqual({ subscription: 'default', retried: ['later-1'], missing: [] });
    expect(await ids('delayed')).toEqual([]);
    expect((await tidings('retry-now', 'orders', '--db', db)).stdout).toEqual([`No delayed messages in topic "orders" (SQLite file ${db}).`]);

    const handled: string[] = [];
    const consumer = orders.consume(async (m) => void handled.push(m.id), { pollMs: 10 });
    await until('every message, the delayed ones too, to be handled', () => handled.length === 4, 5_000);
    await consumer.stop();
  });
});

describe('tidings messages show', () => {
  it('shows one message in full: pretty payload, headers, deliveries, dates and the whole stack of its last error', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    const payments = t.topic<{ amount: number; card: { last4: string } }>('payments', { semantic: 'at-least-once', maxDeliveries: 1 });
    await payments.send({ amount: 42, card: { last4: '4242' } }, { id: 'pay-1', headers: { tenant: 'acme' } });
    await consumeFailing(payments, ['pay-1']);

    const shown = await tidings('messages', 'show', 'payments', 'pay-1', '--db', db);
    expect(shown.code).toBe(0);
    const text = shown.stdout[0]!;
    const lines = text.split('\n');
    expect(lines[0]).toBe(`Message "pay-1" of topic "payments" (SQLite file ${db})`);
    expect(lines[1]).toBe('state         dead');
    expect(lines[2]).toBe('key           (none)');
    expect(lines[3]).toBe('deliveries    1');
    expect(lines[4]).toMatch(/^created at {4}\d{4}-.*Z$/);
    expect(lines[5]).toMatch(/^available at {2}\d{4}-.*Z$/);
    expect(lines[6]).toBe('lease         none');
    expect(text).toContain(['headers', '  {', '    "tenant": "acme"', '  }'].join('\n'));
    expect(text).toContain(['payload', '  {', '    "amount": 42,', '    "card": {', '      "last4": "4242"', '    }', '  }'].join('\n'));
    const error = text.slice(text.indexOf('\nlast error\n') + '\nlast error\n'.length).split('\n');
    expect(error[0]).toBe('  Error: card declined');
    expect(error[1]).toMatch(/^\s+at /);

    const io = capture();
    await messagesShow({ db, topic: 'payments', id: 'pay-1', json: true }, io);
    const { message } = JSON.parse(io.text());
    expect(message).toMatchObject({
      id: 'pay-1',
      state: 'dead',
      deliveries: 1,
      payload: { amount: 42, card: { last4: '4242' } },
      headers: { tenant: 'acme' },
      leaseUntil: null,
    });
    expect(message.lastError).toMatch(/^Error: card declined\n\s+at /);
  });

  it('shows who holds a leased message, and until when', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    await t.topic('orders', { semantic: 'at-least-once' }).send({ n: 1 }, { id: 'o-1' });
    await leaseOne(db, 'orders');
    const lines = (await tidings('messages', 'show', 'orders', 'o-1', '--db', db)).stdout[0]!.split('\n');
    expect(lines[1]).toBe('state         leased');
    expect(lines[6]).toMatch(/^lease {9}held by another-process until \d{4}-.*Z$/);
  });

  it('refuses an id the subscription does not hold with MESSAGE_NOT_FOUND and exit code 1, saying how to list what it holds', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    await t.topic('orders', { semantic: 'at-least-once' }).send({ n: 1 }, { id: 'o-1' });
    await expect(messagesShow({ db, topic: 'orders', id: 'o-9' }, capture())).rejects.toMatchObject({ code: 'MESSAGE_NOT_FOUND' });
    const missing = await tidings('messages', 'show', 'orders', 'o-9', '--db', db);
    expect(missing).toMatchObject({ code: 1, stdout: [] });
    expect(missing.stderr).toEqual([
      `tidings: No message "o-9" in subscription "default" of topic "orders" (SQLite file ${db}): the id is mistyped, or the message was consumed and is gone. \`tidings messages list orders --db ${db}\` lists the messages it holds.`,
    ]);
  });
});

describe('tidings empty', () => {
  it('refuses without --yes, saying how many it would drop, and with --yes drops waiting and delayed messages but keeps the leased one', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    const orders = t.topic<{ n: number }>('orders', { semantic: 'at-least-once' });
    await orders.sendMany(
      [1, 2, 3].map((n) => ({ n })),
      { id: (p) => `o-${p.n}` },
    );
    await orders.send({ n: 4 }, { id: 'o-4', delayMs: 3_600_000 });
    expect(await leaseOne(db, 'orders')).toBe('o-1');

    const refused = await tidings('empty', 'orders', '--db', db);
    expect(refused).toMatchObject({ code: 1, stdout: [] });
    expect(refused.stderr).toEqual([
      `tidings: This would drop the 3 waiting or delayed messages of topic "orders" in SQLite file ${db} for good; nothing was dropped. To drop them, run it again with --yes: tidings empty orders --db ${db} --yes`,
    ]);
    await expect(emptySubscription({ db, topic: 'orders' }, capture())).rejects.toMatchObject({ code: 'CONFIRMATION_REQUIRED', count: 3 });
    expect(await orders.subscription('default').counts()).toEqual({ acked: 3, leased: 1 });

    const dropped = await tidings('empty', 'orders', '--yes', '--db', db);
    expect(dropped).toMatchObject({ code: 0, stderr: [] });
    expect(dropped.stdout).toEqual([`Dropped 3 waiting or delayed messages of topic "orders" (SQLite file ${db}); 1 leased message stays with its consumer.`]);
    expect(await orders.subscription('default').counts()).toEqual({ leased: 1 });
    expect((await messagesList({ db, topic: 'orders', state: 'leased' }, capture())).messages.map((m) => m.id)).toEqual(['o-1']);

    // Nothing left to drop needs no confirmation.
    expect(await tidings('empty', 'orders', '--db', db)).toMatchObject({
      code: 0,
      stdout: [`No waiting or delayed messages in topic "orders" to drop (SQLite file ${db}); 1 leased message stays with its consumer.`],
    });
  });
});

describe('tidings dlq discard', () => {
  it('refuses without --yes, then drops the named dead letters (naming ids that were not dead) or all of them', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    const orders = t.topic<{ n: number }>('orders', { semantic: 'at-least-once', maxDeliveries: 1 });
    await orders.sendMany(
      [1, 2, 3].map((n) => ({ n })),
      { id: (p) => `d-${p.n}` },
    );
    await consumeFailing(orders, ['d-1', 'd-2', 'd-3']);
    await orders.send({ n: 4 }, { id: 'w-1' });

    const refused = await tidings('dlq', 'discard', 'orders', '--db', db);
    expect(refused).toMatchObject({ code: 1, stdout: [] });
    expect(refused.stderr[0]).toBe(
      `tidings: This would drop all 3 dead letters of topic "orders" in SQLite file ${db} for good; nothing was dropped. To drop them, run it again with --yes: tidings dlq discard orders --db ${db} --yes`,
    );
    expect(await orders.subscription('default').counts()).toEqual({ acked: 1, dead: 3 });

    const some = await tidings('dlq', 'discard', 'orders', '--id', 'd-2', '--id', 'w-1', '--yes', '--db', db);
    expect(some).toMatchObject({
      code: 1,
      stdout: [`Discarded 1 dead letter of topic "orders" (SQLite file ${db}).`],
      stderr: ['tidings: not dead letters of topic "orders", left as they are: w-1.'],
    });
    // Dead letters list in the order they died, which concurrent deliveries leave open.
    expect((await messagesList({ db, topic: 'orders', state: 'dead' }, capture())).messages.map((m) => m.id).sort()).toEqual(['d-1', 'd-3']);
    expect(await dlqDiscard({ db, topic: 'orders', yes: true }, capture())).toEqual({ subscription: 'default', discarded: 2, missing: [] });
    expect(await orders.subscription('default').counts()).toEqual({ acked: 1 });
  });
});

describe('tidings stats and declared topics', () => {
  it('lists a declared topic that holds nothing, and one that records no subscription, with zero counts', async () => {
    const db = freshFile();
    const t = await app(sqliteStorage({ file: db }));
    await t.topic('orders', { semantic: 'at-least-once' }).send({ n: 1 });
    await t.topic('quiet', { semantic: 'exactly-once' }).ready();
    await t.topic('bare', { semantic: 'at-least-once', ordering: 'key' }).ready();
    // Its only subscription removed, the topic stays recorded with none.
    expect(await tidings('subscriptions', 'remove', 'bare', 'default', '--db', db)).toMatchObject({ code: 0 });

    const io = capture();
    const result = await stats({ db }, io);
    expect(result.subscriptions).toEqual([
      { topic: 'bare', subscription: null, ordering: 'key', counts: {}, total: 0, pausedAt: null },
      { topic: 'orders', subscription: 'default', ordering: 'none', counts: { acked: 1 }, total: 1, pausedAt: null },
      { topic: 'quiet', subscription: 'default', ordering: 'none', counts: {}, total: 0, pausedAt: null },
    ]);
    expect(result.topics).toEqual({ bare: {}, orders: { acked: 1 }, quiet: {} });
    expect(io.text().split('\n')).toEqual([
      `SQLite file ${db}`,
      'topic   subscription  ordering  acked  total',
      'bare    (none)        key           0      0',
      'orders  default       none          1      1',
      'quiet   default       none          0      0',
      '(all)                               1      1',
      '(none): the topic is recorded but records no subscription yet (none declared since, or all removed).',
    ]);
    expect((await stats({ db, topic: 'bare' }, capture())).subscriptions).toEqual([result.subscriptions[0]]);
    expect((await stats({ db, subscription: 'default' }, capture())).subscriptions.map((r) => r.topic)).toEqual(['orders', 'quiet']);
  });
});

describe('bad input', () => {
  let db: string;
  beforeAll(async () => {
    db = freshFile();
    const t = await Tidings.create({ storage: sqliteStorage({ file: db }), purgeIntervalMs: 0, logger: silentLogger });
    await t.topic('orders', { semantic: 'at-least-once' }).send({ n: 1 }, { id: 'o-1' });
    await t.close();
  });

  it.each([
    [
      ['messages', 'list', 'orders', '--state', 'pending'],
      'tidings: --state "pending" is not a state tidings messages list shows: pick one of waiting, delayed, leased, dead.',
    ],
    [['messages', 'list', 'orders', '--limit', '0'], 'tidings: --limit must be a whole number from 1 to 500, got "0".'],
    [['messages', 'list', 'orders', '--limit', '501'], 'tidings: --limit must be a whole number from 1 to 500, got "501".'],
    [
      ['messages', 'list', 'orders', '--after', 'page-two'],
      'tidings: "page-two" is not a cursor this storage made: pass the `next` of the page before, or leave it out to start from the first page.',
    ],
    [['messages', 'list', 'ordres'], 'UNKNOWN_TOPIC'],
    [['messages', 'show', 'ordres', 'o-1'], 'UNKNOWN_TOPIC'],
    [['pause', 'ordres'], 'UNKNOWN_TOPIC'],
    [['resume', 'ordres'], 'UNKNOWN_TOPIC'],
    [['empty', 'ordres', '--yes'], 'UNKNOWN_TOPIC'],
    [['retry-now', 'ordres'], 'UNKNOWN_TOPIC'],
    [['dlq', 'discard', 'ordres', '--yes'], 'UNKNOWN_TOPIC'],
    [['pause', 'orders', '--subscription', 'biling'], 'UNKNOWN_SUBSCRIPTION'],
    [['empty', 'orders'], 'CONFIRMATION_REQUIRED'],
  ])('refuses %j with one line on stderr and exit code 1', async (args, expected) => {
    const result = await tidings(...args, '--db', db);
    expect(result.code).toBe(1);
    expect(result.stdout).toEqual([]);
    expect(result.stderr).toHaveLength(1);
    if (expected.startsWith('tidings: ')) {
      expect(result.stderr[0]).toBe(expected);
    } else {
      expect(result.stderr[0]).toMatch(/^tidings: /);
      expect(result.stderr[0]).not.toMatch(/unexpected error/);
    }
  });

  it('throws typed errors with stable codes from the functions', async () => {
    await expect(messagesList({ db, topic: 'orders', state: 'pending' }, capture())).rejects.toMatchObject({ code: 'UNKNOWN_STATE' });
    await expect(messagesList({ db, topic: 'orders', limit: 0 }, capture())).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    await expect(messagesList({ db, topic: 'ordres' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_TOPIC',
      message: expect.stringContaining('Known topics: orders.'),
    });
    await expect(pauseSubscription({ db, topic: 'orders', subscription: 'biling' }, capture())).rejects.toMatchObject({
      code: 'UNKNOWN_SUBSCRIPTION',
      message: expect.stringContaining('Known subscriptions: default.'),
    });
    await expect(emptySubscription({ db, topic: 'orders' }, capture())).rejects.toMatchObject({ code: 'CONFIRMATION_REQUIRED' });
    await expect(retryNow({ db, topic: 'orders', ids: [''] }, capture())).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    // Nothing above changed the database.
    expect((await stats({ db }, capture())).subscriptions[0]).toMatchObject({ counts: { acked: 1 }, pausedAt: null });
  });
});

describe('tidings --help', () => {
  it('lists the operator verbs and their options', async () => {
    const top = await tidings('--help');
    expect(top.code).toBe(0);
    for (const verb of ['pause', 'resume', 'messages', 'empty', 'retry-now']) expect(top.text).toMatch(new RegExp(`^\\s+${verb} `, 'm'));
    expect((await tidings('dlq', '--help')).text).toMatch(/^\s+discard \[options\] <topic>/m);
    const list = await tidings('messages', 'list', '--help');
    expect(list.text).toContain('--state <state>        waiting | delayed | leased | dead');
    expect(list.text).toMatch(/--limit <n>\s+messages per page, 1 to 500/);
    expect((await tidings('empty', '--help')).text).toMatch(/--yes\s+drop them/);
  });
});

describe('operator verbs on PostgreSQL', () => {
  it('pause, list with paging, retry-now and empty work there too', async () => {
    const url = await freshPostgresDatabase('cli_operator');
    const t = await app(postgresStorage({ url }));
    const orders = t.topic<{ n: number }>('orders', { semantic: 'at-least-once' });
    await orders.sendMany(
      [1, 2, 3, 4, 5].map((n) => ({ n })),
      { id: (p) => `m-${p.n}` },
    );
    await orders.send({ n: 6 }, { id: 'later', delayMs: 3_600_000 });

    expect(await pauseSubscription({ db: url, topic: 'orders' }, capture())).toMatchObject({ paused: true, changed: true });
    expect((await t.subscriptions('orders'))[0]!.pausedAt).toEqual(expect.any(Number));
    const first = await messagesList({ db: url, topic: 'orders', limit: 2 }, capture());
    const second = await messagesList({ db: url, topic: 'orders', limit: 2, after: first.next }, capture());
    const third = await messagesList({ db: url, topic: 'orders', limit: 2, after: second.next }, capture());
    expect([first, second, third].flatMap((p) => p.messages.map((m) => m.id))).toEqual(['m-1', 'm-2', 'm-3', 'm-4', 'm-5']);
    expect(third.next).toBeUndefined();
    expect((await retryNow({ db: url, topic: 'orders' }, capture())).retried).toEqual(['later']);
    expect(await emptySubscription({ db: url, topic: 'orders', yes: true }, capture())).toEqual({ subscription: 'default', dropped: 6, leased: 0 });
    // A URL's password never reaches the printed next-page command.
    const io = capture();
    await orders.sendMany([1, 2].map((n) => ({ n })));
    await messagesList({ db: url, topic: 'orders', limit: 1 }, io);
    const db = new URL(url).password ? '<your --db URL>' : url;
    expect(io.text().split('\n').at(-1)).toMatch(/^Next page: tidings messages list orders --state waiting --limit 1 --after \S+ --db /);
    expect(io.text().endsWith(` --db ${db}`)).toBe(true);
  });
});
