import { ConnectionException, DeadlockException, DriverException, LockWaitTimeoutException, TableNotFoundException } from '@mikro-orm/core';
import { StorageError, TidingsError } from '@tidings/core';
import type { SqlDialect, SqlErrorKind } from './dialect.js';

/** The database schema is missing pieces, or is newer than this code understands. */
export class SchemaError extends TidingsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SCHEMA_MISMATCH', message, options);
  }
}

/** A caller's EntityManager (a send's `em`) is on another database than Tidings' storage, which it cannot write in that transaction. */
export class ForeignEntityManagerError extends TidingsError {
  constructor(target: string, where: string, cause: unknown) {
    super(
      'FOREIGN_ENTITY_MANAGER',
      `The EntityManager given to Tidings (a send's em, or a handler's transaction) during ${where} is not on ${target}: its database has no Tidings tables. ` +
        `Pass an EntityManager of the MikroORM Tidings' storage runs on (give your MikroORM to the storage: sqliteStorage({ orm }) or postgresStorage({ orm })), or send without em.`,
      { cause },
    );
  }
}

/** A Tidings migration was asked to run down: they only add tables, columns and indexes, and are never undone. */
export class IrreversibleMigrationError extends TidingsError {
  constructor(message: string) {
    super('MIGRATION_IRREVERSIBLE', message);
  }
}

/** Where a dialect's driver error lands once MikroORM's exception converter (or the dialect) has named its class. */
export function exceptionKind(error: DriverException): SqlErrorKind {
  if (error instanceof LockWaitTimeoutException || error instanceof DeadlockException) return 'busy';
  if (error instanceof ConnectionException) return 'connection-lost';
  if (error instanceof TableNotFoundException) return 'missing-table';
  return 'failed';
}

/**
 * The kind of a failed statement's error. Knex's own pool timeout is the same for every database, so it is
 * sorted here; the rest is the dialect's to say. A Tidings error already converted is only busy or not.
 */
export function classify(error: unknown, dialect: SqlDialect): SqlErrorKind | undefined {
  if (error instanceof TidingsError) return error.code === 'STORAGE_BUSY' ? 'busy' : undefined;
  if ((error as Error)?.name === 'KnexTimeoutError') return 'connection-lost';
  return dialect.classifyError(error);
}

/** Turns a driver error of the given kind into a typed Tidings error, so callers never parse driver messages. */
export function toTidingsError(error: unknown, kind: SqlErrorKind | undefined, where: string, target: string): TidingsError {
  if (error instanceof TidingsError) return error;
  let detail = (error as Error)?.message ?? String(error);
  // knex puts the whole statement before the driver's message; keep only the message.
  if (detail.startsWith('/* tidings */')) detail = detail.slice(detail.lastIndexOf(' - ') + 3);
  switch (kind) {
    case 'busy':
      return new StorageError(`${target} stayed busy during ${where} (${detail}). Another process holds a lock; retry, or raise busyTimeoutMs.`, {
        cause: error,
        code: 'STORAGE_BUSY',
      });
    case 'connection-lost':
      return new StorageError(`Lost the connection to ${target} during ${where} (${detail}). Check that the database is up and reachable.`, {
        cause: error,
        code: 'CONNECTION_LOST',
      });
    case 'missing-table':
      return new SchemaError(
        `${target} has no Tidings tables (${detail}). Let Tidings create them (the default), or add tidingsEntities to your MikroORM config and update the schema.`,
        { cause: error },
      );
    case 'full':
      return new StorageError(
        `${target} has no disk space left during ${where} (${detail}); nothing was written. Free space on its disk or raise its quota: Tidings goes on once writes succeed.`,
        {
          cause: error,
          code: 'STORAGE_FULL',
        },
      );
    case 'read-only':
      return new StorageError(
        `${target} refuses writes during ${where} (${detail}); nothing was written. Its file system, file or server is read-only: remount it read-write, or point Tidings at a writable database.`,
        {
          cause: error,
          code: 'STORAGE_READ_ONLY',
        },
      );
    case 'failed':
      return new StorageError(`${target} failed during ${where}: ${detail}`, { cause: error });
    default:
      return new StorageError(`${where} failed on ${target}: ${detail}`, { cause: error });
  }
}
