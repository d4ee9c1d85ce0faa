// A CommonJS module under module nodenext: its imports compile to require(), which resolves the `require` types (.d.cts).
import { Tidings, lifecycleTables } from '@tidings/core';
import { decorateStorage, type StorageAdapter } from '@tidings/core/adapter';
import { lifecycleGraph, type StateGraph } from '@tidings/core/diagrams';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { withFaults } from '@tidings/faults';
import { run } from '@tidings/cli';
import { otelPlugin } from '@tidings/otel';

/** Sends one order; the payload type flows from the topic. */
export async function main(): Promise<void> {
  const storage: StorageAdapter = decorateStorage(withFaults(memoryStorage(), { seed: 1 }), {});
  const graph: StateGraph = lifecycleGraph(lifecycleTables['at-least-once']);
  const tidings = await Tidings.create({ storage, plugins: [otelPlugin()] });
  const orders = tidings.topic<{ id: number }>('orders', { semantic: 'at-least-once' });
  // @ts-expect-error the payload type is checked, so these types are real and not `any`
  await orders.send({ id: 'one' });
  void [graph, sqliteStorage, postgresStorage, run];
}
