import { MikroORM } from '@mikro-orm/sqlite';
import { MikroOrmStorage, tidingsEntities, type SqlDialect } from '@tidings/adapter-mikro-orm';
import { InvalidOptionsError } from '@tidings/core';

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
  /** Your own MikroORM instance (its entities must include `tidingsEntities`); Tidings will not close it. */
  orm?: MikroORM;
}

/** SQLite through MikroORM: one statement leases a batch (`UPDATE … RETURNING`); processes share a file safely. */
export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  lockClause: '',
  jsonStrings: 'SELECT value FROM json_each(?)',
  jsonMessages: `SELECT value ->> '$.id' AS id, value ->> '$.body' AS body, value ->> '$.availableAt' AS available_at FROM json_each(?)`,
};

/** The embedded default: messages in a SQLite file, WAL mode, `synchronous=FULL`. */
export function sqliteStorage(options: SqliteStorageOptions = {}): MikroOrmStorage {
  const file = options.file ?? '.tidings/tidings.db';
  const synchronous = options.synchronous ?? 'FULL';
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  if (typeof file !== 'string' || file.length === 0) throw new InvalidOptionsError(`sqliteStorage({ file }) needs a file path or ':memory:', got ${String(file)}.`);
  if (!['FULL', 'NORMAL', 'OFF'].includes(synchronous)) throw new InvalidOptionsError(`synchronous must be 'FULL', 'NORMAL' or 'OFF', got ${String(synchronous)}.`);
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) throw new InvalidOptionsError(`busyTimeoutMs must be an integer >= 0, got ${String(busyTimeoutMs)}.`);
  const pragmas = `PRAGMA journal_mode = WAL; PRAGMA synchronous = ${synchronous}; PRAGMA busy_timeout = ${busyTimeoutMs};`;
  return new MikroOrmStorage({
    dialect: sqliteDialect,
    target: options.orm ? 'the application database' : `SQLite file ${file}`,
    ownsOrm: !options.orm,
    connect: async () =>
      options.orm ??
      (await MikroORM.init({
        dbName: file,
        entities: tidingsEntities,
        allowGlobalContext: true,
        pool: {
          min: 1,
          max: 1,
          afterCreate: (conn: { exec(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) =>
            conn.exec(pragmas, (err) => done(err, conn)),
        },
      })),
  });
}
