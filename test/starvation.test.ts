import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-starvation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const backends: Array<[string, () => Promise<StorageAdapter<any>>]> = [
  ['memory', async () => memoryStorage()],
  ['SQLite file', async () => sqliteStorage({ file: join(dir, `starve-${Math.random().toString(36).slice(2)}.db`) })],
  ['PostgreSQL', async () => postgresStorage({ url: await freshPostgresDatabase('starve') })],
];

/** Keys whose messages are handled normally, each sent after every message of the failing and the hot key. */
const KEYS = 50;
const PER_KEY = 5;
/** What the test promises: every one of those keys is done this long after its last message was sent. */
const BOUND_MS = 10_000;

describe.each(backends)('no key starves another on %s', (_name, open) => {
  it(
    `handles 50 keys' messages within ${BOUND_MS / 1000} s while one key's first message always fails and another key has 500 waiting ahead of them`,
    { timeout: 60_000 },
    async () => {
      const tidings = await Tidings.create({ storage: await open(), purgeIntervalMs: 0, logger: silentLogger });
      try {
        const topic = tidings.topic<{ key: string; n: number }>(`orders.${process.pid}`, {
          semantic: 'at-least-once',
          ordering: 'key',
          maxDeliveries: 1_000_000,
          backoff: { initialMs: 5, maxMs: 20, jitter: false },
        });
        const handled = new Map<string, number[]>();
        let failures = 0;
        const consumer = topic.consume(
          async (m) => {
            if (m.payload.key === 'poison') {
              failures++;
              throw new Error('always fails');
            }
            await new Promise((r) => setTimeout(r, 1));
            handled.set(m.payload.key, [...(handled.get(m.payload.key) ?? []), m.payload.n]);
          },
          { concurrency: 10, batchSize: 20, pollMs: 20 },
        );
        const send = (key: string, count: number) =>
          topic.sendMany(
            Array.from({ length: count }, (_, n) => ({ key, n })),
            { key: (p) => p.key },
          );
        // Stored first, so both lie ahead of every other key in store order.
        await send('poison', 200);
        await send('hot', 500);
        const sentAt = Date.now();
        for (let k = 0; k < KEYS; k++) await send(`k${k}`, PER_KEY);
        const cold = Array.from({ length: KEYS }, (_, k) => `k${k}`);
        const done = () => cold.every((k) => handled.get(k)?.length === PER_KEY);
        while (!done() && Date.now() - sentAt < BOUND_MS) await new Promise((r) => setTimeout(r, 10));
        const took = Date.now() - sentAt;
        const late = cold.filter((k) => handled.get(k)?.length !== PER_KEY);
        expect(late, `keys not done within ${BOUND_MS} ms`).toEqual([]);
        // Each key in order, the failing key's head tried over and over, and nothing behind it handled.
        for (const k of cold) expect(handled.get(k)).toEqual([0, 1, 2, 3, 4]);
        expect(failures).toBeGreaterThan(1);
        expect(handled.has('poison')).toBe(false);
        console.log(
          `50 keys done in ${took} ms; the hot key had ${handled.get('hot')?.length ?? 0} of 500 handled by then; the failing head failed ${failures} times`,
        );
        await consumer.stop({ graceMs: 1_000 });
      } finally {
        await tidings.close({ graceMs: 1_000 });
      }
    },
  );
});
