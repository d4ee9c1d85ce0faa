import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { describeIdempotencyStore, describeStorageAdapter } from '@tidings/conformance';
import { betterSqliteStorage, type BetterSqliteStorage } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-custom-adapter-'));

// One file per key; every call opens its own connection, so two handles on a key are two brokers racing on one database.
describeStorageAdapter('better-sqlite3 (example)', ({ key }) => betterSqliteStorage({ file: join(dir, `${key}.db`) }));

// The idempotency store lives in its storage's connection; the storages are closed once the suite is done.
const storages: BetterSqliteStorage[] = [];
describeIdempotencyStore('better-sqlite3 (example)', async () => {
  const storage = betterSqliteStorage({ file: join(dir, `idempotency-${storages.length}.db`) });
  storages.push(storage);
  await storage.open();
  return storage.idempotencyStore();
});

afterAll(async () => {
  await Promise.all(storages.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});
