import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from '../support/databases.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const child = fileURLToPath(new URL('./consumer.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tidings-pause-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const now = () => performance.timeOrigin + performance.now();

/** The consumer process, with what it reported: messages handled and its state changes, each with its time. */
async function consumerProcess(target: string, topic: string) {
  const proc = spawn(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', child, target, topic], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const handled = new Map<number, number>();
  const states: Array<{ state: string; at: number }> = [];
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const [kind, value, at] = line.split(' ');
    if (kind === 'ready') ready();
    else if (kind === 'handled') handled.set(Number(value), Number(at));
    else if (kind === 'state') states.push({ state: value!, at: Number(at) });
  });
  await Promise.race([isReady, exited.then((code) => Promise.reject(new Error(`consumer exited ${code} before it was ready: ${stderr}`)))]);
  return {
    handled,
    states,
    async until(what: string, check: () => boolean, ms: number): Promise<void> {
      const start = Date.now();
      while (!check()) {
        if (Date.now() - start > ms) throw new Error(`${what} not seen within ${ms} ms; consumer said: ${JSON.stringify(states)} ${stderr}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      proc.stdin.end();
      await exited;
    },
  };
}

const backends: Array<[string, () => Promise<{ target: string; storage: () => StorageAdapter<any> }>]> = [
  [
    'a SQLite file',
    async () => {
      const file = join(dir, `pause-${Date.now()}.db`);
      return { target: file, storage: () => sqliteStorage({ file }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await freshPostgresDatabase('pause');
      return { target: url, storage: () => postgresStorage({ url }) };
    },
  ],
];

describe.each(backends)('a pause made in one process, on %s', (_, open) => {
  it('stops leasing in a consumer in another process within a second, and resume lets it go on', async () => {
    const { target, storage } = await open();
    const tidings = await Tidings.create({ storage: storage(), purgeIntervalMs: 0, logger: silentLogger });
    const name = `orders.${Date.now()}`;
    const topic = tidings.topic<number>(name, { semantic: 'at-least-once' });
    await topic.ready();
    const consumer = await consumerProcess(target, name);
    try {
      await topic.send(0);
      await consumer.until('message 0 handled', () => consumer.handled.has(0), 10_000);

      const pausedAt = now();
      await topic.subscription('default').pause();
      await consumer.until('the consumer paused', () => consumer.states.some((s) => s.state === 'paused'), 5_000);
      const tookMs = consumer.states.find((s) => s.state === 'paused')!.at - pausedAt;
      console.log(`pause seen by the other process after ${tookMs.toFixed(0)} ms`);
      expect(tookMs).toBeLessThan(1_000);

      // Sent while paused: stored, not handled, however long the wait.
      await topic.sendMany([1, 2, 3]);
      await new Promise((r) => setTimeout(r, 1_200));
      expect([...consumer.handled.keys()]).toEqual([0]);
      expect((await topic.subscription('default').counts()).acked).toBe(3);

      await topic.subscription('default').resume();
      await consumer.until('the messages sent while paused', () => consumer.handled.size === 4, 5_000);
      await consumer.until('the consumer to say it runs again', () => consumer.states.at(-1)!.state !== 'paused', 2_000);
    } finally {
      await consumer.stop();
      await tidings.close();
    }
  });
});
