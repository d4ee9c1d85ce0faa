// A CommonJS module under module nodenext: its imports compile to require(), which resolves the `require` types (.d.cts).
import { Tidings } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { withFaults } from '@tidings/faults';
import { run } from '@tidings/cli';
import { otelPlugin } from '@tidings/otel';

/** Sends one order; the payload type flows from the topic. */
export async function main(): Promise<void> {
  const tidings = await Tidings.create({ storage: withFaults(memoryStorage(), { seed: 1 }), plugins: [otelPlugin()] });
  const orders = tidings.topic<{ id: number }>('orders', { semantic: 'at-least-once' });
  // @ts-expect-error the payload type is checked, so these types are real and not `any`
  await orders.send({ id: 'one' });
  void [sqliteStorage, postgresStorage, run];
}
