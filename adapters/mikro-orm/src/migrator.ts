import type { EntityManager } from '@mikro-orm/knex';
import type { SqlConnection, SqlRow } from './connection.js';
import { tidingsEntities } from './entities.js';
import { SchemaError } from './errors.js';
import type { Migration, SchemaDialect } from './schema.js';

/** Where Tidings records its schema version; made before the first migration, since that reads it. */
const META_TABLE = `CREATE TABLE IF NOT EXISTS tidings_meta (key VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(200) NOT NULL)`;

const READ_VERSION = `SELECT value FROM tidings_meta WHERE key = 'schema_version'`;

/** Runs one statement inside the transaction a migration holds. */
export type RunSql = (sql: string, params?: unknown[]) => Promise<SqlRow[]>;

/**
 * One migration's work inside a transaction the caller holds: waits for the dialect's migration lock, then runs the
 * statements and records the version, unless another process (or the application's migrator) already did.
 * With `createMeta`, makes the version table first, since a dialect's lock may write to it.
 * Resolves to whether it ran the statements.
 */
export async function applyMigration(dialect: SchemaDialect, migration: Migration, run: RunSql, createMeta = false): Promise<boolean> {
  if (createMeta) await run(META_TABLE);
  if (dialect.migrationLock) await run(dialect.migrationLock);
  const [row] = await run(READ_VERSION);
  if (row && Number(row.value) >= migration.version) return false;
  const { unlessColumn } = migration;
  const skip = unlessColumn && (await run(dialect.columnsSql, [unlessColumn.table])).some((c) => c.name === unlessColumn.column);
  if (!skip) for (const sql of migration.statements(dialect)) await run(sql);
  await run(`INSERT INTO tidings_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING key`, [
    String(migration.version),
  ]);
  return !skip;
}

/**
 * Brings Tidings' own tables (and only those) up to date with numbered migrations; refuses a schema newer than
 * this code. The ORM must still know `tidingsEntities`, or the application's own schema tools would drop our tables.
 */
export async function ensureSchema(connection: SqlConnection, migrations: readonly Migration[]): Promise<void> {
  const { orm, dialect, target } = connection;
  for (const entity of tidingsEntities) {
    if (!orm.getMetadata().find(entity.meta.className)) {
      throw new SchemaError(
        `The MikroORM instance passed to ${dialect.name}Storage does not know ${entity.meta.className}: add tidingsEntities from @tidings/adapter-mikro-orm to its entities (or MikroOrmModule.forFeature(tidingsEntities)), so your own schema tools keep Tidings' tables.`,
      );
    }
  }
  const newest = migrations.at(-1)?.version ?? 0;
  const found = await schemaVersion(connection);
  if (found !== undefined && !(found <= newest)) {
    throw new SchemaError(
      `${target} holds Tidings schema version ${found}, newer than this code understands (${newest}). Upgrade @tidings packages, or point Tidings at another database.`,
    );
  }
  // An up-to-date schema gets no DDL at all, so opening a busy database never takes a schema lock.
  if (found === newest) return;
  await withSchemaRetry(target, () => connection.exec(META_TABLE, [], undefined, 'migrate'));
  for (const migration of migrations) {
    if (migration.version > (found ?? 0)) {
      await withSchemaRetry(target, () =>
        connection.transaction((em: EntityManager) => applyMigration(dialect, migration, (sql, params = []) => connection.exec(sql, params, em, 'migrate'))),
      );
    }
  }
}

/** Processes opening an empty database together race on its first DDL; the loser finds the work done. */
async function withSchemaRetry(target: string, step: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await step();
      return;
    } catch (error) {
      if (attempt < 3) {
        await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 30));
        continue;
      }
      throw new SchemaError(`Could not create or update Tidings' tables in ${target}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** The schema version recorded in the database, or undefined when Tidings' tables are not there yet. */
async function schemaVersion(connection: SqlConnection): Promise<number | undefined> {
  try {
    const [row] = await connection.exec(READ_VERSION, [], undefined, 'open');
    return row ? Number(row.value) : undefined;
  } catch (error) {
    if (error instanceof SchemaError) return undefined;
    throw error;
  }
}
