import 'reflect-metadata';
import { createServer, request } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import express from 'express';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Tidings, silentLogger, type Lifecycle } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import { createDashboard, DashboardListenError, DashboardTokenRequiredError, InvalidPortError, isLoopback, type Dashboard, type Snapshot } from '@tidings/dashboard';
import { fill, instrumented, until } from './support.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A filled in-process instance with a dashboard listening on loopback. */
async function running(options: { token?: string } = {}) {
  const { tidings, metrics } = await instrumented(memoryStorage());
  cleanup.push(() => tidings.close());
  await fill(tidings);
  const dashboard = createDashboard({ tidings, metrics, ...options });
  cleanup.push(() => dashboard.close());
  const { url } = await dashboard.listen();
  return { tidings, dashboard, url };
}

async function snapshot(url: string, headers: Record<string, string> = {}): Promise<Snapshot> {
  const res = await fetch(new URL('api/snapshot', url), { headers });
  expect(res.status).toBe(200);
  return (await res.json()) as Snapshot;
}

function post(url: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  return fetch(new URL('api/redrive', url), { method: 'POST', body, headers });
}

describe('the dashboard on its own server', () => {
  it('serves one self-contained page with a diagram of every lifecycle, marked for live counts', async () => {
    const { url } = await running();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    for (const lifecycle of ['at-most-once', 'at-least-once', 'exactly-once/broker', 'exactly-once/end-to-end'] satisfies Lifecycle[]) {
      expect(html).toContain(`<template id="diagram-${lifecycle}"><svg class="lifecycle" data-lifecycle="${lifecycle}"`);
    }
    expect(html).toMatch(/<g id="node\d+" class="node" data-state="dead">/);
    // Nothing is fetched from elsewhere: no external script, style, font or image.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).toContain('Live from this process');
  });

  it('reports counts by state, dead letters with their last error, and series each second', async () => {
    const { url } = await running();
    const s = await snapshot(url);
    expect(s.mode).toBe('in-process');
    const orders = s.topics.find((t) => t.name === 'orders')!;
    expect(orders).toMatchObject({ lifecycle: 'at-least-once', counts: { acked: 2, dead: 2 }, ready: 'acked', leased: 'leased', redrivable: true });
    expect(orders.deadLetters.map((d) => d.id)).toEqual(['order-1', 'order-2']);
    expect(orders.deadLetters[0]!.lastError).toMatch(/^Error: payment service refused/);
    expect(s.topics.find((t) => t.name === 'clicks')).toMatchObject({ lifecycle: 'at-most-once', counts: { stored: 3 }, redrivable: false });
    await until('a second sample with throughput', async () => ((await snapshot(url)).topics[0]!.series.length ?? 0) >= 2, 5_000);
  });

  it('pushes a snapshot over server-sent events within a second, and again after a change', async () => {
    const { tidings, url } = await running();
    const controller = new AbortController();
    cleanup.push(async () => controller.abort());
    const res = await fetch(new URL('events', url), { signal: controller.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    const next = async (): Promise<Snapshot> => {
      for (;;) {
        const end = buffered.indexOf('\n\n');
        if (end >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = /^data: (.*)$/m.exec(event)?.[1];
          if (data) return JSON.parse(data) as Snapshot;
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended');
        buffered += value;
      }
    };
    const first = await next();
    expect(first.topics.find((t) => t.name === 'orders')!.counts.acked).toBe(2);
    await tidings.topic('orders', { semantic: 'at-least-once', maxDeliveries: 1 }).send({ n: 5 });
    const started = Date.now();
    let acked = 2;
    while (acked !== 3) acked = (await next()).topics.find((t) => t.name === 'orders')!.counts.acked ?? 0;
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('serves the metrics registry at /metrics', async () => {
    const { url } = await running();
    const res = await fetch(new URL('metrics', url));
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('tidings_messages{topic="orders",semantic="at-least-once",state="dead"} 2');
    expect(text).toContain('tidings_dead_letters_total{topic="orders"} 2');
  });

  it('redrives a dead letter on POST, after which a consumer gets it', async () => {
    const { tidings, url } = await running();
    const res = await post(url, JSON.stringify({ topic: 'orders', ids: ['order-1', 'no-such-id'] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ topic: 'orders', state: 'acked', redriven: 1, missing: ['no-such-id'] });
    const got: string[] = [];
    const consumer = tidings.topic('orders', { semantic: 'at-least-once', maxDeliveries: 1 }).consume((m) => void got.push(m.id), { pollMs: 5 });
    await until('the redriven message and the waiting ones to be delivered', () => got.length === 3);
    await consumer.stop();
    expect(got.sort()).toEqual(['order-1', 'order-3', 'order-4']);
    expect((await tidings.counts('orders')).orders).toEqual({ dead: 1 });
    const all = await post(url, JSON.stringify({ topic: 'orders' }));
    expect(await all.json()).toMatchObject({ redriven: 1, missing: [] });
  });

  it('answers a malformed redrive with a 4xx and a JSON error, and loses no message', async () => {
    const { tidings, url } = await running();
    const cases: Array<[string, string, Record<string, string> | undefined, number, string]> = [
      ['no JSON content type', '{"topic":"orders"}', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['broken JSON', '{"topic": "orders"', undefined, 400, 'INVALID_JSON'],
      ['not an object', '["orders"]', undefined, 400, 'INVALID_REQUEST'],
      ['no topic', '{}', undefined, 400, 'INVALID_REQUEST'],
      ['ids not a list', '{"topic":"orders","ids":"order-1"}', undefined, 400, 'INVALID_REQUEST'],
      ['an empty id', '{"topic":"orders","ids":[""]}', undefined, 400, 'INVALID_REQUEST'],
      ['a number id', '{"topic":"orders","ids":[1]}', undefined, 400, 'INVALID_REQUEST'],
      ['unknown topic', '{"topic":"nope"}', undefined, 404, 'UNKNOWN_TOPIC'],
      ['a topic that never dead-letters', '{"topic":"clicks"}', undefined, 409, 'NOT_REDRIVABLE'],
      ['a body too large', JSON.stringify({ topic: 'orders', ids: ['x'.repeat(300_000)] }), undefined, 413, 'BODY_TOO_LARGE'],
    ];
    for (const [what, body, headers, status, code] of cases) {
      const res = await post(url, body, headers);
      expect({ what, status: res.status, code: ((await res.json()) as { error: { code: string; message: string } }).error.code }).toEqual({ what, status, code });
    }
    const get = await fetch(new URL('api/redrive', url));
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
    expect((await fetch(new URL('nowhere', url))).status).toBe(404);
    expect(await tidings.counts()).toEqual({ orders: { acked: 2, dead: 2 }, clicks: { stored: 3 } });
  });

  it('refuses to listen beyond loopback without a token, and on a bad or taken port, with typed errors', async () => {
    const { tidings } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close());
    const dashboard = createDashboard({ tidings });
    cleanup.push(() => dashboard.close());
    await expect(dashboard.listen({ host: '0.0.0.0' })).rejects.toBeInstanceOf(DashboardTokenRequiredError);
    await expect(dashboard.listen({ host: '0.0.0.0' })).rejects.toMatchObject({ code: 'DASHBOARD_TOKEN_REQUIRED' });
    for (const port of [-1, 65536, 1.5, Number.NaN, '8080' as unknown as number]) {
      await expect(dashboard.listen({ port })).rejects.toBeInstanceOf(InvalidPortError);
    }
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => taken.close(r)));
    const port = (taken.address() as AddressInfo).port;
    const error = await dashboard.listen({ port }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DashboardListenError);
    expect(error).toMatchObject({ code: 'PORT_IN_USE', message: expect.stringContaining(`Port ${port}`) });
    expect(() => createDashboard({})).toThrow(/needs \{ tidings \}/);
    expect(() => createDashboard({ tidings, token: 'short' })).toThrow(/at least 8 characters/);
  });

  it('tells loopback addresses apart', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'].map(isLoopback)).toEqual([true, true, true, true, true, true]);
    expect(['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '::ffff:10.0.0.1'].map(isLoopback)).toEqual([false, false, false, false, false, false]);
  });
});

describe('the dashboard with a token', () => {
  const token = 'sesame-0123456789';

  it('refuses requests without the token and accepts the Bearer header', async () => {
    const { url } = await running({ token });
    for (const path of ['', 'api/snapshot', 'metrics', 'events']) {
      const res = await fetch(new URL(path, url));
      expect([path, res.status]).toEqual([path, 401]);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
    expect((await post(url, '{"topic":"orders"}')).status).toBe(401);
    expect((await fetch(new URL('api/snapshot', url), { headers: { authorization: 'Bearer wrong-token-value' } })).status).toBe(401);
    await snapshot(url, { authorization: `Bearer ${token}` });
    const res = await fetch(url, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain('<form method="post" action="login">');
  });

  it('trades ?token= on loopback, or the login form, for a cookie scoped to the dashboard', async () => {
    const { url } = await running({ token });
    const wrong = await fetch(new URL('?token=nope', url), { redirect: 'manual' });
    expect(wrong.status).toBe(401);
    const res = await fetch(new URL('?token=' + token, url), { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^tidings_dashboard=[\w-]+; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain(token);
    const session = cookie.split(';')[0]!;
    expect((await fetch(url, { headers: { cookie: session } })).status).toBe(200);
    expect((await post(url, JSON.stringify({ topic: 'orders', ids: ['order-2'] }), { 'content-type': 'application/json', cookie: session })).status).toBe(200);
    const login = await fetch(new URL('login', url), { method: 'POST', body: new URLSearchParams({ token }), redirect: 'manual' });
    expect([login.status, login.headers.get('set-cookie')?.split(';')[0]]).toEqual([303, session]);
    const badLogin = await fetch(new URL('login', url), { method: 'POST', body: new URLSearchParams({ token: 'guess' }), redirect: 'manual' });
    expect(badLogin.status).toBe(401);
  });

  const lan = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  it.skipIf(!lan)('refuses a token in the query string from another address over plain HTTP, and accepts its Bearer header', async () => {
    const { tidings } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close());
    const dashboard = createDashboard({ tidings, token });
    cleanup.push(() => dashboard.close());
    const { port } = await dashboard.listen({ host: '0.0.0.0', port: 0 });
    // Connect from the machine's LAN address, so the dashboard sees a non-loopback peer.
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: lan, port, path, headers, localAddress: lan }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    const refused = await get(`/?token=${token}`);
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error.code).toBe('TOKEN_IN_URL_REFUSED');
    expect((await get('/api/snapshot')).status).toBe(401);
    expect((await get('/api/snapshot', { authorization: `Bearer ${token}` })).status).toBe(200);
  });
});

describe('the dashboard mounted in an application', () => {
  it('runs under a path prefix of an Express app, passing other paths on', async () => {
    const { tidings, metrics } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close());
    await fill(tidings);
    const dashboard: Dashboard = createDashboard({ tidings, metrics, title: 'Shop' });
    cleanup.push(() => dashboard.close());
    const app = express();
    app.use(express.json());
    app.use('/tidings', dashboard.handler);
    app.get('/tidings/health', (_req, res) => void res.send('app route'));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    cleanup.push(() => new Promise((r) => server.close(r)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const bare = await fetch(`${base}/tidings`, { redirect: 'manual' });
    expect([bare.status, bare.headers.get('location')]).toEqual([303, '/tidings/']);
    const page = await fetch(`${base}/tidings/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Shop</title>');
    expect(await (await fetch(`${base}/tidings/metrics`)).text()).toContain('tidings_messages{topic="orders"');
    expect(await (await fetch(`${base}/tidings/health`)).text()).toBe('app route');
    // express.json() read the body first: the dashboard takes it from req.body.
    const res = await fetch(`${base}/tidings/api/redrive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'orders', ids: ['order-1'] }) });
    expect(await res.json()).toMatchObject({ redriven: 1 });
    const broken = await fetch(`${base}/tidings/api/snapshot`);
    expect(((await broken.json()) as Snapshot).topics.find((t) => t.name === 'orders')!.counts).toEqual({ acked: 3, dead: 1 });
  });

  it('runs under a path prefix of a Nest app, with a cookie for that prefix only', async () => {
    const { tidings, metrics } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close());
    await fill(tidings);
    const dashboard = createDashboard({ tidings, metrics, token: 'nest-token-0123' });
    cleanup.push(() => dashboard.close());
    @Module({})
    class AppModule {}
    const app = await NestFactory.create<NestExpressApplication>(AppModule, { logger: false });
    app.use('/tidings', dashboard.handler);
    await app.listen(0, '127.0.0.1');
    cleanup.push(() => app.close());
    const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    expect((await fetch(`${base}/tidings/api/snapshot`)).status).toBe(401);
    const login = await fetch(`${base}/tidings/?token=nest-token-0123`, { redirect: 'manual' });
    expect([login.status, login.headers.get('location')]).toEqual([303, '/tidings/']);
    expect(login.headers.get('set-cookie')).toContain('Path=/tidings/;');
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const page = await fetch(`${base}/tidings/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-lifecycle="at-least-once"');
    const s = (await (await fetch(`${base}/tidings/api/snapshot`, { headers: { authorization: 'Bearer nest-token-0123' } })).json()) as Snapshot;
    expect(s.topics.map((t) => t.name)).toEqual(['clicks', 'orders']);
    expect((await fetch(`${base}/elsewhere`)).status).toBe(404);
  });
});

describe('the dashboard on a storage alone', () => {
  it('polls counts, says so, and redrives through the topic registry', async () => {
    const storage = memoryStorage();
    const writer = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
    cleanup.push(() => writer.close());
    await fill(writer);
    const dashboard = createDashboard({ storage });
    cleanup.push(() => dashboard.close());
    const { url } = await dashboard.listen({ port: 0 });
    expect(await (await fetch(url)).text()).toContain('Standalone on a database other processes use');
    const s = await snapshot(url);
    expect(s.mode).toBe('standalone');
    // The age of the oldest waiting message stands in for latency.
    expect(s.topics.find((t) => t.name === 'orders')!.series.at(-1)!.p50).toBeGreaterThanOrEqual(0);
    expect(await (await post(url, JSON.stringify({ topic: 'orders' }))).json()).toMatchObject({ redriven: 2 });
    expect((await storage.counts('orders')).orders).toEqual({ acked: 4 });
    expect(await (await fetch(new URL('metrics', url))).text()).toContain('tidings_messages{topic="orders",semantic="at-least-once",state="acked"} 4');
  });
});
