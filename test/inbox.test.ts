import { EntitySchema, MikroORM as SqliteORM } from '@mikro-orm/sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import type { EntityManager } from '@mikro-orm/knex';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

/** An application's own table, written by handlers and producers in their transactions. */
interface Shipment {
  id: string;
  note: string;
}
const ShipmentEntity = new EntitySchema<Shipment>({
  name: 'Shipment',
  properties: { id: { type: 'string', primary: true }, note: { type: 'string' } },
});

const dir = mkdtempSync(join(tmpdir(), 'tidings-inbox-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An application ORM that holds its own entities and Tidings' tables in one database. */
const backends: Array<[string, () => Promise<{ orm: SqliteORM | PostgresORM; storage: StorageAdapter<EntityManager> }>]> = [
  [
    'SQLite file',
    async () => {
      const orm = await SqliteORM.init({
        dbName: join(dir, `app-${Math.random()}.db`),
        entities: [ShipmentEntity, ...tidingsEntities],
        allowGlobalContext: true,
      });
      await orm.schema.updateSchema();
      return { orm, storage: sqliteStorage({ orm }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const orm = await PostgresORM.init({
        clientUrl: await freshPostgresDatabase('inbox'),
        entities: [ShipmentEntity, ...tidingsEntities],
        allowGlobalContext: true,
      });
      await orm.schema.updateSchema();
      return { orm, storage: postgresStorage({ orm }) };
    },
  ],
];

async function until(check: () => Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(backends)('transactional inbox and outbox on %s (the application’s own MikroORM)', (_name, open) => {
  it('commits the handler’s writes with the consumption, and rolls both back when the handler throws', async () => {
    const { orm, storage } = await open();
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    const topic = tidings.topic<{ order: string }>('orders', { semantic: 'exactly-once', backoff: { initialMs: 1, maxMs: 5 } });
    let attempts = 0;
    const consumer = topic.consume(async (m, ctx) => {
      attempts++;
      ctx.em.persist(ctx.em.create(ShipmentEntity, { id: m.payload.order, note: `attempt ${m.attempt}` }));
      await ctx.em.flush();
      if (m.attempt === 1) throw new Error('crash after writing');
    });
    await topic.send({ order: 'o-1' }, { id: 'o-1' });
    await until(async () => Object.keys((await tidings.counts('orders')).orders ?? {}).length === 0);
    await consumer.stop();
    const rows = await orm.em.fork().find(ShipmentEntity, {});
    expect(attempts).toBe(2);
    // The first attempt's write rolled back with its failed consumption; only the second committed.
    expect(rows.map((r) => [r.id, r.note])).toEqual([['o-1', 'attempt 2']]);
    await tidings.close();
    await orm.close(true);
  });

  // SQLite shares one transaction among a batch's handlers; PostgreSQL, whose connection runs one statement at a time,
  // gives each unit of concurrency a transaction of its own.
  it('consumes a leased batch in one transaction, handlers running at once, each with its own EntityManager, their statements taking turns', async () => {
    const { orm, storage } = await open();
    // node-postgres warns when queries overlap on one client: the shared transaction must never let them.
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    let transactions = 0;
    const counting = new Proxy(storage, {
      get: (target, prop) =>
        prop === 'transaction'
          ? (fn: (tx: EntityManager) => Promise<unknown>) => {
              transactions++;
              return target.transaction(fn);
            }
          : ((Reflect.get(target, prop, target) as unknown as { bind?: (t: unknown) => unknown })?.bind?.(target) ?? Reflect.get(target, prop, target)),
    }) as StorageAdapter<EntityManager>;
    const tidings = await Tidings.create({ storage: counting, purgeIntervalMs: 0 });
    const topic = tidings.topic<{ order: string }>('batch', { semantic: 'exactly-once' });
    await topic.sendMany(
      Array.from({ length: 40 }, (_, i) => ({ order: `b-${i}` })),
      { id: (p) => p.order },
    );
    const before = transactions;
    let running = 0;
    let most = 0;
    const handles = new Set<EntityManager>();
    const consumer = topic.consume(
      async (m, ctx) => {
        most = Math.max(most, ++running);
        handles.add(ctx.em);
        ctx.em.persist(ctx.em.create(ShipmentEntity, { id: m.payload.order, note: 'batch' }));
        await new Promise((r) => setTimeout(r, 20));
        await ctx.em.flush();
        running--;
      },
      { batchSize: 40, concurrency: 10 },
    );
    await until(async () => Object.keys((await tidings.counts('batch')).batch ?? {}).length === 0);
    await consumer.stop();
    process.off('warning', onWarning);
    expect(transactions - before).toBe(1);
    expect(most).toBe(10);
    expect(handles.size).toBe(40);
    expect(await orm.em.fork().count(ShipmentEntity, {})).toBe(40);
    expect(warnings).toEqual([]);
    await tidings.close();
    await orm.close(true);
  });

  it('forks an EntityManager only for the handlers that read ctx.em, once each, and commits what they left persisted', async () => {
    const { orm, storage } = await open();
    // Counts the forks made on each shared transaction, by patching its fork as the storage's branch receives it.
    let forks = 0;
    const patched = new WeakSet<EntityManager>();
    const counting = Object.assign(Object.create(storage) as StorageAdapter<EntityManager>, {
      branch: <T>(tx: EntityManager, fn: (own: () => EntityManager) => Promise<T>) => {
        if (!patched.has(tx)) {
          const original = tx.fork.bind(tx);
          tx.fork = ((options) => {
            forks++;
            return original(options);
          }) as typeof tx.fork;
          patched.add(tx);
        }
        return storage.branch!(tx, fn);
      },
    });
    const tidings = await Tidings.create({ storage: counting, purgeIntervalMs: 0 });
    const topic = tidings.topic<{ order: string; writes: boolean }>('lazy', { semantic: 'exactly-once' });
    await topic.sendMany(
      Array.from({ length: 20 }, (_, i) => ({ order: `l-${i}`, writes: i % 2 === 0 })),
      { id: (p) => p.order },
    );
    let sameHandle = true;
    let handled = 0;
    const consumer = topic.consume(
      async (m, ctx) => {
        await new Promise((r) => setTimeout(r, 5));
        if (m.payload.writes) {
          const em = ctx.em;
          em.persist(em.create(ShipmentEntity, { id: m.payload.order, note: 'lazy' }));
          sameHandle &&= ctx.em === em;
        }
        handled++;
      },
      { batchSize: 20, concurrency: 10 },
    );
    await until(async () => Object.keys((await tidings.counts('lazy')).lazy ?? {}).length === 0);
    await consumer.stop();
    expect(handled).toBe(20);
    expect(forks).toBe(10);
    expect(sameHandle).toBe(true);
    expect(await orm.em.fork().count(ShipmentEntity, {})).toBe(10);
    await tidings.close();
    await orm.close(true);
  });

  it('nacks only the message whose handler failed a statement; the batch’s other writes commit once', async () => {
    const { orm, storage } = await open();
    await orm.em.fork().insert(ShipmentEntity, { id: 'taken', note: 'already there' });
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    const topic = tidings.topic<{ order: string }>('mixed', {
      semantic: 'exactly-once',
      maxDeliveries: 2,
      deadLetter: 'mixed.dead',
      backoff: { initialMs: 1, maxMs: 1 },
    });
    const orders = Array.from({ length: 20 }, (_, i) => (i === 7 ? 'taken' : `m-${i}`));
    await topic.sendMany(
      orders.map((order) => ({ order })),
      { id: (p) => p.order },
    );
    const consumer = topic.consume(
      async (m, ctx) => {
        // `taken` breaks the primary key: on PostgreSQL that fails the whole transaction, its neighbours' statements too.
        ctx.em.persist(ctx.em.create(ShipmentEntity, { id: m.payload.order, note: `attempt ${m.attempt}` }));
        await new Promise((r) => setTimeout(r, 5));
        await ctx.em.flush();
      },
      { batchSize: 20, concurrency: 20 },
    );
    // Done when all that is left of the topic is its one dead letter.
    await until(async () => JSON.stringify((await tidings.counts('mixed')).mixed) === JSON.stringify({ dead: 1 }));
    await consumer.stop();
    const rows = await orm.em.fork().find(ShipmentEntity, {}, { orderBy: { id: 'asc' } });
    expect(rows.map((r) => r.id).sort()).toEqual([...orders].sort());
    // The 19 others on their first delivery: none was nacked for its neighbour's failure.
    expect(rows.filter((r) => r.id !== 'taken').every((r) => r.note === 'attempt 1')).toBe(true);
    expect((await storage.peek({ topic: 'mixed.dead', subscription: 'default', state: 'acked', limit: 10 })).map((m) => m.id)).toEqual(['taken']);
    await tidings.close();
    await orm.close(true);
  });

  it('stores a send made inside the caller’s transaction only if that transaction commits (outbox)', async () => {
    const { orm, storage } = await open();
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    const topic = tidings.topic<{ order: string }>('shipments', { semantic: 'at-least-once' });
    await orm.em.fork().transactional(async (em) => {
      em.persist(em.create(ShipmentEntity, { id: 's-1', note: 'kept' }));
      await topic.send({ order: 's-1' }, { em: em as EntityManager });
    });
    await expect(
      orm.em.fork().transactional(async (em) => {
        em.persist(em.create(ShipmentEntity, { id: 's-2', note: 'rolled back' }));
        await topic.send({ order: 's-2' }, { em: em as EntityManager });
        throw new Error('abort the business transaction');
      }),
    ).rejects.toThrow('abort the business transaction');
    const queued = await storage.peek({ topic: 'shipments', subscription: 'default', state: 'acked', limit: 10 });
    expect(queued.map((m) => JSON.parse(m.body).order)).toEqual(['s-1']);
    expect((await orm.em.fork().find(ShipmentEntity, {})).map((r) => r.id)).toEqual(['s-1']);
    await tidings.close();
    await orm.close(true);
  });
});
