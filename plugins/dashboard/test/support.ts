import { isDeepStrictEqual } from 'node:util';
import { Tidings, silentLogger, type Topic } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { metricsPlugin, type MetricsPlugin } from '@tidings/metrics';

/** Polls `check` every 10 ms until it holds, failing with `what` after `ms`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A Tidings instance with the metrics plugin among its plugins, as an application would make it. */
export async function instrumented(storage: StorageAdapter<any>): Promise<{ tidings: Tidings<any>; metrics: MetricsPlugin }> {
  const metrics = metricsPlugin();
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger, plugins: [metrics] });
  return { tidings, metrics };
}

/**
 * Fills an instance the way the dashboard's tests want it: `orders` (at-least-once, one delivery) with two dead
 * letters and two waiting, and `clicks` (at-most-once) with three stored. Returns after the dead letters settled.
 */
export async function fill(tidings: Tidings<any>, prefix = ''): Promise<void> {
  const orders = tidings.topic<{ n: number }>(`${prefix}orders`, { semantic: 'at-least-once', maxDeliveries: 1 });
  const clicks = tidings.topic<{ n: number }>(`${prefix}clicks`, { semantic: 'at-most-once' });
  await orders.sendMany([{ n: 1 }, { n: 2 }], { id: (p) => `order-${p.n}` });
  const consumer = orders.consume(
    async () => {
      throw new Error('payment service refused\n    at charge (payments.ts:12)');
    },
    { pollMs: 5 },
  );
  await until('two dead letters', async () => (await tidings.counts(`${prefix}orders`))[`${prefix}orders`]?.dead === 2);
  await consumer.stop();
  await orders.sendMany([{ n: 3 }, { n: 4 }], { id: (p) => `order-${p.n}` });
  await clicks.sendMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
  await until('the clicks to be stored', async () => (await tidings.counts(`${prefix}clicks`))[`${prefix}clicks`]?.stored === 3);
}

/**
 * Fills an instance with a topic of several subscriptions, none of them `default`: `invoices` (at-least-once, ordered
 * by key) to billing, which dead-lettered invoice-1 (one delivery) and consumed the others, and to email, which has
 * consumed none; audit was declared after the messages were stored, so it holds none.
 */
export async function fillSubscribed(tidings: Tidings<any>, name = 'invoices'): Promise<Topic<{ n: number }, any>> {
  const invoices = tidings.topic<{ n: number }>(name, {
    semantic: 'at-least-once',
    ordering: 'key',
    subscriptions: { billing: { maxDeliveries: 1 }, email: {} },
  });
  await invoices.sendMany(
    [1, 2, 3].map((n) => ({ n })),
    { id: (p) => `invoice-${p.n}`, key: (p) => `customer-${p.n}` },
  );
  const billing = invoices.subscription('billing');
  const consumer = billing.consume(
    async (m) => {
      if (m.payload.n === 1) throw new Error('no billing address');
    },
    { pollMs: 5 },
  );
  await until('billing to settle', async () => isDeepStrictEqual(await billing.counts(), { dead: 1 }));
  await consumer.stop();
  await invoices.subscription('audit').ready();
  return invoices;
}

/** One server-sent event: its name and its data parsed as JSON. */
export interface StreamEvent {
  event: string;
  data: unknown;
}

/** Reads a server-sent event stream one event at a time, counting the bytes received. */
export function events(res: Response): { next(): Promise<StreamEvent>; bytes(): number } {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  let bytes = 0;
  return {
    bytes: () => bytes,
    async next() {
      for (;;) {
        const end = buffered.indexOf('\n\n');
        if (end >= 0) {
          const frame = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (data !== undefined) return { event: /^event: (.*)$/m.exec(frame)?.[1] ?? 'message', data: JSON.parse(data) as unknown };
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended');
        bytes += value.byteLength;
        buffered += decoder.decode(value, { stream: true });
      }
    },
  };
}
