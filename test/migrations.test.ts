import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EntitySchema, MikroORM as SqliteORM, SqliteDriver } from '@mikro-orm/sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import { Migration as MikroOrmMigration, Migrator } from '@mikro-orm/migrations';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger, type StorageAdapter } from '@tidings/core';
import { initOwnOrm, MIGRATIONS, SCHEMA_VERSION, sqlStorage, type Migration } from '@tidings/adapter-mikro-orm';
import { tidingsMigrations } from '@tidings/adapter-mikro-orm/migrations';
import { sqliteConnectionSetup, sqliteDialect, sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { postgresDialect, postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const child = fileURLToPath(new URL('./migrations/load-child.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tidings-migrations-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A test-only next version: what a real next migration may do (add a nullable column, add an index). */
const V4: Migration = {
  version: SCHEMA_VERSION + 1,
  statements: () => [`ALTER TABLE tidings_message ADD COLUMN note TEXT NULL`, `CREATE INDEX IF NOT EXISTS tidings_message_note ON tidings_message (note)`],
  unlessColumn: { table: 'tidings_message', column: 'note' },
};

/** An application table that its own migration creates, next to Tidings' in the same migrator run. */
const Invoice = new EntitySchema<{ id: string; total: number }>({ name: 'Invoice', properties: { id: { type: 'string', primary: true }, total: { type: 'integer' } } });
class CreateInvoice extends MikroOrmMigration {
  override async up(): Promise<void> {
    this.addSql('CREATE TABLE invoice (id VARCHAR(255) NOT NULL PRIMARY KEY, total INTEGER NOT NULL)');
  }
}

/** Sends one message and waits until a consumer handled it: the storage works end to end. */
async function roundTrip(storage: StorageAdapter<any>, topicName: string): Promise<void> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
  try {
    const topic = tidings.topic<{ n: number }>(topicName, { semantic: 'exactly-once' });
    const handled: number[] = [];
    topic.consume((m) => void handled.push(m.payload.n), { pollMs: 10 });
    expect(await topic.send({ n: 7 }, { id: 'first' })).toEqual({ id: 'first', duplicate: false });
    for (let i = 0; i < 500 && handled.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(handled).toEqual([7]);
  } finally {
    await tidings.close();
  }
}

describe('Tidings migrations', () => {
  it.each([
    ['sqlite', sqliteDialect],
    ['postgresql', postgresDialect],
  ])('only add tables, columns and indexes on %s, so no upgrade ever rebuilds a table under a writer', (_name, dialect) => {
    for (const migration of [...MIGRATIONS, V4]) {
      for (const sql of migration.statements(dialect)) {
        expect(sql).toMatch(/^(CREATE TABLE IF NOT EXISTS|CREATE (UNIQUE )?INDEX IF NOT EXISTS|ALTER TABLE \w+ ADD COLUMN) /);
        expect(sql).not.toMatch(/\b(DROP|RENAME)\b/i);
      }
    }
  });

  it("name their database in the storage's idempotency store", () => {
    expect(sqliteStorage({ file: join(dir, 'named.db') }).idempotencyStore().name).toBe('sqlite');
    expect(postgresStorage({ url: 'postgres://u:p@127.0.0.1:9/db' }).idempotencyStore().name).toBe('postgresql');
  });
});

describe("Tidings' migrations in the application's MikroORM migrator", () => {
  const schemaCookie = (file: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return db.pragma('schema_version', { simple: true });
    } finally {
      db.close();
    }
  };

  const tidingsTables = (file: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare(`SELECT name, rootpage, sql FROM sqlite_master WHERE name LIKE 'tidings_%' ORDER BY name`).all();
    } finally {
      db.close();
    }
  };

  it('SQLite: create the tables next to the application\'s, record the version, and leave Tidings no DDL to run', async () => {
    const file = join(dir, 'app-migrator.db');
    const orm = await SqliteORM.init({
      dbName: file,
      entities: [Invoice, ...tidingsEntities],
      allowGlobalContext: true,
      extensions: [Migrator],
      migrations: { migrationsList: [...tidingsMigrations(sqliteDialect), { name: 'CreateInvoice', class: CreateInvoice }], silent: true },
    });
    expect((await orm.migrator.up()).map((m) => m.name)).toEqual(['tidings_v1', 'tidings_v2', 'tidings_v3', 'CreateInvoice']);
    const before = schemaCookie(file);
    await roundTrip(sqliteStorage({ orm }), 'after-migrator');
    // SQLite bumps the schema cookie on any DDL: unchanged, so opening ran none.
    expect(schemaCookie(file)).toBe(before);
    await orm.close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare(`SELECT value FROM tidings_meta WHERE key = 'schema_version'`).get()).toEqual({ value: String(SCHEMA_VERSION) });
    db.close();
  });

  it('SQLite: are skipped where Tidings already brought the database up to date, and refuse to run down', async () => {
    const file = join(dir, 'tidings-first.db');
    await roundTrip(sqliteStorage({ file }), 'before-migrator');
    const orm = await SqliteORM.init({
      dbName: file,
      entities: [Invoice, ...tidingsEntities],
      allowGlobalContext: true,
      extensions: [Migrator],
      migrations: { migrationsList: tidingsMigrations(sqliteDialect), silent: true },
    });
    // The migrator makes its own table; Tidings' stay exactly as they were.
    const before = tidingsTables(file);
    expect(await orm.migrator.up()).toHaveLength(MIGRATIONS.length);
    expect(tidingsTables(file)).toEqual(before);
    // umzug wraps what a migration throws.
    await expect(orm.migrator.down()).rejects.toMatchObject({ cause: { code: 'MIGRATION_IRREVERSIBLE' } });
    await orm.close();
  });

  it('PostgreSQL: create the tables and record the version, so Tidings opens without DDL', async () => {
    const url = await freshPostgresDatabase('app_migrator');
    const orm = await PostgresORM.init({
      clientUrl: url,
      entities: [Invoice, ...tidingsEntities],
      allowGlobalContext: true,
      extensions: [Migrator],
      migrations: { migrationsList: [...tidingsMigrations(postgresDialect), { name: 'CreateInvoice', class: CreateInvoice }], silent: true },
    });
    await orm.migrator.up();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    // PostgreSQL has no schema cookie; the newest relation id moves with any CREATE, and no table changes shape.
    const catalog = `SELECT max(oid::int) AS newest, (SELECT count(*) FROM information_schema.columns WHERE table_name LIKE 'tidings_%') AS columns FROM pg_class`;
    const before = (await client.query(catalog)).rows[0];
    await roundTrip(postgresStorage({ orm }), 'after-migrator');
    expect((await client.query(catalog)).rows[0]).toEqual(before);
    expect((await client.query(`SELECT value FROM tidings_meta WHERE key = 'schema_version'`)).rows).toEqual([{ value: String(SCHEMA_VERSION) }]);
    await client.end();
    await orm.close();
  });
});
