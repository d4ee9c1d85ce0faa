import { EntitySchema, MikroORM as SqliteORM } from '@mikro-orm/sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import Database from 'better-sqlite3';
import pg from 'pg';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import { SCHEMA_VERSION } from '@tidings/adapter-mikro-orm';
import { sqliteConnectionSetup, sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-app-orm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An application entity whose table the application manages itself (here: an older shape than the entity). */
const Invoice = new EntitySchema<{ id: string; total: number }>({
  name: 'Invoice',
  properties: { id: { type: 'string', primary: true }, total: { type: 'integer' } },
});
/** An application entity whose table the application has not created yet. */
const Refund = new EntitySchema<{ id: string }>({ name: 'Refund', properties: { id: { type: 'string', primary: true } } });

const APP_TABLE = 'CREATE TABLE invoice (id VARCHAR(64) PRIMARY KEY, legacy_note TEXT)';

describe("Tidings on the application's own MikroORM", () => {
  it("SQLite: creates only Tidings' tables and leaves the application's schema as it was", async () => {
    const file = join(dir, 'own-tables.db');
    const raw = new Database(file);
    raw.exec(APP_TABLE);
    raw.close();
    const orm = await SqliteORM.init({ dbName: file, entities: [Invoice, Refund, ...tidingsEntities], allowGlobalContext: true });
    const tidings = await Tidings.create({ storage: sqliteStorage({ orm }), purgeIntervalMs: 0, logger: silentLogger });
    await tidings.close();
    await orm.close();
    const db = new Database(file, { readonly: true });
    const tables = db.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as Array<{
      name: string;
      sql: string;
    }>;
    db.close();
    expect(tables.map((t) => t.name)).toEqual([
      'invoice',
      'tidings_dedup',
      'tidings_idempotency',
      'tidings_message',
      'tidings_meta',
      'tidings_subscription',
      'tidings_topic',
    ]);
    expect(tables[0]!.sql).toBe(APP_TABLE);
  });

  it("names an em of another database as the mistake, not Tidings' tables as missing, and writes nothing", async () => {
    const tidings = await Tidings.create({ storage: sqliteStorage({ file: join(dir, 'tidings-own.db') }), purgeIntervalMs: 0, logger: silentLogger });
    const other = await SqliteORM.init({ dbName: join(dir, 'the-app.db'), entities: [Invoice], allowGlobalContext: true });
    await other.schema.createSchema();
    try {
      const topic = tidings.topic<{ n: number }>('orders', { semantic: 'exactly-once' });
      const error = await other.em
        .fork()
        .transactional(async (em) => {
          em.persist(em.create(Invoice, { id: 'INV-1', total: 5 }));
          await topic.send({ n: 1 }, { id: 'o-1', em });
        })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'FOREIGN_ENTITY_MANAGER' });
      expect((error as Error).message).toMatch(
        /The EntityManager given to Tidings .* is not on SQLite file .*tidings-own\.db: its database has no Tidings tables\. Pass an EntityManager of the MikroORM/,
      );
      // The caller's transaction rolled back with it, and Tidings stored nothing.
      expect(await other.em.fork().count(Invoice)).toBe(0);
      expect(await tidings.counts('orders')).toEqual({ orders: {} });
    } finally {
      await tidings.close();
      await other.close();
    }
  });

  it("stores a send in the transaction of an application's MikroORM on the other SQLite driver, on Tidings' own file", async () => {
    // Tidings opens its file with better-sqlite3; this application's MikroORM (@mikro-orm/sqlite) uses sqlite3. Its
    // statements were once run as better-sqlite3's: the send answered "duplicate" and nothing was stored.
    const file = join(dir, 'two-drivers.db');
    const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
    const topic = tidings.topic<{ n: number }>('orders', { semantic: 'exactly-once' });
    await topic.ready();
    const app = await SqliteORM.init({ dbName: file, entities: [Invoice], allowGlobalContext: true });
    await app.schema.updateSchema({ dropTables: false, safe: true });
    try {
      const ack = await app.em.fork().transactional(async (em) => {
        em.persist(em.create(Invoice, { id: 'INV-2', total: 7 }));
        return topic.send({ n: 2 }, { id: 'o-2', em });
      });
      expect(ack).toEqual({ id: 'o-2', duplicate: false });
      expect(await tidings.counts('orders')).toEqual({ orders: { acked: 1 } });
      expect(await app.em.fork().count(Invoice)).toBe(1);
    } finally {
      await tidings.close();
      await app.close();
    }
  });

  it('SQLite: gives the application connection WAL, synchronous=FULL and busy_timeout', async () => {
    const file = join(dir, 'pragmas.db');
    const orm = await SqliteORM.init({ dbName: file, entities: tidingsEntities, allowGlobalContext: true });
    const tidings = await Tidings.create({ storage: sqliteStorage({ orm }), purgeIntervalMs: 0, logger: silentLogger });
    const connection = orm.em.getConnection();
    const read = async (pragma: string) => Object.values(((await connection.execute(`PRAGMA ${pragma}`)) as object[])[0]!)[0];
    expect({ journal: await read('journal_mode'), synchronous: await read('synchronous'), busyTimeout: await read('busy_timeout') }).toEqual({
      journal: 'wal',
      synchronous: 2,
      busyTimeout: 5000,
    });
    await tidings.close();
    await orm.close();
  });

  it('SQLite: refuses a pool of several connections without sqliteConnectionSetup, and accepts it with it', async () => {
    const file = join(dir, 'pool.db');
    const bare = await SqliteORM.init({ dbName: file, entities: tidingsEntities, allowGlobalContext: true, pool: { min: 1, max: 4 } });
    await expect(Tidings.create({ storage: sqliteStorage({ orm: bare }), purgeIntervalMs: 0 })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
      message: expect.stringContaining('pool: { afterCreate: sqliteConnectionSetup() }'),
    });
    await bare.close();
    const setUp = await SqliteORM.init({
      dbName: file,
      entities: tidingsEntities,
      allowGlobalContext: true,
      pool: { min: 1, max: 4, afterCreate: sqliteConnectionSetup() },
    });
    const tidings = await Tidings.create({ storage: sqliteStorage({ orm: setUp }), purgeIntervalMs: 0, logger: silentLogger });
    await tidings.close();
    await setUp.close();
  });

  it("PostgreSQL: creates only Tidings' tables and leaves the application's schema as it was", async () => {
    const url = await freshPostgresDatabase('app_orm');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(APP_TABLE);
    const orm = await PostgresORM.init({ clientUrl: url, entities: [Invoice, Refund, ...tidingsEntities], allowGlobalContext: true });
    const tidings = await Tidings.create({ storage: postgresStorage({ orm }), purgeIntervalMs: 0, logger: silentLogger });
    await tidings.close();
    await orm.close();
    const tables = await client.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`);
    const invoice = await client.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'invoice' ORDER BY column_name`);
    await client.end();
    expect(tables.rows.map((r) => r.table_name)).toEqual([
      'invoice',
      'tidings_dedup',
      'tidings_idempotency',
      'tidings_message',
      'tidings_meta',
      'tidings_subscription',
      'tidings_topic',
    ]);
    expect(invoice.rows.map((r) => r.column_name)).toEqual(['id', 'legacy_note']);
  });
});

describe('schema migrations', () => {
  it('upgrades a version-1 database in place, keeping its messages, and records the new version', async () => {
    const file = join(dir, 'v1.db');
    const v1 = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
    await v1.topic('old', { semantic: 'at-least-once' }).send({ kept: true }, { id: 'm1' });
    await v1.close();
    // Make it look like a database written before `last_error` existed.
    const raw = new Database(file);
    raw.exec(`ALTER TABLE tidings_message DROP COLUMN last_error; UPDATE tidings_meta SET value = '1' WHERE key = 'schema_version'`);
    raw.close();
    const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
    const topic = tidings.topic<{ kept: boolean }>('old', { semantic: 'at-least-once', maxDeliveries: 1 });
    topic.consume(() => {
      throw new Error('kept with the dead letter');
    });
    for (let i = 0; i < 300 && (await tidings.deadLetters('old')).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await tidings.deadLetters('old')).toMatchObject([{ id: 'm1', lastError: expect.stringMatching(/^Error: kept with the dead letter\n/) }]);
    await tidings.close();
    const after = new Database(file, { readonly: true });
    expect(after.prepare(`SELECT value FROM tidings_meta WHERE key = 'schema_version'`).get()).toEqual({ value: String(SCHEMA_VERSION) });
    after.close();
  });

  it("skips a column step when the application's own schema tools already made the column from tidingsEntities", async () => {
    const file = join(dir, 'app-made.db');
    const orm = await SqliteORM.init({ dbName: file, entities: tidingsEntities, allowGlobalContext: true });
    await orm.schema.updateSchema();
    const tidings = await Tidings.create({ storage: sqliteStorage({ orm }), purgeIntervalMs: 0, logger: silentLogger });
    await tidings.topic('t', { semantic: 'at-least-once' }).send('x');
    expect((await tidings.counts('t')).t).toEqual({ acked: 1 });
    await tidings.close();
    await orm.close();
  });
});
