import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoreRequest } from '@tidings/core/adapter';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { betterSqliteStorage, type BetterSqliteStorage } from '../src/index.js';

const request = (topic: string, id: string): StoreRequest => ({
  topic,
  state: 'acked',
  messages: [{ id, body: '{}', availableAt: 0 }],
  now: 0,
});

describe('better-sqlite3 example: one connection, one transaction at a time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-custom-adapter-'));
  let opened: BetterSqliteStorage[] = [];
  // Topic `t` has one subscription, so each store keeps one copy.
  const open = async (name: string) => {
    const storage = betterSqliteStorage({ file: join(dir, `${name}.db`) });
    opened.push(storage);
    await storage.open();
    await storage.declareSubscription({ topic: 't', name: 'default', maxDeliveries: 5, declaredAt: 0 });
    return storage;
  };
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('queues a call made without the handle behind the running transaction', async () => {
    const storage = await open('queue');
    const order: string[] = [];
    const tx = storage.transaction(async (handle) => {
      await storage.store(request('t', 'inside'), handle);
      await new Promise((r) => setTimeout(r, 50));
      order.push('committed');
    });
    const outside = storage.counts('t').then((c) => order.push(`counted ${c.t!.default!.acked}`));
    await Promise.all([tx, outside]);
    expect(order).toEqual(['committed', 'counted 1']);
  });

  it('refuses at once, instead of waiting for itself, a call from inside a transaction that forgot its handle', async () => {
    const storage = await open('forgot');
    const error = await storage.transaction(() => storage.store(request('t', 'a'))).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TRANSACTION_HANDLE_REQUIRED' });
    expect(await storage.counts('t')).toEqual({ t: {} });
  });

  it('lets a second connection in this process wait for the first one to commit, without blocking the event loop', async () => {
    const [a, b] = [await open('shared'), betterSqliteStorage({ file: join(dir, 'shared.db') })];
    opened.push(b);
    await b.open();
    const tx = a.transaction(async (handle) => {
      await a.store(request('t', 'from-a'), handle);
      await new Promise((r) => setTimeout(r, 100));
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(await b.store(request('t', 'from-b'))).toEqual([{ id: 'from-b', duplicate: false }]);
    await tx;
    expect(await b.counts('t')).toEqual({ t: { default: { acked: 2 } } });
  });

  it('refuses a handle once its transaction has ended', async () => {
    const storage = await open('stale');
    const handle = await storage.transaction(async (h) => h);
    await expect(storage.store(request('t', 'late'), handle)).rejects.toThrow(/ended/);
  });
});
