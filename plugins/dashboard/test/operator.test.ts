import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import { ACTIONS, createDashboard, type MessagesPage, type Snapshot } from '@tidings/dashboard';
import { events, fill, instrumented, until } from './support.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function running(storage: StorageAdapter<any> = memoryStorage()) {
  const { tidings, metrics } = await instrumented(storage);
  cleanup.push(() => tidings.close({ graceMs: 0 }));
  await fill(tidings);
  const dashboard = createDashboard({ tidings, metrics });
  cleanup.push(() => dashboard.close());
  const { url } = await dashboard.listen();
  return { tidings, url };
}

async function post(url: string, verb: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(`api/${verb}`, url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function get<T>(url: string, path: string, params: Record<string, string>): Promise<{ status: number; body: T & { error?: { code: string } } }> {
  const res = await fetch(new URL(`${path}?${new URLSearchParams(params)}`, url));
  return { status: res.status, body: (await res.json()) as T & { error?: { code: string } } };
}

const orders = (tidings: Tidings<any>) => tidings.topic<{ n: number }>('orders', { semantic: 'at-least-once', maxDeliveries: 1 });

describe('operator actions over HTTP', () => {
  it('pauses a subscription so that a consumer in this process stops leasing and says so, and resumes it', async () => {
    const { tidings, url } = await running();
    const got: string[] = [];
    const consumer = orders(tidings).consume((m) => void got.push(m.id), { pollMs: 5 });
    cleanup.push(() => consumer.stop());
    await until('the waiting orders to be consumed', () => got.length === 2);
    const paused = await post(url, 'pause', { topic: 'orders' });
    expect(paused).toMatchObject({ status: 200, body: { topic: 'orders', subscription: 'default', paused: true, pausedAt: expect.any(Number) } });
    await until('the consumer to be paused', () => consumer.state === 'paused', 1_000);
    await orders(tidings).send({ n: 9 }, { id: 'order-9' });
    await new Promise((r) => setTimeout(r, 300));
    expect(got).not.toContain('order-9');
    const pausedAt = async () =>
      ((await (await fetch(new URL('api/snapshot', url))).json()) as Snapshot).topics.find((t) => t.name === 'orders')!.subscriptions[0]!.pausedAt;
    await until('the snapshot to show the pause', async () => (await pausedAt()) !== undefined);
    expect(await post(url, 'resume', { topic: 'orders' })).toMatchObject({ status: 200, body: { paused: false } });
    await until('order-9 to be consumed after the resume', () => got.includes('order-9'));
  });

  it('empties only with confirm: true, saying how many it would drop, and leaves leased messages', async () => {
    const { tidings, url } = await running();
    const refused = await post(url, 'empty', { topic: 'orders' });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('CONFIRMATION_REQUIRED');
    expect(refused.body.error.message).toContain('(2 now)');
    expect((await tidings.counts('orders')).orders).toEqual({ acked: 2, dead: 2 });
    expect(await post(url, 'empty', { topic: 'orders', confirm: true })).toMatchObject({ status: 200, body: { emptied: 2 } });
    expect((await tidings.counts('orders')).orders).toEqual({ dead: 2 });
  });

  it('discards one dead letter, names an id that is not one, and discards all only when confirmed', async () => {
    const { tidings, url } = await running();
    expect(await post(url, 'discard', { topic: 'orders', ids: ['order-1', 'order-3'] })).toMatchObject({
      status: 200,
      body: { discarded: 1, missing: ['order-3'] },
    });
    expect((await post(url, 'discard', { topic: 'orders' })).body.error.code).toBe('CONFIRMATION_REQUIRED');
    expect(await post(url, 'discard', { topic: 'orders', confirm: true })).toMatchObject({ status: 200, body: { discarded: 1 } });
    expect((await tidings.counts('orders')).orders).toEqual({ acked: 2 });
    expect((await post(url, 'discard', { topic: 'clicks', ids: ['x'] })).status).toBe(409);
  });

  it('makes a delayed message due now, after which a consumer gets it', async () => {
    const { tidings, url } = await running();
    await orders(tidings).send({ n: 7 }, { id: 'later', delayMs: 3_600_000 });
    const delayed = await get<MessagesPage>(url, 'api/messages', { topic: 'orders', view: 'delayed' });
    expect(delayed.body.messages.map((m) => m.id)).toEqual(['later']);
    expect(await post(url, 'retry-now', { topic: 'orders', ids: ['later', 'order-3'] })).toMatchObject({
      status: 200,
      body: { retried: 1, missing: ['order-3'] },
    });
    expect((await get<MessagesPage>(url, 'api/messages', { topic: 'orders', view: 'delayed' })).body.messages).toEqual([]);
    const got: string[] = [];
    const consumer = orders(tidings).consume((m) => void got.push(m.id), { pollMs: 5 });
    cleanup.push(() => consumer.stop());
    await until('the message made due to be consumed', () => got.includes('later'));
  });

  it('wakes a consumer of this process at once when it makes a delayed message due, not at its next poll', async () => {
    const { tidings, url } = await running();
    const got: string[] = [];
    // A poll of a minute: only a wake-up can deliver within the test.
    const consumer = orders(tidings).consume((m) => void got.push(m.id), { pollMs: 60_000 });
    cleanup.push(() => consumer.stop());
    await until('the waiting orders to be consumed', () => got.length === 2);
    await orders(tidings).send({ n: 7 }, { id: 'later', delayMs: 3_600_000 });
    await new Promise((r) => setTimeout(r, 100));
    const asked = performance.now();
    expect(await post(url, 'retry-now', { topic: 'orders', ids: ['later'] })).toMatchObject({ status: 200, body: { retried: 1 } });
    await until('the message made due to be consumed', () => got.includes('later'), 2_000);
    expect(performance.now() - asked).toBeLessThan(2_000);
  });

  it('redrives some dead letters by id, and all only when confirmed', async () => {
    const { tidings, url } = await running();
    expect(await post(url, 'redrive', { topic: 'orders', ids: ['order-1', 'order-2'] })).toMatchObject({ status: 200, body: { redriven: 2, missing: [] } });
    expect((await tidings.counts('orders')).orders).toEqual({ acked: 4 });
    expect((await post(url, 'redrive', { topic: 'orders' })).body.error).toMatchObject({
      code: 'CONFIRMATION_REQUIRED',
      message: expect.stringContaining('(0 now)'),
    });
  });

  it('answers mistakes with typed JSON errors: 400, 404, 405, and 501 for a verb the adapter lacks', async () => {
    const { url } = await running();
    expect(await post(url, 'pause', { topic: 'orders', subscription: 'nope' })).toMatchObject({
      status: 404,
      body: { error: { code: 'UNKNOWN_SUBSCRIPTION' } },
    });
    expect(await post(url, 'pause', { topic: 'nope' })).toMatchObject({ status: 404, body: { error: { code: 'UNKNOWN_TOPIC' } } });
    expect(await post(url, 'pause', {})).toMatchObject({ status: 400, body: { error: { code: 'INVALID_REQUEST' } } });
    expect(await post(url, 'discard', { topic: 'orders', ids: 'order-1' })).toMatchObject({ status: 400, body: { error: { code: 'INVALID_REQUEST' } } });
    expect(await get(url, 'api/messages', { topic: 'orders', view: 'everything' })).toMatchObject({
      status: 400,
      body: { error: { code: 'INVALID_REQUEST' } },
    });
    expect(await get(url, 'api/messages', { topic: 'orders', view: 'waiting', limit: '501' })).toMatchObject({
      status: 400,
      body: { error: { code: 'INVALID_OPTIONS' } },
    });
    expect(await get(url, 'api/message', { topic: 'orders', id: 'nope' })).toMatchObject({ status: 404, body: { error: { code: 'UNKNOWN_MESSAGE' } } });
    const get405 = await fetch(new URL('api/pause', url));
    expect([get405.status, get405.headers.get('allow')]).toEqual([405, 'POST']);

    const storage = memoryStorage();
    const lacking = Object.assign(Object.create(storage) as StorageAdapter<any>, { setPaused: undefined });
    const writer = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
    cleanup.push(() => writer.close());
    await fill(writer);
    const standalone = createDashboard({ storage: lacking });
    cleanup.push(() => standalone.close());
    const { url: other } = await standalone.listen();
    expect(await post(other, 'pause', { topic: 'orders' })).toMatchObject({ status: 501, body: { error: { code: 'OPERATION_NOT_SUPPORTED' } } });
  });

  it('refuses every state-changing endpoint from a page of another origin, and changes nothing', async () => {
    const { tidings, url } = await running();
    const before = await tidings.subscriptionCounts();
    for (const verb of ACTIONS) {
      for (const headers of [{ origin: 'http://evil.example' }, { 'sec-fetch-site': 'cross-site' }] as Array<Record<string, string>>) {
        const answer = await raw(url, `/api/${verb}`, JSON.stringify({ topic: 'orders', confirm: true }), headers);
        expect({ verb, ...answer }).toEqual({ verb, status: 403, code: 'CROSS_ORIGIN_REFUSED' });
      }
    }
    expect(await tidings.subscriptionCounts()).toEqual(before);
    expect((await tidings.storage.subscriptions('orders'))[0]!.pausedAt).toBeUndefined();
  });
});

describe('the message browser over HTTP', () => {
  it('pages a view by cursor in delivery order, finds by id and by key, and shows one message', async () => {
    const { tidings, url } = await running();
    await orders(tidings).sendMany(
      Array.from({ length: 12 }, (_, i) => ({ n: 100 + i })),
      { id: (p) => `bulk-${p.n}`, key: (p) => `customer-${p.n % 3}`, headers: { source: 'test' } },
    );
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await get<MessagesPage>(url, 'api/messages', { topic: 'orders', view: 'waiting', limit: '5', ...(after ? { after } : {}) });
      expect(page.status).toBe(200);
      seen.push(...page.body.messages.map((m) => m.id));
      after = page.body.next;
      if (!after) break;
    }
    expect(seen).toEqual(['order-3', 'order-4', ...Array.from({ length: 12 }, (_, i) => `bulk-${100 + i}`)]);
    expect((await get<MessagesPage>(url, 'api/messages', { topic: 'orders', id: 'order-1' })).body.messages.map((m) => [m.id, m.state])).toEqual([
      ['order-1', 'dead'],
    ]);
    expect((await get<MessagesPage>(url, 'api/messages', { topic: 'orders', key: 'customer-1' })).body.messages.map((m) => m.id)).toEqual([
      'bulk-100',
      'bulk-103',
      'bulk-106',
      'bulk-109',
    ]);
    const one = await get<{ message: { id: string; lastError?: string; body: string } }>(url, 'api/message', { topic: 'orders', id: 'order-1' });
    expect(one.body.message).toMatchObject({
      id: 'order-1',
      state: 'dead',
      deliveries: 1,
      body: JSON.stringify({ n: 1 }),
      lastError: expect.stringContaining('at charge (payments.ts:12)'),
    });
    const bulk = await get<{ message: { headers?: string } }>(url, 'api/message', { topic: 'orders', id: 'bulk-101' });
    expect(JSON.parse(bulk.body.message.headers!)).toEqual({ source: 'test' });
  });
});

describe('the live stream', () => {
  it('sends a snapshot, then only changes: under 5 kB/s per tab for 10 topics at rest', async () => {
    const { tidings } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close({ graceMs: 0 }));
    for (let i = 0; i < 10; i++) {
      const topic = tidings.topic<{ n: number }>(`topic-${i}`, { semantic: 'at-least-once', subscriptions: { billing: {}, email: {} } });
      await topic.sendMany(Array.from({ length: 5 }, (_, n) => ({ n })));
    }
    const dashboard = createDashboard({ tidings });
    cleanup.push(() => dashboard.close());
    const { url } = await dashboard.listen();
    // Let the monitor gather a minute's worth of nothing: the first snapshot then carries history, changes do not.
    const controller = new AbortController();
    cleanup.push(async () => controller.abort());
    const stream = events(await fetch(new URL('events', url), { signal: controller.signal }));
    expect((await stream.next()).event).toBe('snapshot');
    const start = stream.bytes();
    const started = Date.now();
    let changes = 0;
    while (Date.now() - started < 5_000) {
      expect((await stream.next()).event).toBe('change');
      changes++;
    }
    const perSecond = ((stream.bytes() - start) * 1000) / (Date.now() - started);
    console.log(`live stream, 10 topics (20 subscriptions) at rest: ${Math.round(perSecond)} B/s per tab over ${changes} changes`);
    expect(changes).toBeGreaterThanOrEqual(4);
    expect(perSecond).toBeLessThan(5_000);
  });
});

/** A POST through node:http, which lets the test send Origin and Sec-Fetch-Site as a browser would. */
function raw(url: string, path: string, body: string, headers: Record<string, string>): Promise<{ status: number; code?: string }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname: target.hostname, port: target.port, path, method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, code: (JSON.parse(text) as { error?: { code: string } }).error?.code }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
