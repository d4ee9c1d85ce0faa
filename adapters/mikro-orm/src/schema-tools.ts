import type { Dictionary, MikroORM } from '@mikro-orm/core';
import { DatabaseSchema, SchemaComparator, type AbstractSqlConnection, type AbstractSqlPlatform, type SqlSchemaGenerator } from '@mikro-orm/knex';
import type { Logger } from '@tidings/core';
import { tidingsEntities } from './entities.js';

/** What an application's MikroORM config needs so that its schema tools leave Tidings' tables to Tidings. */
const SKIP_TIDINGS_TABLES = 'schemaGenerator: { skipTables: [/^tidings_/] }';

const TIDINGS_TABLE = /^tidings_/;

/** ORMs already looked at, so each is reported once however many storages open on it. */
const looked = new WeakSet<MikroORM>();

/**
 * Warns, once per ORM, when an application's MikroORM schema generator would manage Tidings' tables (no `skipTables`
 * covers them). Their entities describe the tables Tidings' migrations make only as closely as MikroORM can, so its
 * diff alters them: on SQLite `updateSchema()` rebuilds `tidings_message` on every run, and `migration:create` writes
 * that into the application's migrations. The warning lists what `updateSchema()` would do to them now, asked of
 * MikroORM without running it; a generator already told to skip them costs nothing.
 */
export async function checkSchemaTools(orm: MikroORM, logger: Logger): Promise<void> {
  if (looked.has(orm)) return;
  looked.add(orm);
  const skip = orm.config.get('schemaGenerator').skipTables ?? [];
  const managed = tidingsEntities
    .map((e) => e.meta.tableName)
    .filter((table) => !skip.some((p) => (typeof p === 'string' ? p.toLowerCase() === table : p.test(table))));
  if (managed.length === 0) return;
  let statements: string[] | undefined;
  try {
    statements = await updateStatements(orm, skip);
  } catch (error) {
    logger.debug(`Could not ask MikroORM what its schema update would do to Tidings' tables: ${(error as Error).message}`);
  }
  const tables = managed.length === tidingsEntities.length ? 'tidings_*' : managed.join(', ');
  const now = statements?.length
    ? `orm.schema.updateSchema() would now ${summary(statements)}, and migration:create would write the same into your migrations (the ${statements.length} statements follow)`
    : `orm.schema.updateSchema() and migration:create would alter or drop whatever in them differs from tidingsEntities${statements ? ' (nothing does today)' : ''}`;
  logger.warn(
    `Your MikroORM's schema generator manages Tidings' tables (${tables}): ${now}. Tidings creates and migrates its tables itself: add ${SKIP_TIDINGS_TABLES} to your MikroORM config.`,
    { statements: statements ?? [] },
  );
}

/**
 * The statements `updateSchema()` would run on Tidings' tables, by MikroORM's own diff (which is how a dropped index,
 * named without its table, is still known as theirs). Only Tidings' tables are read from the database, and nothing runs.
 */
async function updateStatements(orm: MikroORM, skip: Array<string | RegExp>): Promise<string[]> {
  const generator = orm.schema as unknown as SqlSchemaGenerator;
  const platform = orm.em.getPlatform() as AbstractSqlPlatform;
  const target = generator.getTargetSchema();
  const found = await DatabaseSchema.create(
    orm.em.getConnection() as AbstractSqlConnection,
    platform,
    orm.config,
    undefined,
    target.getNamespaces(),
    [TIDINGS_TABLE],
    skip,
  );
  const diff = new SchemaComparator(platform).compare(found, target);
  const ours = <T>(tables: Dictionary<T>) => Object.fromEntries(Object.entries(tables).filter(([name]) => TIDINGS_TABLE.test(name.split('.').at(-1)!)));
  const sql = await generator.diffToSQL(
    {
      ...diff,
      newTables: ours(diff.newTables),
      changedTables: ours(diff.changedTables),
      removedTables: ours(diff.removedTables),
      newNamespaces: new Set(),
      removedNamespaces: new Set(),
      newNativeEnums: [],
      removedNativeEnums: [],
      orphanedForeignKeys: [],
    },
    // updateSchema()'s defaults, which diffToSQL does not fill in itself.
    { wrap: false, safe: false, dropTables: true },
  );
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** What the statements do, table by table: SQLite's copy, drop and rename of a table is one "rebuild". */
function summary(statements: string[]): string {
  const rebuilt = [...new Set(statements.flatMap((s) => /^create table [`"]?(\w+?)__temp_alter/i.exec(s)?.[1] ?? []))];
  const changes = statements
    .filter((s) => !rebuilt.some((t) => s.includes(t)))
    .flatMap((s) => {
      const m = /^(create|drop|alter)\s+(?:unique\s+)?(table|index)\s+(?:if (?:not )?exists\s+)?[`"]?(\w+)/i.exec(s);
      return m ? [`${m[1]!.toLowerCase()} ${m[2]!.toLowerCase()} ${m[3]}`] : [];
    });
  return [...rebuilt.map((t) => `rebuild ${t} (copy its rows into a new table, drop it, rename the copy)`), ...new Set(changes)].join(', ') || 'change them';
}
