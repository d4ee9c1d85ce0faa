import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { describeIdempotencyStore, describeStorageAdapter } from '@tidings/conformance';
import { sqliteStorage, type MikroOrmStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from '../support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-conformance-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// SQLite in memory: one database per key, so two handles on a key share one instance.
const inMemory = new Map<string, MikroOrmStorage>();
describeStorageAdapter('sqlite :memory:', ({ key }) => {
  if (!inMemory.has(key)) inMemory.set(key, sqliteStorage({ file: ':memory:' }));
  return inMemory.get(key)!;
});

// A SQLite file: every handle is its own connection, so two handles are two brokers racing on one file.
describeStorageAdapter('sqlite file', ({ key }) => sqliteStorage({ file: join(dir, `${key.replace(/\W/g, '_')}.db`) }));

// PostgreSQL: one database per key on the suite's embedded server, a connection pool per handle.
const databases = new Map<string, Promise<string>>();
describeStorageAdapter('postgresql', async ({ key }) => {
  if (!databases.has(key)) databases.set(key, freshPostgresDatabase('conf'));
  return postgresStorage({ url: await databases.get(key)! });
});

describeIdempotencyStore('sqlite file', async () => {
  const storage = sqliteStorage({ file: join(dir, `idem-${Math.random().toString(36).slice(2)}.db`) });
  await storage.open();
  return storage.idempotencyStore();
});

describeIdempotencyStore('postgresql', async () => {
  const storage = postgresStorage({ url: await freshPostgresDatabase('idem') });
  await storage.open();
  return storage.idempotencyStore();
});
