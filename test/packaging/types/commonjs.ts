// A CommonJS application as Nest sets one up (module commonjs, moduleResolution node): the packages' types come
// through `main`/`types`, since this resolution ignores `exports`.
import { Tidings, TidingsError, lifecycleTables, type SendAck } from '@tidings/core';
import { decorateStorage, type StorageAdapter } from '@tidings/core/adapter';
import { lifecycleGraph, type StateGraph } from '@tidings/core/diagrams';
import { memoryStorage } from '@tidings/adapter-memory';
import { memoryIdempotency } from '@tidings/idempotency';
import { MikroOrmStorage } from '@tidings/adapter-mikro-orm';
import { sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { checkDeliveries, withFaults } from '@tidings/faults';
import { run } from '@tidings/cli';
import { TidingsModule, nestLogger } from '@tidings/nest';
import { TidingsClient } from '@tidings/nest/microservices';
import { OtelApiMissingError, otelPlugin } from '@tidings/otel';

interface Order {
  id: number;
}

/** Uses a part of every package, so each one's types must resolve and agree with the others'. */
export async function main(): Promise<SendAck> {
  // Types from the three entry points of core meet: a storage typed by /adapter, a table by the main entry drawn by /diagrams.
  const storage: StorageAdapter = decorateStorage(withFaults(memoryStorage(), { seed: 1 }), {});
  const graph: StateGraph = lifecycleGraph(lifecycleTables['at-least-once']);
  const tidings = await Tidings.create({ storage, idempotency: memoryIdempotency(), plugins: [otelPlugin({ tracerName: 'shop' })] });
  const orders = tidings.topic<Order>('orders', { semantic: 'exactly-once' });
  // @ts-expect-error the payload type is checked, so these types are real and not `any`
  await orders.send({ id: 'one' });
  const sqlite: MikroOrmStorage = sqliteStorage({ file: 'tidings.db' });
  const postgres: MikroOrmStorage = postgresStorage({ url: 'postgres://localhost/app' });
  const code: number = await run(['node', 'tidings', '--version']);
  const error: TidingsError | undefined = undefined as OtelApiMissingError | undefined;
  const nest = TidingsModule.forRoot({ storage: memoryStorage(), logger: nestLogger() });
  const client = new TidingsClient({ tidings });
  void [graph, sqlite, postgres, code, error, tidingsEntities.length, checkDeliveries, nest.module, client];
  return orders.send({ id: 1 });
}
