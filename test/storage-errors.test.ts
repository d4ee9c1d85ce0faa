import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { MikroORM } from '@mikro-orm/sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidOptionsError, StorageError, Tidings, TidingsError } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { SCHEMA_VERSION, SchemaError } from '@tidings/adapter-mikro-orm';
import { freshPostgresDatabase } from './support/databases.js';
import { subscribe } from './support/subscribed.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tidings-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, `${name}-${Math.random().toString(36).slice(2)}.db`);
const store = (topic: string, id: string) => ({
  topic,
  lifecycle: 'at-least-once' as const,
  state: 'acked' as const,
  messages: [{ id, body: '{}', availableAt: 0 }],
  now: 0,
});

describe('database errors become typed Tidings errors', () => {
  it('fails fast on an unreachable PostgreSQL URL, showing the URL without its password', async () => {
    const started = Date.now();
    const error = await Tidings.create({ storage: postgresStorage({ url: 'postgres://app:s3cret@127.0.0.1:9/orders', connectTimeoutMs: 1_000 }) }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(StorageError);
    expect(error.code).toBe('CONNECTION_LOST');
    expect(error.message).toContain('postgres://app:***@127.0.0.1:9/orders');
    expect(error.message).not.toContain('s3cret');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('refuses a PostgreSQL database that does not exist instead of creating it', async () => {
    const base = (await freshPostgresDatabase('exists')).replace(/\/[^/]*$/, '');
    const error = await Tidings.create({ storage: postgresStorage({ url: `${base}/no_such_database` }) }).catch((e) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(error.message).toMatch(/no_such_database.*does not exist/);
    const admin = new pg.Client({ connectionString: `${base}/postgres` });
    await admin.connect();
    const { rows } = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'no_such_database'`);
    await admin.end();
    expect(rows).toEqual([]);
  });

  it.each([['not a url'], ['mysql://u:p@h/db'], ['']])('refuses the malformed URL %j with INVALID_OPTIONS', (url) => {
    expect(() => postgresStorage({ url })).toThrow(InvalidOptionsError);
  });

  it('refuses a database whose Tidings schema is newer than this code', async () => {
    const path = file('newer');
    const first = sqliteStorage({ file: path });
    await first.open();
    await first.close();
    const db = new Database(path);
    db.prepare(`UPDATE tidings_meta SET value = '99' WHERE key = 'schema_version'`).run();
    db.close();
    const error = await Tidings.create({ storage: sqliteStorage({ file: path }) }).catch((e) => e);
    expect(error).toBeInstanceOf(SchemaError);
    expect(error.code).toBe('SCHEMA_MISMATCH');
    expect(error.message).toMatch(new RegExp(`version 99.*understands \\(${SCHEMA_VERSION}\\)`));
  });

  it('refuses an application MikroORM that does not include tidingsEntities, saying how to fix it', async () => {
    const orm = await MikroORM.init({ dbName: ':memory:', entities: [], discovery: { warnWhenNoEntities: false }, allowGlobalContext: true });
    const error = await Tidings.create({ storage: sqliteStorage({ orm }) }).catch((e) => e);
    expect(error).toBeInstanceOf(SchemaError);
    expect(error.message).toContain('add tidingsEntities');
    await orm.close(true);
  });

  it('retries a write while another process holds the SQLite lock, then reports STORAGE_BUSY', async () => {
    const path = file('busy');
    const storage = sqliteStorage({ file: path, busyTimeoutMs: 20 });
    await storage.open();
    // POSIX locks are per process, so the lock holder must be another process.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const D = require('better-sqlite3'); const db = new D(${JSON.stringify(path)}); db.exec('BEGIN IMMEDIATE'); console.log('locked'); process.stdin.on('end', () => { db.exec('ROLLBACK'); db.close(); process.exit(0); }); process.stdin.resume();`,
      ],
      { cwd: root },
    );
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    const error = await storage.store(store('busy', 'a')).catch((e) => e);
    expect(error).toBeInstanceOf(TidingsError);
    expect(error.code).toBe('STORAGE_BUSY');
    expect(error.message).toContain('busyTimeoutMs');
    // Once the lock is released, the same write goes through: nothing was half-stored.
    holder.stdin.end();
    await new Promise((resolve) => holder.once('exit', resolve));
    expect(await storage.store(store('busy', 'a'))).toEqual([{ id: 'a', duplicate: false }]);
    await storage.close();
  });

  it('reports CONNECTION_LOST when PostgreSQL drops the connection, never an ack for an unstored message, and recovers', async () => {
    const url = await freshPostgresDatabase('dropped');
    const storage = postgresStorage({ url, poolSize: 1 });
    await storage.open();
    await subscribe(storage, 'drop');
    expect(await storage.store(store('drop', 'before'))).toEqual([{ id: 'before', duplicate: false }]);
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const kill = () => admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
    // The connection dies in the middle of a transaction that already stored one message.
    const error = await storage
      .transaction(async (tx) => {
        await storage.store(store('drop', 'during'), tx);
        await kill();
        await storage.store(store('drop', 'during-2'), tx);
      })
      .catch((e) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe('CONNECTION_LOST');
    const stored = await admin.query(`SELECT id FROM tidings_message WHERE topic = 'drop'`);
    expect(stored.rows.map((r) => r.id)).toEqual(['before']);
    // The pool replaces the dead connection; the retried write is stored once.
    expect((await storage.store(store('drop', 'during')))[0]!.id).toBe('during');
    const rows = await admin.query(`SELECT id FROM tidings_message WHERE topic = 'drop' ORDER BY seq`);
    expect(rows.rows.map((r) => r.id)).toEqual(['before', 'during']);
    await admin.end();
    await storage.close();
  });
});
