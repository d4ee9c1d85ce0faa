import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';
import { DEFAULT_SUBSCRIPTION, InvalidOptionsError, StorageError } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage, redactUrl } from '@tidings/adapter-postgres';
import { DatabaseNotFoundError, NotADatabaseError, SubscriptionRequiredError, UnknownSubscriptionError, UnknownTopicError } from './errors.js';

/** Where the embedded default keeps its messages, relative to the working folder. */
export const DEFAULT_DB = '.tidings/tidings.db';

/** An opened Tidings database: its storage and a printable name for it (never with a password). */
export interface Database {
  storage: StorageAdapter;
  /** The file path as given, or the URL without its password. */
  name: string;
  /** `SQLite file <path>` or `PostgreSQL at <url without password>`, for messages. */
  target: string;
  close(): Promise<void>;
}

const SQLITE_HEADER = 'SQLite format 3\0';

/** Whether `--db` is a URL rather than a file path (a Windows drive letter has no `//`). */
function isUrl(db: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(db);
}

/** Opens a SQLite file that must already exist, or a PostgreSQL URL; throws a typed error saying what to fix. */
export async function openDatabase(db: string = DEFAULT_DB): Promise<Database> {
  if (typeof db !== 'string' || db.trim() === '')
    throw new InvalidOptionsError(`--db needs a SQLite file path or a postgres:// URL, got ${JSON.stringify(db)}.`);
  let storage: StorageAdapter;
  let name: string;
  let target: string;
  if (isUrl(db)) {
    if (!/^postgres(ql)?:\/\//i.test(db)) {
      throw new InvalidOptionsError(`--db ${redactUrl(db)} is not a database tidings can open: pass a SQLite file path or a postgres:// URL.`);
    }
    storage = postgresStorage({ url: db });
    name = redactUrl(db);
    target = `PostgreSQL at ${name}`;
    await checkPostgres(db, target);
  } else {
    const path = resolve(db);
    checkSqliteFile(db, path);
    storage = sqliteStorage({ file: path });
    name = db;
    target = `SQLite file ${db}`;
  }
  try {
    await storage.open?.();
  } catch (error) {
    await storage.close().catch(() => undefined);
    throw error;
  }
  return { storage, name, target, close: () => storage.close() };
}

/** Opens the database, runs `fn`, and always closes it, so a failed command leaves no connection behind. */
export async function withDatabase<T>(db: string | undefined, fn: (database: Database) => Promise<T>): Promise<T> {
  const database = await openDatabase(db);
  try {
    return await fn(database);
  } finally {
    await database.close();
  }
}

/** sqliteStorage creates a missing file, which would turn a mistyped path into an empty database: refuse first. */
function checkSqliteFile(given: string, path: string): void {
  let size: number;
  try {
    const stat = statSync(path);
    if (stat.isDirectory())
      throw new NotADatabaseError(`--db ${given} is a folder; pass the SQLite file inside it, e.g. ${given.replace(/\/$/, '')}/tidings.db.`);
    size = stat.size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new DatabaseNotFoundError(
      `No Tidings database at ${path}${given === path ? '' : ` (--db ${given})`}. ` +
        `An application creates it when it opens sqliteStorage({ file: '${given}' }); run tidings from the folder that holds it, ` +
        `or pass --db <file> (or --db postgres://user:password@host:5432/db).`,
    );
  }
  // An empty file is a valid, empty SQLite database; anything else must carry SQLite's header.
  if (size === 0) return;
  const header = Buffer.alloc(SQLITE_HEADER.length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (header.toString('latin1') !== SQLITE_HEADER) throw new NotADatabaseError(`--db ${given} is not a SQLite database (${path}).`);
}

/**
 * MikroORM creates a missing database on connect, so a mistyped name in --db would leave an empty
 * database on the server: connect once without it, and refuse a database that is not there.
 */
export async function checkPostgres(url: string, target: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  // A dropped connection during the check must not surface as an unhandled 'error' event.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    const { code, message } = error as { code?: string; message?: string };
    if (code === '3D000') {
      throw new DatabaseNotFoundError(`${target} has no such database (${message}). tidings does not create one: check the name in --db.`);
    }
    throw new StorageError(`Cannot reach ${target}: ${message}. Check the host, port, credentials and database name.`, {
      cause: error,
      code: 'CONNECTION_LOST',
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Topics that hold messages and, with `withRecords`, every topic the registry records: an exactly-once topic keeps
 * its dedup records after all its messages are deleted, and the storage contract answers for those only by topic.
 */
export async function topicsOf(database: Database, withRecords = false): Promise<string[]> {
  const topics = new Set(Object.keys(await database.storage.counts()));
  if (withRecords) for (const record of await database.storage.topics()) topics.add(record.name);
  return [...topics].sort();
}

/** Throws `UnknownTopicError` (listing the topics there are) unless `topic` has messages (or, `withRecords`, is recorded). */
export async function assertTopic(database: Database, topic: string, withRecords = false): Promise<void> {
  const known = await topicsOf(database, withRecords);
  if (!known.includes(topic)) throw new UnknownTopicError(topic, known, database.target);
}

/** A topic's subscriptions by name: those the registry records and any that hold copies without a record. */
export async function subscriptionsOf(database: Database, topic: string): Promise<string[]> {
  const [records, counts] = await Promise.all([database.storage.subscriptions(topic), database.storage.counts(topic)]);
  return [...new Set([...records.map((s) => s.name), ...Object.keys(counts[topic] ?? {})])].sort();
}

/**
 * The subscription a command reads: the one given, which the topic must have (`UnknownSubscriptionError` otherwise),
 * or `default`, unless the topic has subscriptions and none of them is `default` (`SubscriptionRequiredError`).
 */
export async function pickSubscription(database: Database, topic: string, given?: string): Promise<string> {
  if (given !== undefined && (typeof given !== 'string' || given === ''))
    throw new InvalidOptionsError('--subscription needs a subscription name, e.g. --subscription billing.');
  const known = await subscriptionsOf(database, topic);
  if (given !== undefined) {
    if (!known.includes(given)) throw new UnknownSubscriptionError(given, topic, known, database.target);
    return given;
  }
  // A topic without any subscription holds nothing: its default subscription answers "none" rather than an error.
  if (known.length > 0 && !known.includes(DEFAULT_SUBSCRIPTION)) throw new SubscriptionRequiredError(topic, known);
  return DEFAULT_SUBSCRIPTION;
}
