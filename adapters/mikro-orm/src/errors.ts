import {
  ConnectionException,
  DeadlockException,
  DriverException,
  LockWaitTimeoutException,
  TableNotFoundException,
} from '@mikro-orm/core';
import { StorageError, TidingsError } from '@tidings/core';

/** The database schema is missing pieces, or is newer than this code understands. */
export class SchemaError extends TidingsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SCHEMA_MISMATCH', message, options);
  }
}

/** Whether a driver error is worth retrying at once (busy, locked, deadlock, serialization). */
export function isTransient(error: unknown): boolean {
  if (error instanceof LockWaitTimeoutException || error instanceof DeadlockException) return true;
  if (error instanceof TidingsError) return error.code === 'STORAGE_BUSY';
  const code = (error as { code?: string })?.code;
  const message = String((error as Error)?.message ?? '');
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === '40001' || code === '40P01' || /SQLITE_BUSY|database is locked/.test(message);
}

/** Whether an error came from the database driver rather than from application code. */
export function isDriverError(error: unknown): boolean {
  if (error instanceof TidingsError) return false;
  if (error instanceof DriverException || isTransient(error)) return true;
  const e = error as { code?: unknown; severity?: unknown; errno?: unknown };
  return typeof e?.code === 'string' && (e.code.startsWith('SQLITE_') || typeof e.severity === 'string' || /^E[A-Z]+$/.test(e.code));
}

/** Turns a driver error into a typed Tidings error, so callers never parse driver messages. */
export function toTidingsError(error: unknown, where: string, target: string): TidingsError {
  if (error instanceof TidingsError) return error;
  let detail = (error as Error)?.message ?? String(error);
  // knex puts the whole statement before the driver's message; keep only the message.
  if (detail.startsWith('/* tidings */')) detail = detail.slice(detail.lastIndexOf(' - ') + 3);
  if (isTransient(error)) {
    return new StorageError(`${target} stayed busy during ${where} (${detail}). Another process holds a lock; retry, or raise busyTimeoutMs.`, {
      cause: error,
      code: 'STORAGE_BUSY',
    });
  }
  const code = (error as { code?: string })?.code ?? '';
  if (error instanceof ConnectionException || /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EPIPE|57P0[123]|08\w{3})$/.test(code) || /Connection terminated|connection is closed|connection error|not queryable|Knex: Timeout acquiring/i.test(detail)) {
    return new StorageError(`Lost the connection to ${target} during ${where} (${detail}). Check that the database is up and reachable.`, {
      cause: error,
      code: 'CONNECTION_LOST',
    });
  }
  if (error instanceof TableNotFoundException || code === '42P01' || /no such table/.test(detail)) {
    return new SchemaError(`${target} has no Tidings tables (${detail}). Let Tidings create them (the default), or add tidingsEntities to your MikroORM config and update the schema.`, { cause: error });
  }
  if (error instanceof DriverException) {
    return new StorageError(`${target} failed during ${where}: ${detail}`, { cause: error });
  }
  return new StorageError(`${where} failed on ${target}: ${detail}`, { cause: error });
}
