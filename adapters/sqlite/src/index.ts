import { DriverException, type MikroORM } from '@mikro-orm/core';
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  exceptionKind,
  initOwnOrm,
  sqlStorage,
  tidingsEntities,
  toTidingsError,
  type MikroOrmStorage,
  type SqlDialect,
  type SqlErrorKind,
} from '@tidings/adapter-mikro-orm';
import { InvalidOptionsError } from '@tidings/core';
import { loadSqliteDriver, syncStatementsOf, type SqliteDriverName } from './driver.js';
import { listenForStores } from './watch-stores.js';

export { loadSqliteDriver, type SqliteDriverName } from './driver.js';

export { tidingsEntities, SchemaError, MikroOrmStorage } from '@tidings/adapter-mikro-orm';

/** How the embedded SQLite storage opens its file. */
export interface SqliteStorageOptions {
  /** Database file (created with its folder if missing), or `:memory:` (default `.tidings/tidings.db`). */
  file?: string;
  /**
   * `FULL` (default) fsyncs every commit, so an ack means the message is on disk;
   * `NORMAL` is faster and, in WAL mode, may lose the last commits on power loss (not on a process crash).
   */
  synchronous?: 'FULL' | 'NORMAL' | 'OFF';
  /** How long a write waits for another process's lock, in ms (default 5 000). */
  busyTimeoutMs?: number;
  /**
   * The driver Tidings opens the file with (not used with `orm`): `better-sqlite3` (`@mikro-orm/better-sqlite`, the
   * default when installed: statements run synchronously and Tidings' writes commit in groups) or `sqlite3`
   * (`@mikro-orm/sqlite`: each statement on a thread of its own, so a wait for another process's lock never blocks
   * the event loop).
   */
  driver?: SqliteDriverName;
  /** Your own MikroORM instance on either driver (its entities must include `tidingsEntities`); Tidings will not close it. */
  orm?: MikroORM;
}

/**
 * SQLite's errors, from either driver: MikroORM's own exceptions by class; the driver's by code (`SQLITE_BUSY`,
 * `SQLITE_CONSTRAINT_UNIQUE`, …) and, where codes say too little, by message, as MikroORM's converter reads them.
 */
function classifySqliteError(error: unknown): SqlErrorKind | undefined {
  if (error instanceof DriverException) return exceptionKind(error);
  const { code, message: raw } = (error ?? {}) as { code?: unknown; message?: unknown };
  const message = String(raw);
  // better-sqlite3 throws a TypeError (no code) for a statement on a closed handle.
  if (error instanceof TypeError && /database connection is not open/i.test(message)) return 'connection-lost';
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
  // A table another connection of this process is writing: as transient as SQLITE_BUSY, but not "database is locked".
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || /database is locked/i.test(message)) return 'busy';
  // The sqlite3 driver answers a statement on a closed handle this way.
  if (code === 'SQLITE_MISUSE' && /closed|not open/i.test(message)) return 'connection-lost';
  if (code.startsWith('SQLITE_CANTOPEN') || /unable to open database file/i.test(message)) return 'connection-lost';
  if (/no such table/i.test(message)) return 'missing-table';
  // SQLITE_FULL: "database or disk is full"; a write to a read-only mount or file is SQLITE_READONLY, or an I/O error
  // the OS explains (EROFS) when the file was opened writable before the mount changed.
  if (code.startsWith('SQLITE_FULL') || /disk is full|no space left/i.test(message)) return 'full';
  if (code.startsWith('SQLITE_READONLY') || /read-only file system|readonly database/i.test(message)) return 'read-only';
  return 'failed';
}

/**
 * SQLite through MikroORM: one statement leases a batch (`UPDATE … RETURNING`); processes share a file safely, and a
 * store by any of them wakes the others' consumers of its topic (a watch on the WAL, see `listenForStores`).
 */
export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  lockClause: '',
  registryLock: '',
  queuesStatements: true,
  modifyingCtes: false,
  seqIn: (candidates) => `seq IN (${candidates})`,
  serialPrimaryKey: 'INTEGER PRIMARY KEY AUTOINCREMENT',
  columnsSql: 'SELECT name FROM pragma_table_info(?)',
  // A write first, so the migration holds the write lock (waiting out busy_timeout) before it reads the version;
  // a read first would pin a snapshot that a concurrent writer's commit makes unable to write (SQLITE_BUSY at once).
  migrationLock: `UPDATE tidings_meta SET value = value WHERE key = 'schema_version'`,
  namesStatements: false,
  jsonStrings: 'SELECT value FROM json_each(?)',
  stringIn: (column) => `${column} IN (SELECT value FROM json_each(?))`,
  jsonMessages: `SELECT key AS n, value ->> '$.id' AS id, value ->> '$.key' AS ordering_key, value ->> '$.body' AS body, value ->> '$.availableAt' AS available_at,
    value ->> '$.lastError' AS last_error, value ->> '$.headers' AS headers FROM json_each(?)`,
  dropUnique: (_table, name) => [`DROP INDEX IF EXISTS ${name}`],
  classifyError: classifySqliteError,
  listen: listenForStores,
};

/** Whether the file's folder is on a file system mounted read-only (EROFS, which root gets too). */
function onReadOnlyMount(file: string): boolean {
  if (file === ':memory:') return false;
  try {
    accessSync(dirname(resolve(file)), constants.W_OK);
    return false;
  } catch (error) {
    return (error as { code?: string }).code === 'EROFS';
  }
}

/** A connection as either driver hands it to `pool.afterCreate`: sqlite3's takes a callback, better-sqlite3's runs at once. */
type RawSqlite = { exec(sql: string, cb?: (err: Error | null) => void): unknown; pragma?: unknown };

function pragmasOf(options: Pick<SqliteStorageOptions, 'synchronous' | 'busyTimeoutMs'>): {
  synchronous: 'FULL' | 'NORMAL' | 'OFF';
  busyTimeoutMs: number;
  sql: string;
} {
  const synchronous = options.synchronous ?? 'FULL';
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  if (!['FULL', 'NORMAL', 'OFF'].includes(synchronous))
    throw new InvalidOptionsError(`synchronous must be 'FULL', 'NORMAL' or 'OFF', got ${String(synchronous)}.`);
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0)
    throw new InvalidOptionsError(`busyTimeoutMs must be an integer >= 0, got ${String(busyTimeoutMs)}.`);
  return { synchronous, busyTimeoutMs, sql: `PRAGMA journal_mode = WAL; PRAGMA synchronous = ${synchronous}; PRAGMA busy_timeout = ${busyTimeoutMs};` };
}

/**
 * The `pool.afterCreate` for your own MikroORM config: sets WAL, `synchronous` and `busy_timeout` on every SQLite
 * connection the pool opens, as Tidings' own connections have them.
 */
export function sqliteConnectionSetup(options: Pick<SqliteStorageOptions, 'synchronous' | 'busyTimeoutMs'> = {}) {
  const { sql } = pragmasOf(options);
  return (conn: RawSqlite, done: (err: Error | null, conn: unknown) => void) => {
    if (typeof conn.pragma !== 'function') return void conn.exec(sql, (err) => done(err, conn));
    try {
      conn.exec(sql);
      done(null, conn);
    } catch (error) {
      done(error as Error, conn);
    }
  };
}

const SYNCHRONOUS_LEVELS: Record<string, number> = { OFF: 0, NORMAL: 1, FULL: 2 };

/**
 * An application's own MikroORM gets the durability settings too: applied on its connection at open and read back.
 * A pool of several connections without `sqliteConnectionSetup()` would leave the others without them, so it is refused.
 */
async function applyPragmas(orm: MikroORM, file: string, p: ReturnType<typeof pragmasOf>): Promise<void> {
  const pool = (orm.config.get('pool') ?? {}) as { max?: number; afterCreate?: unknown };
  if ((pool.max ?? 1) > 1 && pool.afterCreate === undefined) {
    throw new InvalidOptionsError(
      `sqliteStorage({ orm }): your MikroORM pool opens up to ${pool.max} SQLite connections, and only one would get WAL, synchronous and busy_timeout. ` +
        `Add pool: { afterCreate: sqliteConnectionSetup() } (from @tidings/adapter-sqlite) to your MikroORM config, or use a pool of one connection.`,
    );
  }
  const connection = orm.em.getConnection();
  const read = async (pragma: string) => Object.values(((await connection.execute(`PRAGMA ${pragma}`)) as Record<string, unknown>[])[0] ?? {})[0];
  const inMemory = file === ':memory:' || file === '';
  if (!inMemory) await connection.execute('PRAGMA journal_mode = WAL');
  await connection.execute(`PRAGMA synchronous = ${p.synchronous}`);
  await connection.execute(`PRAGMA busy_timeout = ${p.busyTimeoutMs}`);
  const found = {
    journal: String(await read('journal_mode')),
    synchronous: Number(await read('synchronous')),
    busyTimeout: Number(await read('busy_timeout')),
  };
  if ((!inMemory && found.journal !== 'wal') || found.synchronous !== SYNCHRONOUS_LEVELS[p.synchronous] || found.busyTimeout !== p.busyTimeoutMs) {
    throw new InvalidOptionsError(
      `sqliteStorage({ orm }) could not set WAL, synchronous=${p.synchronous} and busy_timeout=${p.busyTimeoutMs} on your SQLite connection (found ${JSON.stringify(found)}). ` +
        `Add pool: { afterCreate: sqliteConnectionSetup() } (from @tidings/adapter-sqlite) to your MikroORM config.`,
    );
  }
}

/** The embedded default: messages in a SQLite file, WAL mode, `synchronous=FULL`; or your own MikroORM's database, with the same settings. */
export function sqliteStorage(options: SqliteStorageOptions = {}): MikroOrmStorage {
  const file = options.file ?? '.tidings/tidings.db';
  if (typeof file !== 'string' || file.length === 0)
    throw new InvalidOptionsError(`sqliteStorage({ file }) needs a file path or ':memory:', got ${String(file)}.`);
  const pragmas = pragmasOf(options);
  if (options.driver !== undefined && options.driver !== 'better-sqlite3' && options.driver !== 'sqlite3') {
    throw new InvalidOptionsError(`sqliteStorage({ driver }) must be 'better-sqlite3' or 'sqlite3', got ${String(options.driver)}.`);
  }
  return sqlStorage({
    dialect: sqliteDialect,
    target: options.orm ? 'the application database' : `SQLite file ${file}`,
    ownsOrm: !options.orm,
    syncStatements: syncStatementsOf,
    // WAL with synchronous=NORMAL commits without an fsync; the next FULL commit syncs the log up to itself.
    lazyCommit: pragmas.synchronous === 'FULL' ? { begin: 'PRAGMA synchronous = NORMAL', end: 'PRAGMA synchronous = FULL' } : undefined,
    connect: async () => {
      if (options.orm) {
        await applyPragmas(options.orm, String(options.orm.config.get('dbName') ?? ''), pragmas);
        return options.orm;
      }
      // Not MikroORM.init: the application's MIKRO_ORM_* variables or .env could move Tidings to another file.
      const driver = await loadSqliteDriver(options.driver);
      try {
        return await initOwnOrm({
          driver,
          dbName: file,
          entities: tidingsEntities,
          allowGlobalContext: true,
          pool: { min: 1, max: 1, afterCreate: sqliteConnectionSetup(options) },
        });
      } catch (error) {
        // SQLite says only "unable to open database file"; a folder on a read-only mount is the cause worth naming.
        if (onReadOnlyMount(file)) throw toTidingsError(error, 'read-only', 'open', `SQLite file ${file}`);
        throw error;
      }
    },
  });
}
