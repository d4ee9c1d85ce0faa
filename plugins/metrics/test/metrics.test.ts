import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { metricsPlugin, MetricsPluginReusedError, type MetricsPlugin } from '@tidings/metrics';

const dir = mkdtempSync(join(tmpdir(), 'tidings-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One sample of the exposition text: name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus' text format (the subset prom-client writes): `name{a="x",b="y"} value`, comments skipped. */
function parse(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!.replace(/\\(.)/g, '$1')]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

/** The value of the one sample with this name whose labels include `labels`; undefined when there is none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let topics = 0;
const storages: Array<[string, () => StorageAdapter<any>]> = [
  ['memory', () => memoryStorage()],
  ['a SQLite file', () => sqliteStorage({ file: join(dir, `metrics-${++topics}.db`) })],
];

async function withMetrics(storage: StorageAdapter<any>, metrics: MetricsPlugin = metricsPlugin()) {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger, plugins: [metrics] });
  return { tidings, metrics, scrape: async () => parse(await metrics.registry.metrics()) };
}

describe.each(storages)('metricsPlugin on %s', (_, storage) => {
  it('counts every transition, dead letter, redelivery and handler error, and reads per-state gauges from storage', async () => {
    const { tidings, scrape } = await withMetrics(storage());
    try {
      const orders = tidings.topic<{ n: number }>('orders', { semantic: 'at-least-once', maxDeliveries: 2, backoff: { initialMs: 1, maxMs: 1 } });
      const waiting = tidings.topic<{ n: number }>('waiting', { semantic: 'exactly-once', scope: 'broker' });
      await orders.sendMany(
        [1, 2, 3, 4, 5].map((n) => ({ n })),
        { id: (p) => `o-${p.n}` },
      );
      await waiting.sendMany([{ n: 1 }, { n: 2 }]);
      let handled = 0;
      const consumer = orders.consume(
        async (m) => {
          handled++;
          if (m.payload.n === 1) throw new Error('refused');
        },
        { pollMs: 5 },
      );
      await until('every order to settle', async () => JSON.stringify(await tidings.counts('orders')) === JSON.stringify({ orders: { dead: 1 } }));
      await consumer.stop();
      expect(handled).toBe(6);

      const s = await scrape();
      const t = (from: string, to: string, event: string) => value(s, 'tidings_messages_total', { topic: 'orders', from, to, event });
      expect([t('sent', 'stored', 'STORE'), t('stored', 'acked', 'ACK'), t('acked', 'leased', 'LEASE')]).toEqual([5, 5, 6]);
      expect([t('leased', 'consumed', 'CONSUME'), t('consumed', 'deleted', 'DELETE'), t('leased', 'acked', 'NACK'), t('leased', 'dead', 'DEAD')]).toEqual([
        4, 4, 1, 1,
      ]);
      expect(value(s, 'tidings_messages_total', { topic: 'orders', event: 'STORE' })).toBe(5);
      expect(s.filter((x) => x.name === 'tidings_messages_total' && x.labels.topic === 'orders').every((x) => x.labels.semantic === 'at-least-once')).toBe(
        true,
      );
      expect(value(s, 'tidings_dead_letters_total', { topic: 'orders' })).toBe(1);
      expect(value(s, 'tidings_redeliveries_total', { topic: 'orders', reason: 'nack' })).toBe(1);
      expect(value(s, 'tidings_redeliveries_total', { topic: 'orders', reason: 'lease_expired' })).toBeUndefined();
      expect(value(s, 'tidings_handler_errors_total', { topic: 'orders' })).toBe(2);
      // Every state of the topic's lifecycle, zero where storage holds none.
      const gauge = (topic: string) =>
        Object.fromEntries(s.filter((x) => x.name === 'tidings_messages' && x.labels.topic === topic).map((x) => [x.labels.state, x.value]));
      expect(gauge('orders')).toEqual({ sent: 0, stored: 0, acked: 0, leased: 0, consumed: 0, deleted: 0, dead: 1 });
      expect(gauge('waiting')).toEqual({ sent: 0, stored: 2, leased: 0, consumed: 0, deleted: 0, dead: 0 });
      expect(value(s, 'tidings_messages', { topic: 'waiting', state: 'stored' })).toBe(2);
      expect(s.find((x) => x.name === 'tidings_messages' && x.labels.topic === 'waiting')!.labels.semantic).toBe('exactly-once/broker');
      // Handlers: 6 runs, 2 of them threw; each delivery's wait since it was stored.
      expect(value(s, 'tidings_handler_duration_seconds_count', { topic: 'orders', outcome: 'ok' })).toBe(4);
      expect(value(s, 'tidings_handler_duration_seconds_count', { topic: 'orders', outcome: 'error' })).toBe(2);
      expect(value(s, 'tidings_end_to_end_latency_seconds_count', { topic: 'orders', semantic: 'at-least-once' })).toBe(6);
      expect(value(s, 'tidings_end_to_end_latency_seconds_bucket', { topic: 'orders', le: '+Inf' })).toBe(6);
      expect(value(s, 'tidings_end_to_end_latency_seconds_sum', { topic: 'orders' })).toBeGreaterThan(0);
    } finally {
      await tidings.close();
    }
  });

  it("times each batch handler run once, by outcome, and counts each message's latency", async () => {
    const { tidings, scrape } = await withMetrics(storage());
    try {
      const clicks = tidings.topic<{ n: number }>('clicks', { semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } });
      await clicks.sendMany(Array.from({ length: 10 }, (_, n) => ({ n })));
      const runs: number[] = [];
      const consumer = clicks.consumeBatch(
        (messages) => {
          runs.push(messages.length);
          if (runs.length === 1) throw new Error('refused');
        },
        { batchSize: 4, pollMs: 5 },
      );
      await until('every click to be acked', async () => Object.keys((await tidings.counts('clicks')).clicks ?? {}).length === 0);
      await consumer.stop();
      // 10 messages in batches of up to 4, the first batch twice.
      expect(runs.reduce((a, b) => a + b, 0)).toBe(10 + runs[0]!);

      const s = await scrape();
      const labels = { topic: 'clicks', subscription: 'default', semantic: 'at-least-once' };
      expect(value(s, 'tidings_handler_duration_seconds_count', { ...labels, outcome: 'error' })).toBe(1);
      expect(value(s, 'tidings_handler_duration_seconds_count', { ...labels, outcome: 'ok' })).toBe(runs.length - 1);
      expect(value(s, 'tidings_end_to_end_latency_seconds_count', labels)).toBe(10 + runs[0]!);
      expect(value(s, 'tidings_handler_errors_total', { topic: 'clicks' })).toBe(runs[0]);
    } finally {
      await tidings.close();
    }
  });

  it('times a batch run that marked messages failed as partial', async () => {
    const { tidings, scrape } = await withMetrics(storage());
    try {
      const views = tidings.topic<{ n: number }>('views', { semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } });
      await views.sendMany(Array.from({ length: 4 }, (_, n) => ({ n })));
      let runs = 0;
      const consumer = views.consumeBatch(
        (messages, ctx) => {
          if (++runs === 1) ctx.fail(messages[0]!, new Error('one refused'));
        },
        { batchSize: 4, pollMs: 5 },
      );
      await until('every view to be acked', async () => Object.keys((await tidings.counts('views')).views ?? {}).length === 0);
      await consumer.stop();
      const s = await scrape();
      const labels = { topic: 'views', subscription: 'default', semantic: 'at-least-once' };
      expect(value(s, 'tidings_handler_duration_seconds_count', { ...labels, outcome: 'partial' })).toBe(1);
      expect(value(s, 'tidings_handler_duration_seconds_count', { ...labels, outcome: 'ok' })).toBe(runs - 1);
      expect(value(s, 'tidings_handler_errors_total', { topic: 'views' })).toBe(1);
    } finally {
      await tidings.close();
    }
  });

  it('counts duplicates by who dropped them, and redeliveries after a lease expires', async () => {
    const { tidings, scrape } = await withMetrics(storage());
    try {
      const receipts = tidings.topic<{ n: number }>('receipts', { semantic: 'exactly-once' });
      await receipts.send({ n: 1 }, { id: 'r-1' });
      await receipts.send({ n: 1 }, { id: 'r-1' });
      const slow = tidings.topic<{ n: number }>('slow', { semantic: 'at-least-once', leaseMs: 50, maxDeliveries: 5 });
      await slow.send({ n: 1 });
      let deliveries = 0;
      // The first delivery outlives its lease; the second consumer keeps polling, so its sweep takes the lease back
      // and it acks the second delivery (the first one's late ack then loses its compare-and-set).
      const handler = async () => {
        if (++deliveries === 1) await new Promise((r) => setTimeout(r, 300));
      };
      const consumers = [slow.consume(handler, { pollMs: 5 }), slow.consume(handler, { pollMs: 5 })];
      await until('the redelivered message to be acked', async () => deliveries >= 2 && Object.keys((await tidings.counts('slow')).slow ?? {}).length === 0);
      await Promise.all(consumers.map((c) => c.stop({ graceMs: 1_000 })));
      const s = await scrape();
      expect(value(s, 'tidings_duplicates_total', { topic: 'receipts', by: 'broker' })).toBe(1);
      expect(value(s, 'tidings_redeliveries_total', { topic: 'slow', reason: 'lease_expired' })).toBe(1);
      expect(value(s, 'tidings_messages_total', { topic: 'slow', event: 'EXPIRE' })).toBe(1);
    } finally {
      await tidings.close();
    }
  });
});

describe.each(storages)('metricsPlugin and subscriptions on %s', (_, storage) => {
  it("labels each subscription's gauge, transitions, handler times, latency and dead letters, and the producer side with an empty subscription", async () => {
    const { tidings, scrape } = await withMetrics(storage());
    try {
      const invoices = tidings.topic<{ n: number }>('invoices', {
        semantic: 'at-least-once',
        ordering: 'key',
        subscriptions: { billing: { maxDeliveries: 1 }, email: {} },
      });
      await invoices.sendMany(
        [1, 2, 3].map((n) => ({ n })),
        { id: (p) => `i-${p.n}`, key: (p) => `k-${p.n}` },
      );
      const billing = invoices.subscription('billing').consume(
        async (m) => {
          if (m.payload.n === 1) throw new Error('refused');
        },
        { pollMs: 5 },
      );
      await until('billing to settle', async () => JSON.stringify(await invoices.subscription('billing').counts()) === JSON.stringify({ dead: 1 }));
      await billing.stop();
      // Declared after the messages were stored: it holds none, and still has its row of zeros.
      await invoices.subscription('audit').ready();

      const s = await scrape();
      const gauge = (subscription: string) =>
        Object.fromEntries(
          s
            .filter((x) => x.name === 'tidings_messages' && x.labels.topic === 'invoices' && x.labels.subscription === subscription)
            .map((x) => [x.labels.state, x.value]),
        );
      const none = { sent: 0, stored: 0, acked: 0, leased: 0, consumed: 0, deleted: 0, dead: 0 };
      expect(gauge('billing')).toEqual({ ...none, dead: 1 });
      expect(gauge('email')).toEqual({ ...none, acked: 3 });
      expect(gauge('audit')).toEqual(none);
      expect(new Set(s.filter((x) => x.name === 'tidings_messages' && x.labels.topic === 'invoices').map((x) => x.labels.subscription))).toEqual(
        new Set(['audit', 'billing', 'email']),
      );

      const t = (subscription: string, event: string) => value(s, 'tidings_messages_total', { topic: 'invoices', subscription, event });
      // The producer stores each message once for the topic; each subscription's copy then has its own life.
      expect([t('', 'STORE'), t('', 'ACK')]).toEqual([3, 3]);
      expect([t('billing', 'LEASE'), t('billing', 'CONSUME'), t('billing', 'DEAD')]).toEqual([3, 2, 1]);
      expect([t('email', 'LEASE'), t('billing', 'STORE')]).toEqual([undefined, undefined]);
      expect(value(s, 'tidings_dead_letters_total', { topic: 'invoices', subscription: 'billing' })).toBe(1);
      expect(value(s, 'tidings_dead_letters_total', { topic: 'invoices', subscription: 'email' })).toBeUndefined();
      expect(value(s, 'tidings_handler_errors_total', { topic: 'invoices', subscription: 'billing' })).toBe(1);
      expect(value(s, 'tidings_handler_duration_seconds_count', { topic: 'invoices', subscription: 'billing', outcome: 'ok' })).toBe(2);
      expect(value(s, 'tidings_handler_duration_seconds_count', { topic: 'invoices', subscription: 'billing', outcome: 'error' })).toBe(1);
      expect(value(s, 'tidings_end_to_end_latency_seconds_count', { topic: 'invoices', subscription: 'billing' })).toBe(3);
      expect(value(s, 'tidings_end_to_end_latency_seconds_count', { topic: 'invoices', subscription: 'email' })).toBeUndefined();
    } finally {
      await tidings.close();
    }
  });

  it("labels a nack, an expired lease and a duplicate with the subscription they happened in, and the broker's dedup with none", async () => {
    const { tidings, scrape } = await withMetrics(storage());
    try {
      const receipts = tidings.topic<{ n: number }>('receipts', { semantic: 'exactly-once', subscriptions: ['ledger'] });
      await receipts.send({ n: 1 }, { id: 'r-1' });
      await receipts.send({ n: 1 }, { id: 'r-1' });
      const jobs = tidings.topic<{ n: number }>('jobs', {
        semantic: 'at-least-once',
        leaseMs: 50,
        backoff: { initialMs: 1, maxMs: 1 },
        subscriptions: ['worker'],
      });
      await jobs.send({ n: 1 });
      let deliveries = 0;
      // The first delivery outlives its lease, the second throws, the third is acked.
      const handler = async () => {
        deliveries++;
        if (deliveries === 1) await new Promise((r) => setTimeout(r, 300));
        if (deliveries === 2) throw new Error('busy');
      };
      const worker = jobs.subscription('worker');
      const consumers = [worker.consume(handler, { pollMs: 5 }), worker.consume(handler, { pollMs: 5 })];
      await until('the job to be acked', async () => deliveries >= 3 && Object.keys(await worker.counts()).length === 0);
      await Promise.all(consumers.map((c) => c.stop({ graceMs: 1_000 })));
      const s = await scrape();
      expect(value(s, 'tidings_duplicates_total', { topic: 'receipts', by: 'broker', subscription: '' })).toBe(1);
      expect(value(s, 'tidings_redeliveries_total', { topic: 'jobs', subscription: 'worker', reason: 'lease_expired' })).toBe(1);
      expect(value(s, 'tidings_redeliveries_total', { topic: 'jobs', subscription: 'worker', reason: 'nack' })).toBe(1);
    } finally {
      await tidings.close();
    }
  });
});

describe.each(storages)('metricsPlugin and operators on %s', (_, storage) => {
  it("shows a pause as every process sees it, and counts this process's operator acts by action", async () => {
    const { tidings, scrape } = await withMetrics(storage());
    try {
      const orders = tidings.topic<number>('orders', { semantic: 'at-least-once', subscriptions: ['billing', 'email'] });
      await orders.subscription('billing').pause();
      await orders.sendMany([1, 2], { delayMs: 60_000 });
      await orders.subscription('email').retryNow();
      await orders.subscription('email').empty();
      let s = await scrape();
      expect(value(s, 'tidings_subscription_paused', { topic: 'orders', subscription: 'billing' })).toBe(1);
      expect(value(s, 'tidings_subscription_paused', { topic: 'orders', subscription: 'email' })).toBe(0);
      const acts = (subscription: string, action: string) => value(s, 'tidings_operator_actions_total', { topic: 'orders', subscription, action });
      expect([acts('billing', 'pause'), acts('email', 'retryNow'), acts('email', 'empty'), acts('billing', 'resume')]).toEqual([1, 1, 1, undefined]);
      await orders.subscription('billing').resume();
      s = await scrape();
      expect(value(s, 'tidings_subscription_paused', { topic: 'orders', subscription: 'billing' })).toBe(0);
      expect(acts('billing', 'resume')).toBe(1);
    } finally {
      await tidings.close();
    }
  });
});

describe('metricsPlugin', () => {
  it('registers on a registry it is given, under its prefix', async () => {
    const registry = new Registry();
    const { tidings, metrics } = await withMetrics(memoryStorage(), metricsPlugin({ registry, prefix: 'app_' }));
    try {
      await tidings.topic('p', { semantic: 'at-most-once' }).send({});
      await until('the fire-and-forget send to be stored', async () => (await tidings.counts('p')).p?.stored === 1);
      const s = parse(await registry.metrics());
      expect(metrics.registry).toBe(registry);
      expect(value(s, 'app_messages_total', { topic: 'p', event: 'STORE', semantic: 'at-most-once' })).toBe(1);
      expect(value(s, 'app_messages', { topic: 'p', state: 'stored' })).toBe(1);
      expect(s.some((x) => x.name.startsWith('tidings_'))).toBe(false);
    } finally {
      await tidings.close();
    }
  });

  it('reads the per-state gauge from a storage alone, with no Tidings instance (a process watching a shared database)', async () => {
    const file = join(dir, 'watched.db');
    const { tidings } = await withMetrics(sqliteStorage({ file }));
    await tidings.topic('watched', { semantic: 'at-least-once' }).sendMany([{}, {}, {}]);
    await tidings.close();
    const storage = sqliteStorage({ file });
    await storage.open?.();
    try {
      const metrics = metricsPlugin({ storage });
      const s = parse(await metrics.registry.metrics());
      expect(value(s, 'tidings_messages', { topic: 'watched', subscription: 'default', state: 'acked', semantic: 'at-least-once' })).toBe(3);
      expect(value(s, 'tidings_messages_total', { topic: 'watched' })).toBeUndefined();
    } finally {
      await storage.close();
    }
  });

  it('stops reading storage once its instance closes, and refuses a second instance', async () => {
    const { tidings, metrics, scrape } = await withMetrics(memoryStorage());
    await tidings.topic('c', { semantic: 'at-least-once' }).send({});
    const other = await Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0, logger: silentLogger });
    try {
      expect(() => metrics.setup(other)).toThrow(MetricsPluginReusedError);
    } finally {
      await other.close();
    }
    await tidings.close();
    const s = await scrape();
    expect(value(s, 'tidings_messages', { topic: 'c' })).toBeUndefined();
    expect(value(s, 'tidings_messages_total', { topic: 'c', event: 'STORE' })).toBe(1);
  });
});
