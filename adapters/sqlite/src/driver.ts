import type { Configuration, IDatabaseDriver, MikroORM } from '@mikro-orm/core';
import type { SqlRow, SyncStatements } from '@tidings/adapter-mikro-orm';
import { TidingsError } from '@tidings/core';

/** Which SQLite driver MikroORM opens the file with: `better-sqlite3` (`@mikro-orm/better-sqlite`) or `sqlite3` (`@mikro-orm/sqlite`). */
export type SqliteDriverName = 'better-sqlite3' | 'sqlite3';

const PACKAGES: Record<SqliteDriverName, string> = { 'better-sqlite3': '@mikro-orm/better-sqlite', sqlite3: '@mikro-orm/sqlite' };

type DriverClass = new (config: Configuration) => IDatabaseDriver;

async function load(name: SqliteDriverName): Promise<DriverClass | undefined> {
  try {
    const mod = (await import(PACKAGES[name])) as { BetterSqliteDriver?: DriverClass; SqliteDriver?: DriverClass };
    return name === 'better-sqlite3' ? mod.BetterSqliteDriver : mod.SqliteDriver;
  } catch (error) {
    // Only the driver package itself missing means "try the other"; anything else it fails on is worth seeing.
    const { code, message } = error as { code?: string; message?: string };
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String(message).includes(PACKAGES[name])) return undefined;
    throw error;
  }
}

/**
 * The MikroORM driver class for `choice`; without a choice, better-sqlite3 (faster: synchronous statements, group
 * commits) when `@mikro-orm/better-sqlite` is installed, else sqlite3.
 */
export async function loadSqliteDriver(choice?: SqliteDriverName): Promise<DriverClass> {
  for (const name of choice ? [choice] : (['better-sqlite3', 'sqlite3'] as const)) {
    const driver = await load(name);
    if (driver) return driver;
  }
  const wanted = choice ? PACKAGES[choice] : `${PACKAGES['better-sqlite3']} (or ${PACKAGES.sqlite3})`;
  throw new TidingsError(
    'SQLITE_DRIVER_MISSING',
    `sqliteStorage needs MikroORM's SQLite driver ${wanted}, which is not installed. Install it with the same version as @mikro-orm/core: npm i -E ${choice ? PACKAGES[choice] : PACKAGES['better-sqlite3']}@6.6.16`,
  );
}

interface Statement {
  readonly reader: boolean;
  all(...params: unknown[]): SqlRow[];
  run(...params: unknown[]): unknown;
}
type BetterSqliteDatabase = { prepare(sql: string): Statement };

/** Prepared once per connection and kept: Tidings' statements are few and fixed. */
const prepared = new WeakMap<object, Map<string, Statement>>();

/** Tidings' statements straight on better-sqlite3's connection, prepared once. */
export const betterSqliteStatements: SyncStatements = {
  run(conn, sql, params) {
    const db = conn as BetterSqliteDatabase;
    let cache = prepared.get(db);
    if (!cache) prepared.set(db, (cache = new Map()));
    let statement = cache.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      // A guard against a caller building statements without end; Tidings' own are a few dozen.
      if (cache.size > 500) cache.clear();
      cache.set(sql, statement);
    }
    if (statement.reader) return statement.all(...params);
    statement.run(...params);
    return [];
  },
};

/** The synchronous runner when `orm` opened its database through better-sqlite3. */
export function syncStatementsOf(orm: MikroORM): SyncStatements | undefined {
  const client = (orm.em.getConnection() as unknown as { getKnex(): { client: { driverName?: string } } }).getKnex().client;
  return client.driverName === 'better-sqlite3' ? betterSqliteStatements : undefined;
}
