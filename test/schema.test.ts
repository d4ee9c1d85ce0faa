import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sqliteStorage } from '@tidings/adapter-sqlite';

const dir = mkdtempSync(join(tmpdir(), 'tidings-schema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tableDefinition(file: string): unknown {
  const db = new Database(file, { readonly: true });
  const row = db.prepare(`SELECT rootpage, sql FROM sqlite_master WHERE name = 'tidings_message'`).get();
  db.close();
  return row;
}

describe('opening a database that already has the current schema', () => {
  it('runs no DDL, so a second process opening it never rebuilds the table under a writer', async () => {
    const file = join(dir, 'reopen.db');
    const writer = sqliteStorage({ file });
    await writer.open();
    await writer.declareSubscription({ topic: 't', name: 'default', maxDeliveries: 5, declaredAt: 0 });
    const before = tableDefinition(file);
    const stores: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      stores.push(writer.store({ topic: 't', state: 'acked', messages: [{ id: `m-${i}`, body: '{}', availableAt: 0 }], now: 0 }));
      if (i === 50) {
        const reader = sqliteStorage({ file });
        stores.push(reader.open().then(() => reader.close()));
      }
    }
    await Promise.all(stores);
    expect(tableDefinition(file)).toEqual(before);
    expect((await writer.counts('t')).t?.default).toEqual({ acked: 200 });
    await writer.close();
  });
});
