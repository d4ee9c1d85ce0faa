import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings } from '@tidings/core';
import type { StoreRequest } from '@tidings/core/adapter';
import { sqliteStorage, type MikroOrmStorage } from '@tidings/adapter-sqlite';
import { subscribe } from './support/subscribed.js';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-group-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Statement = { run(...p: unknown[]): unknown; all(...p: unknown[]): unknown };
type Raw = { prepare(sql: string): Statement };

/** Counts the statements run on the storage's one better-sqlite3 connection, by their text. */
async function spy(storage: MikroOrmStorage): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const pool = (
    storage.orm.em.getConnection() as unknown as { getKnex(): { client: { acquireConnection(): Promise<Raw>; releaseConnection(c: Raw): unknown } } }
  ).getKnex().client;
  const db = await pool.acquireConnection();
  const prepare = db.prepare.bind(db);
  db.prepare = (sql: string) => {
    const statement = prepare(sql);
    // Short statements (BEGIN, COMMIT, PRAGMA …) by their whole text, the others by their first words.
    const key = sql.length < 40 ? sql.trim() : sql.trim().split(/\s+/).slice(0, 3).join(' ');
    const count = () => seen.set(key, (seen.get(key) ?? 0) + 1);
    const run = statement.run.bind(statement);
    const all = statement.all.bind(statement);
    statement.run = (...p: unknown[]) => (count(), run(...p));
    statement.all = (...p: unknown[]) => (count(), all(...p));
    return statement;
  };
  await pool.releaseConnection(db);
  return seen;
}

const request = (topic: string, id: string, body: unknown = '{}'): StoreRequest => ({
  topic,
  state: 'acked',
  messages: [{ id, body: body as string, availableAt: 0 }],
  now: 1,
});

describe('group commit on SQLite (better-sqlite3)', () => {
  it('writes 50 concurrent sends in one transaction: one commit, every send acked and stored', async () => {
    const storage = sqliteStorage({ file: join(dir, 'sends.db') });
    await storage.open();
    // Statements are prepared once per connection: the spy goes in before the first write.
    const seen = await spy(storage);
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    const topic = tidings.topic<number>('sends', { semantic: 'at-least-once' });
    await topic.send(0);
    const commits = seen.get('COMMIT')!;
    const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => topic.send(i + 1)));
    expect(acks.every((a) => !a.duplicate)).toBe(true);
    expect(seen.get('COMMIT')! - commits).toBe(1);
    expect((await tidings.counts('sends')).sends).toEqual({ acked: 51 });
    await tidings.close();
  });

  it('rolls back only the write that failed; the others in its group commit', async () => {
    const storage = sqliteStorage({ file: join(dir, 'partial.db') });
    await storage.open();
    await subscribe(storage, 'p');
    const seen = await spy(storage);
    const results = await Promise.allSettled([storage.store(request('p', 'a')), storage.store(request('p', 'b', null)), storage.store(request('p', 'c'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'STORAGE_ERROR' });
    expect(seen.get('COMMIT')).toBe(1);
    expect((await storage.peek({ topic: 'p', subscription: 'default', state: 'acked', limit: 10 })).map((m) => m.id)).toEqual(['a', 'c']);
    await storage.close();
  });

  it('fsyncs a group only when a promise depends on it: a lease alone commits with synchronous=NORMAL, a send with FULL', async () => {
    const storage = sqliteStorage({ file: join(dir, 'durable.db') });
    await storage.open();
    await subscribe(storage, 'd');
    const seen = await spy(storage);
    await storage.store(request('d', 'y'));
    expect(seen.get('PRAGMA synchronous = NORMAL')).toBeUndefined();
    await storage.lease({
      topic: 'd',
      subscription: 'default',
      from: 'acked',
      to: 'leased',
      limit: 10,
      now: 1,
      leaseUntil: 100,
      leaseToken: 't',
      remove: false,
    });
    expect(seen.get('PRAGMA synchronous = NORMAL')).toBe(1);
    expect(seen.get('PRAGMA synchronous = FULL')).toBe(1);
    // At-most-once's lease deletes for good: durable.
    await storage.store(request('d', 'z'));
    await storage.lease({
      topic: 'd',
      subscription: 'default',
      from: 'acked',
      to: 'deleted',
      limit: 10,
      now: 1,
      leaseUntil: 100,
      leaseToken: 'u',
      remove: true,
    });
    expect(seen.get('PRAGMA synchronous = NORMAL')).toBe(1);
    const [{ synchronous }] = (await storage.orm.em.getConnection().execute('PRAGMA synchronous')) as Array<{ synchronous: number }>;
    expect(synchronous).toBe(2);
    await storage.close();
  });

  it('commits the writes it accepted before a close, and refuses those after', async () => {
    const file = join(dir, 'closing.db');
    const storage = sqliteStorage({ file });
    await storage.open();
    await subscribe(storage, 'c');
    const accepted = [storage.store(request('c', 'a')), storage.store(request('c', 'b'))];
    await storage.close();
    expect((await Promise.all(accepted)).map((r) => r[0]!.duplicate)).toEqual([false, false]);
    await expect(storage.store(request('c', 'late'))).rejects.toMatchObject({ code: 'CLOSED' });
    const again = sqliteStorage({ file });
    await again.open();
    expect((await again.peek({ topic: 'c', subscription: 'default', state: 'acked', limit: 10 })).map((m) => m.id)).toEqual(['a', 'b']);
    await again.close();
  });

  it('on sqlite3 writes each send in its own statement, no group', async () => {
    const storage = sqliteStorage({ file: join(dir, 'sqlite3.db'), driver: 'sqlite3' });
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    const topic = tidings.topic<number>('s3', { semantic: 'at-least-once' });
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => topic.send(i)));
    expect(acks).toHaveLength(20);
    expect((storage.orm.em.getConnection() as unknown as { getKnex(): { client: { driverName: string } } }).getKnex().client.driverName).toBe('sqlite3');
    expect((await tidings.counts('s3')).s3).toEqual({ acked: 20 });
    await tidings.close();
  });
});

describe('group commit on PostgreSQL: the stores of one turn in one statement', () => {
  /** Counts the store statements the storage runs. */
  function countStores(storage: MikroOrmStorage): { stores: number } {
    const counted = { stores: 0 };
    const connection = (storage as unknown as { connection: { exec(sql: string, params: unknown[], tx: unknown, where: string): Promise<unknown> } })
      .connection;
    const exec = connection.exec.bind(connection);
    connection.exec = (sql, params, tx, where) => {
      if (where === 'store') counted.stores++;
      return exec(sql, params, tx, where);
    };
    return counted;
  }

  it('stores 50 concurrent sends of a topic with one statement, each acked with its own answer, an id sent twice stored once', async () => {
    const storage = postgresStorage({ url: await freshPostgresDatabase('group') });
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    try {
      const topic = tidings.topic<number>('sends', { semantic: 'exactly-once' });
      const other = tidings.topic<number>('others', { semantic: 'at-least-once' });
      await topic.send(0, { id: 'warm-up' });
      await other.send(0);
      const counted = countStores(storage);
      const acks = await Promise.all([
        ...Array.from({ length: 50 }, (_, i) => topic.send(i, { id: `s-${i}` })),
        topic.send(99, { id: 's-7' }),
        other.send(1),
        other.send(2),
      ]);
      expect(counted.stores).toBe(2);
      expect(acks.slice(0, 50).map((a) => a)).toEqual(Array.from({ length: 50 }, (_, i) => ({ id: `s-${i}`, duplicate: false })));
      expect(acks[50]).toEqual({ id: 's-7', duplicate: true });
      expect((await tidings.counts()).sends).toEqual({ acked: 51 });
      expect((await tidings.counts()).others).toEqual({ acked: 3 });
    } finally {
      await tidings.close();
    }
  });

  it('writes the stores it accepted before a close', async () => {
    const url = await freshPostgresDatabase('group_close');
    const storage = postgresStorage({ url });
    await storage.open();
    await subscribe(storage, 'c');
    const accepted = [storage.store(request('c', 'a')), storage.store(request('c', 'b'))];
    await storage.close();
    expect((await Promise.all(accepted)).map((r) => r[0]!.duplicate)).toEqual([false, false]);
    const again = postgresStorage({ url });
    await again.open();
    expect((await again.peek({ topic: 'c', subscription: 'default', state: 'acked', limit: 10 })).map((m) => m.id)).toEqual(['a', 'b']);
    await again.close();
  });
});
