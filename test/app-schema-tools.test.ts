import { EntitySchema, MikroORM as SqliteORM } from '@mikro-orm/sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import type { MikroORM } from '@mikro-orm/core';
import type { SqlSchemaGenerator } from '@mikro-orm/knex';
import pg from 'pg';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Tidings, silentLogger, type Logger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-schema-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An application entity of its own, next to Tidings'. */
const Invoice = new EntitySchema<{ id: string; total: number }>({
  name: 'Invoice',
  properties: { id: { type: 'string', primary: true }, total: { type: 'integer' } },
});

const SKIP = { skipTables: [/^tidings_/] };
const SKIP_LINE = 'add schemaGenerator: { skipTables: [/^tidings_/] } to your MikroORM config';

/** A logger that keeps its warnings. */
function recording(): Logger & { warnings: Array<{ msg: string; statements: string[] }> } {
  const warnings: Array<{ msg: string; statements: string[] }> = [];
  return { warnings, debug() {}, error() {}, warn: (msg, data) => void warnings.push({ msg, statements: (data as { statements: string[] }).statements }) };
}

/** Statements of MikroORM's update SQL that name one of Tidings' tables. */
async function tidingsUpdateSql(orm: MikroORM): Promise<string[]> {
  return (await orm.schema.getUpdateSchemaSQL({ wrap: false }))
    .split(/;\s*\n/)
    .map((s) => s.trim())
    .filter((s) => /tidings_/.test(s));
}

/** `tidings: false` leaves tidingsEntities out of the application's entities; the rest is MikroORM's config. */
interface AppOrmOptions {
  tidings?: boolean;
  schemaGenerator?: typeof SKIP;
  dbName?: string;
  clientUrl?: string;
}

interface Database {
  /** An application's MikroORM, on a new database unless given one. */
  appOrm(options?: AppOrmOptions): Promise<MikroORM>;
  /** A storage on the application's ORM. */
  on(orm: MikroORM): StorageAdapter<any>;
  /** A storage that opens its own ORM on the same database as `orm`. */
  beside(orm: MikroORM): StorageAdapter<any>;
  /** Runs one statement on the database `orm` is on, outside MikroORM. */
  exec(orm: MikroORM, sql: string): Promise<void>;
}

const sqlite: Database = {
  async appOrm({ tidings = true, dbName = join(dir, `app-${Math.random().toString(36).slice(2)}.db`), schemaGenerator } = {}) {
    return SqliteORM.init({ dbName, entities: [Invoice, ...(tidings ? tidingsEntities : [])], allowGlobalContext: true, schemaGenerator });
  },
  on: (orm) => sqliteStorage({ orm }),
  beside: (orm) => sqliteStorage({ file: orm.config.get('dbName') }),
  async exec(orm, sql) {
    await orm.em.getConnection().execute(sql);
  },
};

const postgres: Database = {
  async appOrm({ tidings = true, clientUrl, schemaGenerator } = {}) {
    clientUrl ??= await freshPostgresDatabase('schema_tools');
    return PostgresORM.init({ clientUrl, entities: [Invoice, ...(tidings ? tidingsEntities : [])], allowGlobalContext: true, schemaGenerator });
  },
  on: (orm) => postgresStorage({ orm: orm as PostgresORM }),
  beside: (orm) => postgresStorage({ url: orm.config.get('clientUrl')! }),
  async exec(orm, sql) {
    const client = new pg.Client({ connectionString: orm.config.get('clientUrl') });
    await client.connect();
    await client.query(sql).finally(() => client.end());
  },
};

describe.each([
  ['SQLite', sqlite],
  ['PostgreSQL', postgres],
] as const)("an application's MikroORM schema tools and Tidings' tables (%s)", (name, db) => {
  it('warns once at start-up, with the skipTables line to add, when no skipTables covers them', async () => {
    const orm = await db.appOrm();
    const logger = recording();
    try {
      const first = await Tidings.create({ storage: db.on(orm), purgeIntervalMs: 0, logger });
      // Start-up does not wait for MikroORM to read the schema; close() does.
      expect(logger.warnings).toEqual([]);
      // A second instance on the same ORM (another module, a test's next app) is not told again.
      const second = await Tidings.create({ storage: db.on(orm), purgeIntervalMs: 0, logger });
      await first.close();
      await second.close();
      expect(logger.warnings).toHaveLength(1);
      expect(logger.warnings[0]!.msg).toContain("Your MikroORM's schema generator manages Tidings' tables (tidings_*): orm.schema.updateSchema() ");
      expect(logger.warnings[0]!.msg).toContain(
        name === 'SQLite' ? 'would now rebuild tidings_message' : 'whatever in them differs from tidingsEntities (nothing does today)',
      );
      expect(logger.warnings[0]!.msg).toContain(SKIP_LINE);
      expect(logger.warnings[0]!.statements).toEqual(expect.arrayContaining(await tidingsUpdateSql(orm)));
    } finally {
      await orm.close();
    }
  });

  it('says nothing and asks MikroORM for no schema diff with skipTables, whose update SQL then leaves the tables alone', async () => {
    const orm = await db.appOrm({ schemaGenerator: SKIP });
    const logger = recording();
    const diff = vi.spyOn(orm.schema as unknown as SqlSchemaGenerator, 'getTargetSchema');
    try {
      const tidings = await Tidings.create({ storage: db.on(orm), purgeIntervalMs: 0, logger });
      await tidings.close();
      expect(diff).not.toHaveBeenCalled();
      expect(logger.warnings).toEqual([]);
      diff.mockRestore();
      expect(await tidingsUpdateSql(orm)).toEqual([]);
    } finally {
      await orm.close();
    }
  });

  it("names what updateSchema() would do, such as dropping an index an operator added to Tidings' table", async () => {
    const orm = await db.appOrm();
    const logger = recording();
    try {
      // Tidings' tables made by a storage of its own, so that the application's ORM is first looked at below.
      await (await Tidings.create({ storage: db.beside(orm), purgeIntervalMs: 0, logger: silentLogger })).close();
      await db.exec(orm, 'CREATE INDEX ops_by_state ON tidings_message (state)');
      await (await Tidings.create({ storage: db.on(orm), purgeIntervalMs: 0, logger })).close();
      expect(logger.warnings[0]!.msg).toMatch(/updateSchema\(\) would now .*drop index ops_by_state/);
    } finally {
      await orm.close();
    }
  });

  it("is not Tidings' to see, and updateSchema() drops its tables: an application ORM without tidingsEntities on Tidings' own database", async () => {
    const orm = await db.appOrm({ tidings: false });
    const tidings = await Tidings.create({ storage: db.beside(orm), purgeIntervalMs: 0, logger: silentLogger });
    const skipping = await db.appOrm({
      tidings: false,
      schemaGenerator: SKIP,
      ...(name === 'SQLite' ? { dbName: orm.config.get('dbName') } : { clientUrl: orm.config.get('clientUrl') }),
    });
    try {
      // MikroORM 6's updateSchema() defaults to dropTables: true, and these tables are in no entity of this ORM.
      const drops = await tidingsUpdateSql(orm);
      expect(drops.map((s) => s.replace(/[`"]/g, '').replace(/ cascade$/, ''))).toEqual(
        ['tidings_dedup', 'tidings_idempotency', 'tidings_message', 'tidings_meta', 'tidings_subscription', 'tidings_topic'].map(
          (t) => `drop table if exists ${t}`,
        ),
      );
      expect(await tidingsUpdateSql(skipping)).toEqual([]);
    } finally {
      await tidings.close();
      await orm.close();
      await skipping.close();
    }
  });
});

describe("MikroORM's schema update on SQLite without skipTables", () => {
  it('rebuilds tidings_message on every run, since it reads its INTEGER seq as a change from the bigint entity', async () => {
    const orm = await sqlite.appOrm();
    const logger = recording();
    try {
      const tidings = await Tidings.create({ storage: sqliteStorage({ orm }), purgeIntervalMs: 0, logger });
      await tidings.topic('t', { semantic: 'at-least-once' }).send({ kept: true });
      await tidings.close();
      expect(logger.warnings[0]!.msg).toContain(
        'orm.schema.updateSchema() would now rebuild tidings_message (copy its rows into a new table, drop it, rename the copy), and migration:create would write the same into your migrations (the 9 statements follow).',
      );
      await orm.schema.updateSchema();
      // Run once, the rebuild is asked for again: the application's boot would copy the table every time.
      const again = await tidingsUpdateSql(orm);
      expect(again.map((s) => s.split(' (')[0])).toEqual([
        'create table `tidings_message__temp_alter`',
        'insert into `tidings_message__temp_alter` select `seq`, `topic`, `subscription`, `id`, `ordering_key`, `body`, `state`, `deliveries`, `available_at`, `created_at`, `lease_until`, `lease_token`, `last_error`, `headers` from `tidings_message`',
        'drop table `tidings_message`',
        'alter table `tidings_message__temp_alter` rename to `tidings_message`',
        'create index `tidings_message_ready` on `tidings_message`',
        'CREATE INDEX tidings_message_key ON tidings_message',
        'create unique index `tidings_message_copy` on `tidings_message`',
      ]);
      expect(await orm.em.getConnection().execute('SELECT count(*) AS n FROM tidings_message')).toEqual([{ n: 1 }]);
    } finally {
      await orm.close();
    }
  });
});
