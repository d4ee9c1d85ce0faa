import 'reflect-metadata';
import { lookup } from 'node:dns/promises';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import express from 'express';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { InvalidOptionsError, Tidings, silentLogger, type Lifecycle } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import {
  applyChange,
  createDashboard,
  DashboardListenError,
  DashboardTokenRequiredError,
  InvalidPortError,
  isLoopback,
  type Dashboard,
  type Snapshot,
  type SnapshotChange,
} from '@tidings/dashboard';
import { events, fill, fillSubscribed, instrumented, until } from './support.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A filled in-process instance with a dashboard listening on loopback. */
async function running(options: { token?: string; allowedHosts?: string[] | true } = {}) {
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

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The `code` of a JSON error body. */
  code?: string;
  message?: string;
}

/** A request through node:http, which lets a test set Host, Origin and Sec-Fetch-Site as a browser would (fetch forbids them). */
function raw(url: string, path: string, options: { method?: string; host?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const target = new URL(url);
  const headers: Record<string, string> = { ...options.headers };
  if (options.host) headers.host = options.host;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port,
        path,
        method: options.method ?? 'GET',
        headers,
        setHost: options.host === undefined,
      },
      (res) => {
        let body = '';
        const done = () => {
          let error: { code?: string; message?: string } | undefined;
          try {
            error = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error;
          } catch {
            error = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, code: error?.code, message: error?.message });
        };
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', done);
        // An event stream that was let in never ends: its first bytes are answer enough.
        if (String(res.headers['content-type']).startsWith('text/event-stream')) res.once('data', () => (done(), req.destroy()));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const redriveOrder1 = (url: string, headers: Record<string, string> = {}, host?: string) =>
  raw(url, '/api/redrive', {
    method: 'POST',
    host,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ topic: 'orders', ids: ['order-1'] }),
  });

async function dead(tidings: Tidings<any>): Promise<number> {
  return (await tidings.counts('orders')).orders?.dead ?? 0;
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
    const stream = events(res);
    const first = await stream.next();
    expect(first.event).toBe('snapshot');
    let shown = first.data as Snapshot;
    expect(shown.topics.find((t) => t.name === 'orders')!.counts.acked).toBe(2);
    await tidings.topic('orders', { semantic: 'at-least-once', maxDeliveries: 1 }).send({ n: 5 });
    const started = Date.now();
    let acked = 2;
    while (acked !== 3) {
      const next = await stream.next();
      expect(next.event).toBe('change');
      shown = applyChange(shown, next.data as SnapshotChange, 300, 20);
      acked = shown.topics.find((t) => t.name === 'orders')!.counts.acked ?? 0;
    }
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('serves the metrics registry at /metrics', async () => {
    const { url } = await running();
    const res = await fetch(new URL('metrics', url));
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('tidings_messages{topic="orders",subscription="default",semantic="at-least-once",state="dead"} 2');
    expect(text).toContain('tidings_dead_letters_total{topic="orders",subscription="default"} 2');
  });

  it('redrives a dead letter on POST, after which a consumer gets it', async () => {
    const { tidings, url } = await running();
    const res = await post(url, JSON.stringify({ topic: 'orders', ids: ['order-1', 'no-such-id'] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ topic: 'orders', subscription: 'default', state: 'acked', redriven: 1, missing: ['no-such-id'] });
    const got: string[] = [];
    const consumer = tidings.topic('orders', { semantic: 'at-least-once', maxDeliveries: 1 }).consume((m) => void got.push(m.id), { pollMs: 5 });
    await until('the redriven message and the waiting ones to be delivered', () => got.length === 3);
    await consumer.stop();
    expect(got.sort()).toEqual(['order-1', 'order-3', 'order-4']);
    expect((await tidings.counts('orders')).orders).toEqual({ dead: 1 });
    const all = await post(url, JSON.stringify({ topic: 'orders', confirm: true }));
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
      expect({ what, status: res.status, code: ((await res.json()) as { error: { code: string; message: string } }).error.code }).toEqual({
        what,
        status,
        code,
      });
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

describe('the dashboard and subscriptions', () => {
  /** An instrumented instance with `invoices` filled, a dashboard listening, and email's first copy held leased. */
  async function subscribed() {
    const { tidings, metrics } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close({ graceMs: 0 }));
    const invoices = await fillSubscribed(tidings);
    const dashboard = createDashboard({ tidings, metrics });
    cleanup.push(() => dashboard.close());
    const { url } = await dashboard.listen();
    const email = invoices.subscription('email');
    const holding = email.consume((_m, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve())), {
      pollMs: 5,
      batchSize: 1,
    });
    cleanup.push(() => holding.stop({ graceMs: 0 }));
    await until('a lease of email', async () => (await email.counts()).leased === 1);
    return { tidings, invoices, url };
  }

  it("reports each subscription of a topic with its own counts, dead letters and leases, and the topic's ordering", async () => {
    const { url } = await subscribed();
    // The snapshot taken once the lease was made, not the one from the dashboard's start.
    await until('a snapshot with the lease', async () => (await snapshot(url)).topics.find((t) => t.name === 'invoices')?.counts.leased === 1);
    const invoices = (await snapshot(url)).topics.find((t) => t.name === 'invoices')!;
    expect(invoices).toMatchObject({ lifecycle: 'at-least-once', ordering: 'key', counts: { acked: 2, leased: 1, dead: 1 }, ready: 'acked', leased: 'leased' });
    const view = (name: string) => invoices.subscriptions.find((s) => s.name === name)!;
    expect(invoices.subscriptions.map((s) => s.name)).toEqual(['audit', 'billing', 'email']);
    expect(view('audit')).toEqual({ name: 'audit', maxDeliveries: 5, counts: {}, deadLetters: [], leases: [], rateIn: 0, rateOut: 0 });
    expect(view('billing')).toMatchObject({ maxDeliveries: 1, counts: { dead: 1 }, leases: [] });
    expect(view('billing').deadLetters).toEqual([
      {
        id: 'invoice-1',
        subscription: 'billing',
        deliveries: 1,
        createdAt: expect.any(Number),
        lastError: expect.stringMatching(/^Error: no billing address/),
      },
    ]);
    expect(view('email')).toMatchObject({ counts: { acked: 2, leased: 1 }, deadLetters: [] });
    expect(view('email').leases).toEqual([
      { id: 'invoice-1', subscription: 'email', leaseToken: expect.any(String), leaseUntil: expect.any(Number), deliveries: 1 },
    ]);
    // The topic's own lists take every subscription's rows, each saying whose copy it is.
    expect(invoices.deadLetters.map((d) => `${d.subscription}:${d.id}`)).toEqual(['billing:invoice-1']);
    expect(invoices.leases.map((d) => `${d.subscription}:${d.id}`)).toEqual(['email:invoice-1']);
    expect(invoices.transitions.find((e) => e.event === 'LEASE')).toMatchObject({ id: 'invoice-1', subscription: 'email' });
  });

  it('redrives the subscription a request names, refuses a name the topic lacks, and asks for one when the topic has no default', async () => {
    const { invoices, url } = await subscribed();
    const answer = async (body: unknown) => {
      const res = await post(url, JSON.stringify(body));
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } & Record<string, unknown> };
    };
    const required = await answer({ topic: 'invoices' });
    expect([required.status, required.body.error?.code]).toEqual([400, 'SUBSCRIPTION_REQUIRED']);
    expect(required.body.error?.message).toBe(
      'Topic "invoices" has no default subscription: name one of audit, billing, email, e.g. {"topic": "invoices", "subscription": "audit"}.',
    );
    const unknown = await answer({ topic: 'invoices', subscription: 'biling', ids: ['invoice-1'] });
    expect([unknown.status, unknown.body.error?.code, unknown.body.error?.message]).toEqual([
      404,
      'UNKNOWN_SUBSCRIPTION',
      'Topic "invoices" has no subscription "biling"; its subscriptions are audit, billing, email.',
    ]);
    for (const subscription of [5, '', ['billing']]) expect((await answer({ topic: 'invoices', subscription })).body.error?.code).toBe('INVALID_REQUEST');
    expect(await invoices.subscription('billing').counts()).toEqual({ dead: 1 });
    // email holds no dead letter of that id: its copy is leased, and stays so.
    expect((await answer({ topic: 'invoices', subscription: 'email', ids: ['invoice-1'] })).body).toEqual({
      topic: 'invoices',
      subscription: 'email',
      state: 'acked',
      redriven: 0,
      missing: ['invoice-1'],
    });
    expect((await answer({ topic: 'invoices', subscription: 'billing', ids: ['invoice-1'] })).body).toEqual({
      topic: 'invoices',
      subscription: 'billing',
      state: 'acked',
      redriven: 1,
      missing: [],
    });
    expect(await invoices.subscription('billing').counts()).toEqual({ acked: 1 });
    expect(await invoices.subscription('email').counts()).toEqual({ acked: 2, leased: 1 });
  });

  it("redrives through the instance that declared the topic, so the subscription's idle consumer wakes at once", async () => {
    const { tidings, metrics } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close({ graceMs: 0 }));
    const invoices = await fillSubscribed(tidings);
    const got: string[] = [];
    // Polls once at start, then not again for a minute: only a wake-up brings it the redriven copy in time.
    const consumer = invoices.subscription('billing').consume((m) => void got.push(m.id), { pollMs: 60_000 });
    cleanup.push(() => consumer.stop({ graceMs: 0 }));
    await new Promise((r) => setTimeout(r, 200));
    const dashboard = createDashboard({ tidings, metrics });
    cleanup.push(() => dashboard.close());
    const { url } = await dashboard.listen();
    const res = await post(url, JSON.stringify({ topic: 'invoices', subscription: 'billing', confirm: true }));
    expect(await res.json()).toMatchObject({ subscription: 'billing', redriven: 1 });
    await until('the woken consumer to get the redriven copy', () => got.includes('invoice-1'), 3_000);
  });

  it('redrives a named subscription of a topic another instance declared, through the records', async () => {
    const { tidings, metrics } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close({ graceMs: 0 }));
    const writer = await Tidings.create({ storage: tidings.storage, purgeIntervalMs: 0, logger: silentLogger });
    cleanup.push(() => writer.close());
    await fillSubscribed(writer);
    const dashboard = createDashboard({ tidings, metrics });
    cleanup.push(() => dashboard.close());
    const { url } = await dashboard.listen();
    const transitions: string[] = [];
    tidings.events.on('transition', (e) => void transitions.push(`${e.subscription}:${e.id}:${e.event}`));
    expect(await (await post(url, JSON.stringify({ topic: 'invoices', subscription: 'billing', confirm: true }))).json()).toMatchObject({
      subscription: 'billing',
      redriven: 1,
    });
    expect(transitions).toEqual(['billing:invoice-1:REDRIVE']);
    expect((await tidings.subscriptionCounts('invoices')).invoices).toEqual({ billing: { acked: 1 }, email: { acked: 3 } });
  });

  it('shows the subscriptions and redrives one on a storage alone', async () => {
    const storage = memoryStorage();
    const writer = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
    cleanup.push(() => writer.close());
    await fillSubscribed(writer);
    const dashboard = createDashboard({ storage });
    cleanup.push(() => dashboard.close());
    const { url } = await dashboard.listen({ port: 0 });
    const invoices = (await snapshot(url)).topics.find((t) => t.name === 'invoices')!;
    expect(invoices.subscriptions.map((s) => [s.name, s.counts])).toEqual([
      ['audit', {}],
      ['billing', { dead: 1 }],
      ['email', { acked: 3 }],
    ]);
    expect(await (await post(url, JSON.stringify({ topic: 'invoices', subscription: 'billing', ids: ['invoice-1'] }))).json()).toMatchObject({
      subscription: 'billing',
      redriven: 1,
    });
    expect((await storage.counts('invoices')).invoices).toEqual({ billing: { acked: 1 }, email: { acked: 3 } });
    const text = await (await fetch(new URL('metrics', url))).text();
    expect(text).toContain('tidings_messages{topic="invoices",subscription="email",semantic="at-least-once",state="acked"} 3');
    expect(text).toContain('tidings_messages{topic="invoices",subscription="audit",semantic="at-least-once",state="acked"} 0');
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

/** This machine's name, when it resolves to loopback only: then a dashboard can listen on it without leaving the machine. */
const loopbackName = await lookup(hostname(), { all: true }).then(
  (all) => (all.length > 0 && all.every((a) => isLoopback(a.address)) && !isLoopback(hostname()) ? hostname().toLowerCase() : undefined),
  () => undefined,
);

describe('the dashboard and the Host a request is addressed to (DNS rebinding)', () => {
  it('refuses a host name it does not answer to on every path with 421 and how to allow it, and redrives nothing', async () => {
    const { tidings, url } = await running();
    const port = new URL(url).port;
    const host = `attacker.example:${port}`;
    const answers: Array<[string, Answer]> = [];
    for (const path of ['/', '/api/snapshot', '/events', '/metrics', '/login', '/?token=whatever', '/nowhere'])
      answers.push([`GET ${path}`, await raw(url, path, { host })]);
    answers.push(['POST /api/redrive', await redriveOrder1(url, {}, host)]);
    answers.push(['POST /api/redrive, same Origin', await redriveOrder1(url, { origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, host)]);
    answers.push([
      'POST /login',
      await raw(url, '/login', { method: 'POST', host, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' }),
    ]);
    for (const [what, answer] of answers) {
      expect({ what, status: answer.status, code: answer.code }).toEqual({ what, status: 421, code: 'HOST_NOT_ALLOWED' });
      expect(answer.body).not.toContain('order-');
    }
    const { message } = answers[0]![1];
    expect(message).toContain('"attacker.example"');
    expect(message).toContain("createDashboard({ allowedHosts: ['attacker.example'] })");
    expect(message).toContain('tidings dashboard --allowed-host attacker.example.');
    expect(await dead(tidings)).toBe(2);
    // Node's server turns away an HTTP/1.1 request without Host by itself; HTTP/1.0 needs none, so it reaches the check.
    const socket = connect(Number(port), '127.0.0.1');
    cleanup.push(async () => socket.destroy());
    socket.end('GET /api/snapshot HTTP/1.0\r\n\r\n');
    let none = '';
    for await (const chunk of socket) none += String(chunk);
    expect(none).toMatch(/^HTTP\/1\.[01] 421 Misdirected Request\r\n/);
    expect(none).toContain('"code":"HOST_NOT_ALLOWED"');
    expect(none).not.toContain('order-');
  });

  it('refuses a foreign host before the token is looked at, so a valid token does not let it through', async () => {
    const token = 'sesame-0123456789';
    const { tidings, url } = await running({ token });
    const host = `attacker.example:${new URL(url).port}`;
    expect((await raw(url, '/api/snapshot', { host, headers: { authorization: `Bearer ${token}` } })).status).toBe(421);
    expect((await redriveOrder1(url, { authorization: `Bearer ${token}` }, host)).status).toBe(421);
    expect((await raw(url, `/?token=${token}`, { host })).headers['set-cookie']).toBeUndefined();
    expect(await dead(tidings)).toBe(2);
  });

  it('answers loopback names and IP addresses, with or without a port, and no name that merely contains one', async () => {
    const { url } = await running();
    const port = new URL(url).port;
    const status = async (host: string) => [host, (await raw(url, '/api/snapshot', { host })).status];
    const allowed = [
      'localhost',
      `localhost:${port}`,
      `LocalHost:${port}`,
      'localhost.',
      `dash.localhost:${port}`,
      `127.0.0.1:${port}`,
      '127.0.0.1',
      '127.3.2.1',
      `[::1]:${port}`,
      '[::1]',
      `192.168.1.20:${port}`,
      '10.0.0.1',
      `[2001:db8::1]:${port}`,
      '[::ffff:127.0.0.1]',
    ];
    for (const host of allowed) expect(await status(host)).toEqual([host, 200]);
    const refused = [
      'attacker.example',
      `localhost.attacker.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      'localhostx',
      '::1',
      '[::1',
      `[localhost]:${port}`,
      `127.0.0.1:${port}:${port}`,
      'user@127.0.0.1',
      '127.0.0.1/x',
      '2130706433.example',
    ];
    for (const host of refused) expect(await status(host)).toEqual([host, 421]);
  });

  it('redrives for a page at an IPv6 loopback address whose Origin is that address', async () => {
    const { tidings, url } = await running();
    const host = `[::1]:${new URL(url).port}`;
    const res = await redriveOrder1(url, { origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, host);
    expect([res.status, JSON.parse(res.body).redriven]).toEqual([200, 1]);
    expect(await dead(tidings)).toBe(1);
  });

  it('answers the host names it is given, exactly or with their subdomains, and any with allowedHosts: true', async () => {
    const { url } = await running({ allowedHosts: ['Dash.Example.com', '.internal.example'] });
    const status = async (host: string) => [host, (await raw(url, '/api/snapshot', { host })).status];
    for (const host of [
      'dash.example.com',
      'DASH.EXAMPLE.COM:7780',
      'dash.example.com.',
      'internal.example',
      'a.internal.example:443',
      'b.a.internal.example',
    ]) {
      expect(await status(host)).toEqual([host, 200]);
    }
    for (const host of ['example.com', 'x.dash.example.com', 'dash.example.com.evil.example', 'notinternal.example', 'internal.example.evil.example']) {
      expect(await status(host)).toEqual([host, 421]);
    }
    const open = await running({ allowedHosts: true });
    expect((await raw(open.url, '/api/snapshot', { host: 'anything.example' })).status).toBe(200);
    // Answering any Host does not make every page an origin the dashboard takes changes from.
    expect((await redriveOrder1(open.url, { origin: 'http://anything.example' }, 'anything.example')).status).toBe(200);
    expect((await redriveOrder1(open.url, { origin: 'http://evil.example' }, 'anything.example')).status).toBe(403);
  });

  it('refuses allowedHosts that are not host names, with a typed error', async () => {
    const { tidings } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close());
    for (const allowedHosts of [['http://dash.example.com'], ['dash.example.com:8080'], ['*.example.com'], [''], ['.'], 'dash.example.com', [42]]) {
      expect(() => createDashboard({ tidings, allowedHosts: allowedHosts as string[] })).toThrow(InvalidOptionsError);
    }
    expect(() => createDashboard({ tidings, allowedHosts: ['*.example.com'] })).toThrow(/'\.example\.com' for that domain and its subdomains/);
  });

  it.skipIf(!loopbackName)('answers the host name it was told to listen on', async () => {
    const { tidings } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close());
    const token = 'sesame-0123456789';
    const auth = { authorization: `Bearer ${token}` };
    const named = createDashboard({ tidings, token });
    cleanup.push(() => named.close());
    const { url } = await named.listen({ host: loopbackName! });
    expect((await raw(url, '/api/snapshot', { host: `${loopbackName}:${new URL(url).port}`, headers: auth })).status).toBe(200);
    const other = createDashboard({ tidings, token });
    cleanup.push(() => other.close());
    const { url: otherUrl } = await other.listen();
    expect((await raw(otherUrl, '/api/snapshot', { host: `${loopbackName}:${new URL(otherUrl).port}`, headers: auth })).status).toBe(421);
  });

  it('checks Host and Origin when mounted in a plain Node server, and leaves the app its other paths', async () => {
    const { tidings, metrics } = await instrumented(memoryStorage());
    cleanup.push(() => tidings.close());
    await fill(tidings);
    const dashboard = createDashboard({ tidings, metrics });
    cleanup.push(() => dashboard.close());
    const server = createServer((req, res) => dashboard.handler(req, res, () => res.end('app route')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => server.close(r)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const foreign = 'attacker.example';
    expect((await raw(url, '/api/snapshot', { host: foreign })).status).toBe(421);
    expect((await raw(url, '/events', { host: foreign })).status).toBe(421);
    expect((await redriveOrder1(url, {}, foreign)).status).toBe(421);
    expect((await redriveOrder1(url, { origin: 'http://attacker.example' })).status).toBe(403);
    expect(await dead(tidings)).toBe(2);
    expect(await raw(url, '/health', { host: foreign })).toMatchObject({ status: 200, body: 'app route' });
    expect((await raw(url, '/api/snapshot')).status).toBe(200);
    expect((await redriveOrder1(url)).status).toBe(200);
    expect(await dead(tidings)).toBe(1);
  });
});

describe('the dashboard and changes sent from other origins (CSRF)', () => {
  const token = 'sesame-0123456789';

  it('refuses a redrive from another origin with 403 even with a valid cookie or token, and redrives nothing', async () => {
    const { tidings, url } = await running({ token });
    const port = new URL(url).port;
    const login = await fetch(new URL('?token=' + token, url), { redirect: 'manual' });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const cases: Array<[string, Record<string, string>]> = [
      ['a foreign Origin, with the cookie', { cookie, origin: 'http://evil.example' }],
      ['a foreign Origin, with the token', { authorization: `Bearer ${token}`, origin: 'http://evil.example' }],
      ['another port of this host', { cookie, origin: `http://127.0.0.1:${Number(port) + 1}` }],
      ['localhost for 127.0.0.1', { cookie, origin: `http://localhost:${port}` }],
      ['Origin: null', { cookie, origin: 'null' }],
      ['an Origin that is no URL', { cookie, origin: 'evil' }],
      ['Sec-Fetch-Site: cross-site', { cookie, 'sec-fetch-site': 'cross-site' }],
      ['Sec-Fetch-Site: same-site', { cookie, 'sec-fetch-site': 'same-site' }],
      ['a same Origin but Sec-Fetch-Site: cross-site', { cookie, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'cross-site' }],
    ];
    for (const [what, headers] of cases) {
      const res = await redriveOrder1(url, headers);
      expect({ what, status: res.status, code: res.code }).toEqual({ what, status: 403, code: 'CROSS_ORIGIN_REFUSED' });
    }
    const refused = await redriveOrder1(url, { cookie, origin: 'http://evil.example' });
    expect(refused.message).toMatch(/^Refused POST \/api\/redrive: it comes from a page at http:\/\/evil\.example, not from this dashboard's own page/);
    expect(await dead(tidings)).toBe(2);
  });

  it('takes a redrive from its own page, or from a client that sends no Origin, still with the token only', async () => {
    const { tidings, url } = await running({ token });
    const port = new URL(url).port;
    const login = await fetch(new URL('?token=' + token, url), { redirect: 'manual' });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const own = { origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' };
    expect((await redriveOrder1(url, own)).status).toBe(401);
    const same = await redriveOrder1(url, { ...own, cookie });
    expect([same.status, JSON.parse(same.body).redriven]).toEqual([200, 1]);
    const noOrigin = await raw(url, '/api/redrive', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: '{"topic":"orders","confirm":true}',
    });
    expect([noOrigin.status, JSON.parse(noOrigin.body).redriven]).toEqual([200, 1]);
    expect(await dead(tidings)).toBe(0);
    // A request the user typed or bookmarked says none.
    expect(
      (
        await raw(url, '/api/redrive', {
          method: 'POST',
          headers: { cookie, 'sec-fetch-site': 'none', 'content-type': 'application/json' },
          body: '{"topic":"orders","confirm":true}',
        })
      ).status,
    ).toBe(200);
  });

  it('refuses a sign-in posted from another origin, and sets no cookie', async () => {
    const { url } = await running({ token });
    const port = new URL(url).port;
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const body = new URLSearchParams({ token }).toString();
    for (const headers of [{ origin: 'http://evil.example' }, { 'sec-fetch-site': 'cross-site' }, { origin: 'null' }] as Array<Record<string, string>>) {
      const res = await raw(url, '/login', { method: 'POST', headers: { ...form, ...headers }, body });
      expect([res.status, res.code, res.headers['set-cookie']]).toEqual([403, 'CROSS_ORIGIN_REFUSED', undefined]);
    }
    const own = await raw(url, '/login', { method: 'POST', headers: { ...form, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' }, body });
    expect(own.status).toBe(303);
    expect(own.headers['set-cookie']?.[0]).toMatch(/^tidings_dashboard=/);
  });

  it('takes changes from a page at a configured public name while a proxy passes its own address as Host', async () => {
    const { tidings, url } = await running({ allowedHosts: ['dash.example.com'] });
    const res = await redriveOrder1(url, { origin: 'https://dash.example.com', 'sec-fetch-site': 'same-origin' });
    expect([res.status, JSON.parse(res.body).redriven]).toEqual([200, 1]);
    expect((await redriveOrder1(url, { origin: 'https://evil.example.com' })).status).toBe(403);
    expect(await dead(tidings)).toBe(1);
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
    const res = await fetch(`${base}/tidings/api/redrive`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'orders', ids: ['order-1'] }),
    });
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
    expect(await (await post(url, JSON.stringify({ topic: 'orders', confirm: true }))).json()).toMatchObject({ redriven: 2 });
    expect((await storage.counts('orders')).orders).toEqual({ default: { acked: 4 } });
    expect(await (await fetch(new URL('metrics', url))).text()).toContain(
      'tidings_messages{topic="orders",subscription="default",semantic="at-least-once",state="acked"} 4',
    );
  });
});
