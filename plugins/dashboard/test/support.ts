import { Tidings, silentLogger, type StorageAdapter } from '@tidings/core';
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
