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

// Both SQLite drivers: better-sqlite3 (the default: synchronous statements, group commits) and sqlite3.
for (const driver of ['better-sqlite3', 'sqlite3'] as const) {
  // SQLite in memory: one database per key, so two handles on a key share one instance; closed, it keeps nothing.
  const inMemory = new Map<string, MikroOrmStorage>();
  describeStorageAdapter(
    `sqlite :memory: (${driver})`,
    ({ key }) => {
      if (!inMemory.has(key)) inMemory.set(key, sqliteStorage({ file: ':memory:', driver }));
      return inMemory.get(key)!;
    },
    { persistent: false },
  );

  // A SQLite file: every handle is its own connection, so two handles are two brokers racing on one file.
  describeStorageAdapter(`sqlite file (${driver})`, ({ key }) => sqliteStorage({ file: join(dir, `${driver}-${key.replace(/\W/g, '_')}.db`), driver }));

  describeIdempotencyStore(`sqlite file (${driver})`, async () => {
    const storage = sqliteStorage({ file: join(dir, `idem-${driver}-${Math.random().toString(36).slice(2)}.db`), driver });
    await storage.open();
    return storage.idempotencyStore();
  });
}

// PostgreSQL: one database per key on the suite's embedded server, a connection pool per handle.
const databases = new Map<string, Promise<string>>();
describeStorageAdapter('postgresql', async ({ key }) => {
  if (!databases.has(key)) databases.set(key, freshPostgresDatabase('conf'));
  return postgresStorage({ url: await databases.get(key)! });
});

describeIdempotencyStore('postgresql', async () => {
  const storage = postgresStorage({ url: await freshPostgresDatabase('idem') });
  await storage.open();
  return storage.idempotencyStore();
});
