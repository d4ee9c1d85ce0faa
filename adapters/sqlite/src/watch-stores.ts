import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { MikroORM } from '@mikro-orm/core';

/**
 * When to look after the WAL was last written, in ms from the previous look. A commit writes its frames (what the
 * watch sees), then fsyncs them and only then publishes them: a reader sees it up to a fsync after the event. Each
 * look costs a query, so they thin out: a write followed by nothing is looked for 7 times over about a second.
 */
const LOOKS_MS = [1, 3, 9, 27, 81, 243, 729];

/** The topics that got new messages since the last call. */
export type StoredSince = () => Promise<readonly string[]>;

/**
 * Calls `onTopic` soon after any connection, in any process, stores messages into a topic of the WAL-mode SQLite
 * database `file`. `fs.watch` on its folder sees the `-wal` file written (or created, reset, removed); `storedSince`
 * then asks which topics got messages, so a burst of writes is one question, and writes that store nothing (leases,
 * acks) wake no one. The database's own files are never opened here: closing any descriptor of a file drops every
 * POSIX lock this process holds on it, SQLite's included, and another process could then corrupt the database.
 * Returns the closer, which resolves once no question is in flight; undefined when the folder cannot be watched
 * (consumers then poll).
 */
export function watchStores(
  file: string,
  storedSince: StoredSince,
  onTopic: (topic: string) => void,
  onLost: (error: unknown) => void = () => undefined,
): (() => Promise<void>) | undefined {
  const wal = `${basename(file)}-wal`;
  let step = LOOKS_MS.length;
  let next: NodeJS.Timeout | undefined;
  /** The question in flight, if any: one at a time, and one more right after when a look fell due meanwhile. */
  let asking: Promise<void> | undefined;
  let askAgain = false;
  let closed = false;

  const ask = async () => {
    // Unanswered (the table not there yet, the connection gone): the poll finds the messages.
    const topics = await storedSince().catch(() => []);
    asking = undefined;
    if (closed) return;
    topics.forEach(onTopic);
    const again = askAgain;
    askAgain = false;
    if (next) return;
    if (again) next = setTimeout(look, 0);
    else if (step < LOOKS_MS.length) next = setTimeout(look, LOOKS_MS[step++]);
  };
  const look = () => {
    next = undefined;
    if (asking) askAgain = true;
    else asking = ask();
  };
  const written = (_event: string, name: string | null) => {
    // A platform that does not name the file reports every file of the folder: the question sorts them out.
    if (name !== null && name !== wal) return;
    // The first look after a write is due already: a steady stream of writes must not keep pushing it back.
    if (next && step === 1) return;
    clearTimeout(next);
    step = 0;
    next = setTimeout(look, LOOKS_MS[step++]);
  };

  let watcher: FSWatcher;
  try {
    // The folder, not the file: the WAL may not exist yet, and SQLite removes it when its last connection closes.
    watcher = watch(dirname(file), written);
  } catch {
    // Out of inotify watches, or a file system without notifications: consumers poll as before.
    return undefined;
  }
  const stop = () => {
    closed = true;
    watcher.close();
    clearTimeout(next);
  };
  // The folder went away or the watch broke: polling takes over until the storage watches again.
  watcher.on('error', (error) => {
    stop();
    onLost(error);
  });
  return async () => {
    stop();
    await asking;
  };
}

/** What Tidings asks of the ORM's knex client: a connection outside its pool, and a statement on it. */
interface RawClient {
  acquireRawConnection(): Promise<unknown>;
  destroyRawConnection(connection: unknown): Promise<unknown>;
  query(connection: unknown, query: { sql: string; bindings: unknown[] }): Promise<{ response?: unknown }>;
}

type Rows = Record<string, unknown>[];
const firstValue = (rows: unknown) => Object.values((rows as Rows | undefined)?.[0] ?? {})[0];

/**
 * Learns of messages stored into the ORM's database by any process (`watchStores`). New messages are the rows past
 * the highest `seq` seen (AUTOINCREMENT: a `seq` is never reused, and SQLite's one writer at a time commits them in
 * order), asked on a connection of its own, since the ORM's may be held by a transaction for as long as a handler
 * runs. Nothing to watch for a database in memory, which no other process can write. Resolves to the closer.
 */
export async function listenForStores(orm: MikroORM, onTopic: (topic: string) => void, onLost?: (error: unknown) => void): Promise<() => Promise<unknown>> {
  const connection = orm.em.getConnection();
  const file = String(firstValue(await connection.execute(`SELECT file FROM pragma_database_list WHERE name = 'main'`)) ?? '');
  const mode = String(firstValue(await connection.execute('PRAGMA journal_mode'))).toLowerCase();
  if (file === '' || mode !== 'wal') return async () => undefined;

  const client = (connection as unknown as { getKnex(): { client: RawClient } }).getKnex().client;
  const raw = await client.acquireRawConnection();
  const query = async (sql: string, bindings: unknown[] = []) => (await client.query(raw, { sql, bindings })).response as Rows;
  let seen = Number(firstValue(await query('SELECT MAX(seq) FROM tidings_message').catch(() => [])) ?? 0);
  // NOT INDEXED: the range of the primary key, not a scan of a (topic, …) index that GROUP BY would pick.
  const storedSince = async () => {
    const rows = await query('SELECT topic, MAX(seq) AS seq FROM tidings_message NOT INDEXED WHERE seq > ? GROUP BY topic', [seen]);
    for (const r of rows) seen = Math.max(seen, Number(r.seq));
    return rows.map((r) => String(r.topic));
  };
  const stop = watchStores(file, storedSince, onTopic, onLost);
  if (!stop) await client.destroyRawConnection(raw);
  return async () => {
    if (!stop) return;
    await stop();
    await client.destroyRawConnection(raw);
  };
}
