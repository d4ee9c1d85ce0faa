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
import { Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
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
const Invoice = new EntitySchema<{ id: string; total: number }>({
  name: 'Invoice',
  properties: { id: { type: 'string', primary: true }, total: { type: 'integer' } },
});
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
  ])('only add tables, columns, indexes and rows, and drop only indexes, on %s, so no upgrade ever rebuilds a table under a writer', (_name, dialect) => {
    // An index replaced by a wider one goes (dropping an index rewrites no table); PostgreSQL widens a VARCHAR in
    // place (a longer limit is binary-compatible); every INSERT only records what the rows already say.
    const allowed =
      /^(CREATE TABLE IF NOT EXISTS |CREATE (UNIQUE )?INDEX IF NOT EXISTS |ALTER TABLE \w+ ADD COLUMN |DROP INDEX IF EXISTS |ALTER TABLE \w+ DROP CONSTRAINT IF EXISTS |ALTER TABLE \w+ ALTER COLUMN \w+ TYPE VARCHAR\(\d+\)$|INSERT INTO tidings_subscription )/;
    for (const migration of [...MIGRATIONS, V4]) {
      for (const sql of migration.statements(dialect)) {
        expect(sql).toMatch(allowed);
        expect(sql).not.toMatch(/\b(DROP (TABLE|COLUMN)|RENAME)\b/i);
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

  it("SQLite: create the tables next to the application's, record the version, and leave Tidings no DDL to run", async () => {
    const file = join(dir, 'app-migrator.db');
    const orm = await SqliteORM.init({
      dbName: file,
      entities: [Invoice, ...tidingsEntities],
      allowGlobalContext: true,
      extensions: [Migrator],
      migrations: { migrationsList: [...tidingsMigrations(sqliteDialect), { name: 'CreateInvoice', class: CreateInvoice }], silent: true },
    });
    expect((await orm.migrator.up()).map((m) => m.name)).toEqual([...MIGRATIONS.map((m) => `tidings_v${m.version}`), 'CreateInvoice']);
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

/** What a line-printing child said, collected as it runs. */
interface ChildLog {
  acked: Map<string, string[]>;
  handled: Map<string, string[]>;
  errors: string[];
  lines: string[];
}

/** Starts the load child on the built packages; resolves once it is sending and consuming. */
function startLoad(file: string): Promise<{ log: ChildLog; stop: () => Promise<number | null> }> {
  const proc = spawn(process.execPath, [child, file], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  const log: ChildLog = { acked: new Map(), handled: new Map(), errors: [], lines: [] };
  let stderr = '';
  let buffered = '';
  let ready: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  proc.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const [kind, topic, id] = line.split(' ');
      if (kind === 'ready') ready();
      else if (kind === 'acked' || kind === 'handled') {
        const into = log[kind];
        into.set(topic!, [...(into.get(topic!) ?? []), id!]);
      } else if (kind === 'error') log.errors.push(line);
      else log.lines.push(line);
    }
  });
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return Promise.race([
    started.then(() => ({
      log,
      stop: async () => {
        proc.stdin.end();
        const code = await exited;
        if (code !== 0) log.errors.push(`exit ${code}: ${stderr}`);
        return code;
      },
    })),
    exited.then((code) => Promise.reject(new Error(`the load child exited (${code}) before it was ready: ${stderr}`))),
  ]);
}

/** Rows of Tidings' tables outside the load child's topics, as they are stored. */
function preexisting(file: string): Record<string, unknown[]> {
  const db = new Database(file, { readonly: true });
  try {
    const rows = (sql: string) => db.prepare(sql).all();
    return {
      message: rows(
        `SELECT seq, topic, id, body, state, deliveries, available_at, created_at, lease_until, lease_token, last_error FROM tidings_message WHERE topic LIKE 'old.%' ORDER BY seq`,
      ),
      dedup: rows(`SELECT topic, id, expires_at FROM tidings_dedup WHERE topic LIKE 'old.%' ORDER BY topic, id`),
      idempotency: rows(`SELECT topic, id, expires_at FROM tidings_idempotency WHERE topic LIKE 'old.%' ORDER BY topic, id`),
      topic: rows(`SELECT * FROM tidings_topic WHERE name LIKE 'old.%' ORDER BY name`),
    };
  } finally {
    db.close();
  }
}

describe('upgrading a SQLite file while another process keeps using it', () => {
  it(
    'adds a version under load: every row stays, every message the other process sent is consumed as promised, no DDL rebuilds a table',
    { timeout: 30_000 },
    async () => {
      const file = join(dir, 'under-load.db');
      const current = sqliteStorage({ file });
      await current.open();
      await current.close();
      // Rows in every state, written as version 3 lays them out; the load child never touches topics named old.*.
      const db = new Database(file);
      const later = Date.now() + 86_400_000;
      const message = db.prepare(
        `INSERT INTO tidings_message (topic, id, body, state, deliveries, available_at, created_at, lease_until, lease_token, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const [state, deliveries, leaseUntil, token, error] of [
        ['stored', 0, null, null, null],
        ['acked', 0, null, null, null],
        ['leased', 1, later, 'lease-1', null],
        ['consumed', 1, null, null, null],
        ['dead', 3, null, null, 'Error: refused\n    at handler'],
      ] as const) {
        for (let i = 0; i < 3; i++)
          message.run(`old.${state}`, `${state}-${i}`, JSON.stringify({ state, i }), state, deliveries, 1_000 + i, 1_000 + i, leaseUntil, token, error);
      }
      for (const table of ['tidings_dedup', 'tidings_idempotency']) {
        for (let i = 0; i < 3; i++) db.prepare(`INSERT INTO ${table} (topic, id, expires_at) VALUES (?, ?, ?)`).run('old.records', `record-${i}`, later);
      }
      db.prepare(`INSERT INTO tidings_topic (name, lifecycle, dead_letter, max_deliveries, declared_at) VALUES (?, ?, ?, ?, ?)`).run(
        'old.dead',
        'at-least-once',
        null,
        3,
        1_000,
      );
      // The load child's exactly-once effects, written in its handler's transaction.
      db.exec('CREATE TABLE load_effects (id TEXT NOT NULL)');
      db.close();
      const rowsBefore = preexisting(file);
      const pagesBefore = new Database(file, { readonly: true })
        .prepare(`SELECT name, rootpage FROM sqlite_master WHERE name LIKE 'tidings_%' ORDER BY name`)
        .all();

      const load = await startLoad(file);
      const acks = () => [...load.log.acked.values()].reduce((n, ids) => n + ids.length, 0);
      const until = async (what: string, check: () => boolean) => {
        for (const end = Date.now() + 10_000; !check(); await new Promise((r) => setTimeout(r, 10))) {
          if (Date.now() > end) throw new Error(`timed out waiting for ${what}; errors: ${load.log.errors.join('\n')}`);
        }
      };
      await until('the load child to send', () => acks() >= 100);

      // This process's code knows one more migration than the child's; opening the file upgrades it.
      const upgraded = sqlStorage({
        dialect: sqliteDialect,
        target: `SQLite file ${file}`,
        ownsOrm: true,
        connect: () =>
          initOwnOrm({
            driver: SqliteDriver,
            dbName: file,
            entities: tidingsEntities,
            allowGlobalContext: true,
            pool: { min: 1, max: 1, afterCreate: sqliteConnectionSetup() },
          }),
        migrations: [...MIGRATIONS, V4],
      });
      await upgraded.open();
      const ackedAtUpgrade = acks();
      await roundTrip(upgraded, 'new.after-upgrade');
      await until('the load child to go on sending after the upgrade', () => acks() >= ackedAtUpgrade + 100);
      expect(await load.stop()).toBe(0);

      expect(load.log.errors).toEqual([]);
      expect(load.log.lines).toContain('done');
      // At-least-once: every acknowledged send was handled (at least once).
      const handledAlo = new Set(load.log.handled.get('load.alo'));
      expect(load.log.acked.get('load.alo')!.filter((id) => !handledAlo.has(id))).toEqual([]);
      // Exactly-once: every acknowledged send has exactly one effect, and there is no other.
      const check = new Database(file, { readonly: true });
      const effects = (check.prepare('SELECT id FROM load_effects').all() as Array<{ id: string }>).map((r) => r.id);
      expect(effects.sort()).toEqual([...load.log.acked.get('load.eo')!].sort());
      expect(check.prepare(`SELECT value FROM tidings_meta WHERE key = 'schema_version'`).get()).toEqual({ value: String(V4.version) });
      expect(check.prepare(`SELECT name FROM pragma_table_info('tidings_message') WHERE name = 'note'`).all()).toEqual([{ name: 'note' }]);
      expect(check.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'tidings_message_note'`).all()).toEqual([
        { name: 'tidings_message_note' },
      ]);
      // The same root pages: no table was copied and swapped in.
      expect(
        check.prepare(`SELECT name, rootpage FROM sqlite_master WHERE name LIKE 'tidings_%' AND name <> 'tidings_message_note' ORDER BY name`).all(),
      ).toEqual(pagesBefore);
      check.close();
      expect(preexisting(file)).toEqual(rowsBefore);
      await upgraded.close();
    },
  );
});
