import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { subscribe } from '../support/subscribed.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-watch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
/** An opened storage on `file`, closed after the test. */
async function storageOn(file: string) {
  const storage = sqliteStorage({ file });
  open.push(storage);
  await storage.open();
  await subscribe(storage, 'jobs', 'mail');
  return storage;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** File watches this process holds (fs.watch handles). */
const watches = () => process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;
/** The count of file watches once it stops moving (a closed watch's handle goes away a moment later). */
async function settledWatches(): Promise<number> {
  let last = -1;
  while (watches() !== last) {
    last = watches();
    await sleep(50);
  }
  return last;
}
/** Waits up to 5 s for the count of file watches to become `n`, then returns it. */
async function watchesBecome(n: number): Promise<number> {
  for (let i = 0; i < 100 && watches() !== n; i++) await sleep(50);
  return watches();
}

/** Resolves once `calls()` passes `n`, rejects after `ms`. */
async function until(calls: () => number, n: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (calls() < n) {
    if (Date.now() > deadline) throw new Error(`not woken within ${ms} ms`);
    await sleep(2);
  }
}

// Two storages on one file are two connections, as two processes are: the watch cannot tell them apart.
describe("the SQLite storage's watch", () => {
  it('wakes the watchers of the topic another connection stored into, and no other topic', async () => {
    const file = join(dir, 'topics.db');
    const watching = await storageOn(file);
    const storing = await storageOn(file);
    const woken = { jobs: 0, mail: 0 };
    const unwatch = [watching.watch('jobs', () => woken.jobs++), watching.watch('mail', () => woken.mail++)];
    await sleep(50);

    await storing.store({ topic: 'jobs', state: 'acked', messages: [{ id: 'j1', body: '{}', availableAt: 0 }], now: 0 });
    await until(() => woken.jobs, 1, 1_000);
    await sleep(100);
    expect(woken).toEqual({ jobs: 1, mail: 0 });
    unwatch.forEach((stop) => stop());
  });

  it('wakes no one for writes that store nothing: leases and acks', async () => {
    const file = join(dir, 'settle.db');
    const watching = await storageOn(file);
    const storing = await storageOn(file);
    await storing.store({ topic: 'jobs', state: 'acked', messages: [{ id: 'j1', body: '{}', availableAt: 0 }], now: 0 });
    let woken = 0;
    watching.watch('jobs', () => woken++);
    await sleep(50);

    const leased = await storing.lease({
      topic: 'jobs',
      subscription: 'default',
      from: 'acked',
      to: 'leased',
      limit: 10,
      now: 0,
      leaseUntil: 60_000,
      leaseToken: 't1',
      remove: false,
    });
    await storing.settle({ topic: 'jobs', subscription: 'default', from: 'leased', to: 'deleted', items: leased, remove: true, now: 0 });
    expect(leased).toHaveLength(1);
    // Longer than the watch keeps looking after a write.
    await sleep(1_500);
    expect(woken).toBe(0);
  });

  it('holds a file watch only while open: close releases it', async () => {
    const before = await settledWatches();
    const storage = sqliteStorage({ file: join(dir, 'close.db') });
    await storage.open();
    storage.watch('jobs', () => undefined);
    expect(await watchesBecome(before + 1)).toBe(before + 1);
    await storage.close();
    expect(await watchesBecome(before)).toBe(before);
  });

  it('watches nothing in memory, where no other process can store', async () => {
    const before = await settledWatches();
    const storage = await storageOn(':memory:');
    storage.watch('jobs', () => undefined);
    await sleep(200);
    expect(watches()).toBe(before);
  });
});
