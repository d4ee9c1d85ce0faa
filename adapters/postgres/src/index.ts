import { DriverException, PostgreSqlDriver, PostgreSqlExceptionConverter, type MikroORM } from '@mikro-orm/postgresql';
import { exceptionKind, initOwnOrm, sqlStorage, tidingsEntities, type MikroOrmStorage, type SqlDialect, type SqlErrorKind } from '@tidings/adapter-mikro-orm';
import { InvalidOptionsError, StorageError } from '@tidings/core';

export { tidingsEntities, SchemaError, MikroOrmStorage } from '@tidings/adapter-mikro-orm';

/** How the PostgreSQL storage connects. */
export interface PostgresStorageOptions {
  /** `postgres://user:password@host:port/database`. */
  url?: string;
  /** Your own MikroORM instance (its entities must include `tidingsEntities`); Tidings will not close it. */
  orm?: MikroORM;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** How long to wait for a connection before failing, in ms (default 5 000). */
  connectTimeoutMs?: number;
  /** A schema to keep Tidings' tables in, apart from the application's (created if missing): every connection's search_path. */
  schema?: string;
}

const CHANNEL = 'tidings_stored';

const converter = new PostgreSqlExceptionConverter();

/**
 * PostgreSQL's errors: MikroORM's converter names a server error by its SQLSTATE; a lost connection never reaches
 * the server, so it is sorted here by the network code, the server's shutdown codes (57P01-57P03), the
 * connection-exception class (08…), or the message pg gives a connection that dropped.
 */
function classifyPostgresError(error: unknown): SqlErrorKind | undefined {
  const e = (error ?? {}) as { code?: unknown; severity?: unknown; message?: unknown; stack?: unknown; sqlState?: unknown; previous?: { code?: unknown } };
  const code = typeof e.code === 'string' ? e.code : typeof e.sqlState === 'string' ? e.sqlState : typeof e.previous?.code === 'string' ? e.previous.code : '';
  // 53100 disk_full (also "could not extend file … No space left on device"); 25006 a read-only transaction or hot
  // standby; a data directory on a read-only mount fails the write with the OS's EROFS.
  if (code === '53100' || /no space left on device/i.test(String(e.message ?? ''))) return 'full';
  if (code === '25006' || /read-only file system/i.test(String(e.message ?? ''))) return 'read-only';
  if (error instanceof DriverException) return exceptionKind(error);
  if (
    /^E[A-Z]+$/.test(code) ||
    /^(57P0[123]|08\w{3})$/.test(code) ||
    /Connection terminated|connection is closed|connection error|not queryable/i.test(String(e.message ?? ''))
  ) {
    return 'connection-lost';
  }
  if (typeof e.severity !== 'string') return undefined;
  // A copy, since the converter appends the error's detail and hint to the message it is given.
  return exceptionKind(converter.convertException({ ...e, message: String(e.message), stack: String(e.stack ?? '') } as unknown as Error));
}

/** PostgreSQL: leases with `FOR UPDATE SKIP LOCKED`; stores `NOTIFY` consumers on other machines. */
export const postgresDialect: SqlDialect = {
  name: 'postgresql',
  lockClause: ' FOR UPDATE SKIP LOCKED',
  registryLock: ' FOR KEY SHARE OF s',
  queuesStatements: false,
  seqIn: (candidates) => `seq = ANY(ARRAY(${candidates}))`,
  serialPrimaryKey: 'BIGSERIAL PRIMARY KEY',
  columnsSql: 'SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?',
  migrationLock: 'SELECT pg_advisory_xact_lock(7245130001)',
  namesStatements: true,
  jsonStrings: 'SELECT json_array_elements_text(?::json) AS value',
  stringIn: (column) => `${column} = ANY(ARRAY(SELECT json_array_elements_text(?::json)))`,
  jsonMessages: `SELECT n, id, key AS ordering_key, body, "availableAt" AS available_at, "lastError" AS last_error, headers
    FROM ROWS FROM (json_to_recordset(?::json) AS (id text, key text, body text, "availableAt" bigint, "lastError" text, headers text)) WITH ORDINALITY
    AS x (id, key, body, "availableAt", "lastError", headers, n)`,
  dropUnique: (table, name) => [`ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS ${name}`, `DROP INDEX IF EXISTS ${name}`],
  widenColumn: (table, column, type) => `ALTER TABLE ${table} ALTER COLUMN ${column} TYPE ${type}`,
  modifyingCtes: true,
  // Read by the statement's outer SELECT, so it runs: once, and only if a row went in.
  notifyCte: `SELECT pg_notify('${CHANNEL}', ?) FROM (SELECT 1 FROM stored LIMIT 1) AS one`,
  classifyError: classifyPostgresError,
  async listen(orm, onTopic, onLost) {
    const knex = (orm.em.getConnection() as unknown as { getKnex(): { client: { acquireRawConnection(): Promise<RawClient> } } }).getKnex();
    const raw = await knex.client.acquireRawConnection();
    let closing = false;
    // A terminated backend or a server going down ends this connection: the storage listens again on a new one.
    raw.on('error', (error) => closing || onLost(error));
    raw.on('end', () => closing || onLost());
    raw.on('notification', (m) => onTopic(m.payload ?? ''));
    try {
      await raw.query(`LISTEN ${CHANNEL}`);
    } catch (error) {
      closing = true;
      await raw.end().catch(() => undefined);
      throw error;
    }
    return () => {
      closing = true;
      return raw.end().catch(() => undefined);
    };
  },
};

type RawClient = {
  query(sql: string): Promise<unknown>;
  on(ev: 'notification', cb: (m: { payload?: string }) => void): void;
  on(ev: 'error', cb: (error: Error) => void): void;
  on(ev: 'end', cb: () => void): void;
  end(): Promise<void>;
};

/** The URL with its password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}

function checkUrl(url: unknown): string {
  if (typeof url !== 'string' || url.length === 0) {
    throw new InvalidOptionsError('postgresStorage needs { url: "postgres://user:password@host:5432/db" } or { orm }.');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidOptionsError(`postgresStorage: "${redactUrl(url)}" is not a URL; use postgres://user:password@host:5432/db.`);
  }
  if (!['postgres:', 'postgresql:'].includes(parsed.protocol)) {
    throw new InvalidOptionsError(`postgresStorage: "${redactUrl(url)}" must start with postgres:// or postgresql://.`);
  }
  return url;
}

/** A schema name that needs no quoting, since it goes into a connection parameter; never with the application's own ORM. */
function checkSchema(schema: unknown, ownOrm: boolean): string | undefined {
  if (schema === undefined) return undefined;
  if (ownOrm)
    throw new InvalidOptionsError(
      'postgresStorage: schema applies to the connections Tidings makes from url; with { orm }, set the schema in your MikroORM config.',
    );
  if (typeof schema !== 'string' || !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new InvalidOptionsError(`postgresStorage: schema must be a lower-case name of letters, digits and _ (e.g. tidings), got ${JSON.stringify(schema)}.`);
  }
  return schema;
}

/** Messages in PostgreSQL, for applications that run on many machines. */
export function postgresStorage(options: PostgresStorageOptions): MikroOrmStorage {
  const url = options?.orm ? undefined : checkUrl(options?.url);
  const schema = checkSchema(options?.schema, options?.orm !== undefined);
  const target = url ? `PostgreSQL at ${redactUrl(url)}` : 'the application database';
  return sqlStorage({
    dialect: postgresDialect,
    target,
    ownsOrm: !options.orm,
    connect: async () => {
      const orm =
        options.orm ??
        // Not MikroORM.init: the application's MIKRO_ORM_* variables or .env could move Tidings to another database.
        (await initOwnOrm({
          driver: PostgreSqlDriver,
          clientUrl: url,
          entities: tidingsEntities,
          allowGlobalContext: true,
          // A mistyped database name must fail fast, not quietly create an empty database on the server.
          ensureDatabase: false,
          pool: { min: 0, max: options.poolSize ?? 10, acquireTimeoutMillis: options.connectTimeoutMs ?? 5_000 },
          // Statements are prepared (named) on these connections; each run is still planned for the values it is given.
          driverOptions: {
            connection: {
              connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
              options: `-c plan_cache_mode=force_custom_plan${schema ? ` -c search_path=${schema}` : ''}`,
            },
          },
        }));
      // Fail fast: MikroORM connects lazily, so ask for one row before any message is accepted.
      try {
        await orm.em.getConnection().execute('SELECT 1');
      } catch (error) {
        if (!options.orm) await orm.close(true).catch(() => undefined);
        throw new StorageError(`Cannot reach ${target}: ${(error as Error).message}. Check the host, port, credentials and database name.`, {
          cause: error,
          code: 'CONNECTION_LOST',
        });
      }
      // Tidings creates its own tables, so it creates the schema they go in too, when the user may.
      if (schema) {
        try {
          await orm.em.getConnection().execute(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
        } catch (error) {
          await orm.close(true).catch(() => undefined);
          throw new StorageError(`Cannot create schema ${schema} on ${target}: ${(error as Error).message}. Create it, or grant CREATE on the database.`, {
            cause: error,
          });
        }
      }
      return orm;
    },
  });
}
