import { Injectable, type ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { EntitySchema, MikroORM, SqliteDriver, type EntityManager } from '@mikro-orm/sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, type ConsumeContext, type Message, type Topic } from '@tidings/core';
import { sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { Consumer, InjectTopic, TidingsModule, type MessageConsumer } from '@tidings/nest';
import { RecordingLogger, sleep, uniqueTopic, waitFor } from './support.js';

/** The application's own table, written by the consumer in the consumption's transaction. */
interface Shipment {
  order: number;
  attempt: number;
}
const ShipmentEntity = new EntitySchema<Shipment>({
  name: 'Shipment',
  properties: { order: { type: 'integer', primary: true }, attempt: { type: 'integer' } },
});

interface Order {
  id: number;
}

const dir = mkdtempSync(join(tmpdir(), 'tidings-nest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A database file with the application's schema in place, as its migrations would leave it. */
async function migratedDatabase(): Promise<string> {
  const file = join(dir, `app-${Math.random().toString(36).slice(2)}.db`);
  const orm = await MikroORM.init({ dbName: file, entities: [ShipmentEntity, ...tidingsEntities] });
  await orm.schema.createSchema();
  await orm.close(true);
  return file;
}

/** What happened, in order, across the handler, Tidings and the ORM. */
type Timeline = string[];

/** The application under test: MikroOrmModule and TidingsModule sharing one SQLite file, in either import order. */
function appModules(file: string, topic: string, tidingsFirst: boolean): ModuleMetadata['imports'] {
  const orm = MikroOrmModule.forRoot({
    driver: SqliteDriver,
    dbName: file,
    entities: [ShipmentEntity, ...tidingsEntities],
    schemaGenerator: { skipTables: [/^tidings_/] },
  });
  const tidings = TidingsModule.forRootAsync({
    inject: [MikroORM],
    useFactory: (orm: MikroORM) => ({ storage: sqliteStorage({ orm }), purgeIntervalMs: 0 }),
  });
  const topics = TidingsModule.forFeature([{ name: topic, semantic: 'exactly-once', scope: 'end-to-end', backoff: { initialMs: 1, maxMs: 1 } }]);
  return tidingsFirst ? [tidings, orm, topics] : [orm, tidings, topics];
}

describe.each([
  ['MikroOrmModule imported first', false],
  ['TidingsModule imported first', true],
])('with @mikro-orm/nestjs on a SQLite file (%s)', (_order, tidingsFirst) => {
  it('commits an exactly-once consumer’s writes through ctx.em with the consumption, and rolls them back with a failed one', async () => {
    const file = await migratedDatabase();
    const topic = uniqueTopic('orm');
    const attempts: Array<[number, number]> = [];

    @Consumer(topic, { pollMs: 5 })
    class ShipOrders implements MessageConsumer<Order, EntityManager> {
      async handle(message: Message<Order>, ctx: ConsumeContext<EntityManager>) {
        attempts.push([message.payload.id, message.attempt]);
        ctx.em.persist(ctx.em.create(ShipmentEntity, { order: message.payload.id, attempt: message.attempt }));
        await ctx.em.flush();
        if (message.payload.id === 2 && message.attempt === 1) throw new Error('crash after writing');
      }
    }

    @Injectable()
    class Checkout {
      constructor(
        @InjectTopic(topic) private readonly orders: Topic<Order, EntityManager>,
        private readonly orm: MikroORM,
      ) {}

      /** Sends inside the application's transaction (outbox): stored only if it commits. */
      place(id: number, fail = false) {
        return this.orm.em.fork().transactional(async (em) => {
          await this.orders.send({ id }, { id: `order-${id}`, em });
          if (fail) throw new Error('checkout failed');
        });
      }
    }

    const logger = new RecordingLogger();
    const app = await Test.createTestingModule({ imports: appModules(file, topic, tidingsFirst), providers: [ShipOrders, Checkout] })
      .setLogger(logger)
      .compile();
    await app.init();
    const checkout = app.get(Checkout);
    await checkout.place(1);
    await checkout.place(2);
    await expect(checkout.place(3, true)).rejects.toThrow('checkout failed');
    const tidings = app.get(Tidings);
    const settled = async () =>
      attempts.some(([id, attempt]) => id === 2 && attempt === 2) && Object.keys((await tidings.counts(topic))[topic] ?? {}).length === 0;
    await waitFor(settled);
    const shipments = await app
      .get(MikroORM)
      .em.fork()
      .find(ShipmentEntity, {}, { orderBy: { order: 'asc' } });
    await app.close();

    // A failure rolls back its whole batch's transaction, so order 1 may be handled again; only its committed effect counts.
    expect(new Set(attempts.map(([id]) => id))).toEqual(new Set([1, 2]));
    expect(attempts).toContainEqual([2, 1]);
    // Order 2's first write rolled back with its failed consumption; order 3 was never stored (its checkout rolled back).
    expect(shipments.map((s) => [s.order, s.attempt])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(logger.errors).toEqual([]);
  });

  it('drains a slow handler before MikroOrmModule closes the ORM: its write commits, the message is consumed, nothing is logged', async () => {
    const file = await migratedDatabase();
    const topic = uniqueTopic('orm');
    const timeline: Timeline = [];

    @Consumer(topic, { concurrency: 3, batchSize: 3 })
    class SlowShipper implements MessageConsumer<Order, EntityManager> {
      async handle(message: Message<Order>, ctx: ConsumeContext<EntityManager>) {
        timeline.push(`handler ${message.payload.id} started`);
        await sleep(300);
        ctx.em.persist(ctx.em.create(ShipmentEntity, { order: message.payload.id, attempt: message.attempt }));
        timeline.push(`handler ${message.payload.id} done`);
      }
    }

    const logger = new RecordingLogger();
    const app = await Test.createTestingModule({ imports: appModules(file, topic, tidingsFirst), providers: [SlowShipper] })
      .setLogger(logger)
      .compile();
    await app.init();
    const orm = app.get(MikroORM);
    const tidings = app.get(Tidings);
    const record = <T extends object>(target: T, method: keyof T & string, label: string) => {
      const original = (target[method] as (...args: unknown[]) => Promise<unknown>).bind(target);
      (target as Record<string, unknown>)[method] = async (...args: unknown[]) => {
        timeline.push(`${label} called`);
        try {
          return await original(...args);
        } finally {
          timeline.push(`${label} returned`);
        }
      };
    };
    record(orm, 'close', 'orm.close');
    record(tidings, 'close', 'tidings.close');

    await app.get<Topic<Order>>(`TidingsTopic:${topic}`).sendMany([{ id: 1 }, { id: 2 }, { id: 3 }]);
    await waitFor(() => timeline.filter((t) => t.endsWith('started')).length === 3);
    await app.close();

    const order = (entry: string) => timeline.indexOf(entry);
    for (const id of [1, 2, 3]) expect(order(`handler ${id} done`)).toBeLessThan(order('tidings.close called'));
    expect(order('tidings.close returned')).toBeLessThan(order('orm.close called'));
    expect(logger.errors).toEqual([]);

    // Reopened from the file: every message's effect committed once, and no message is left to deliver.
    const reopened = await MikroORM.init({ dbName: file, entities: [ShipmentEntity, ...tidingsEntities] });
    try {
      const rows = await reopened.em.fork().find(ShipmentEntity, {}, { orderBy: { order: 'asc' } });
      expect(rows.map((s) => s.order)).toEqual([1, 2, 3]);
      const left = await reopened.em.getConnection().execute('SELECT count(*) AS n FROM tidings_message WHERE topic = ?', [topic]);
      expect(Number(left[0].n)).toBe(0);
    } finally {
      await reopened.close(true);
    }
  });
});
