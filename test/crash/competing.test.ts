import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshPostgresDatabase } from '../support/databases.js';
import { prepareDatabase, readEffects, startWorker } from '@tidings/cli';

const dir = mkdtempSync(join(tmpdir(), 'tidings-competing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BACKENDS: Array<[string, () => Promise<string>]> = [
  ['one SQLite file', async () => join(dir, 'competing.db')],
  ['one PostgreSQL database', () => freshPostgresDatabase('competing')],
];

describe.each(BACKENDS)('three consumer processes competing for one topic on %s', (_name, database) => {
  it('hand every message to exactly one of them: no message is leased twice at once', { timeout: 60_000 }, async () => {
    const db = await database();
    await prepareDatabase({ db });
    const common = ['--db', db, '--topic', 'competing', '--config', 'at-least-once', '--lease-ms', '30000'];
    const messages = 3000;
    const producer = startWorker([...common, '--role', 'producer', '--to', String(messages)], () => {});
    expect(await producer.exited).toBe(0);
    // A long lease: any second delivery could only come from two consumers leasing one message at once.
    const consumers = [1, 2, 3].map((n) => startWorker([...common, '--role', 'consumer', '--incarnation', String(n), '--drain'], () => {}));
    expect(await Promise.all(consumers.map((c) => c.exited))).toEqual([0, 0, 0]);
    const effects = await readEffects({ db }, 'competing');
    expect(effects).toHaveLength(messages);
    expect(new Set(effects.map((e) => e.key)).size).toBe(messages);
    const perConsumer = [1, 2, 3].map((n) => effects.filter((e) => e.incarnation === n).length);
    // Competition really happened: at least two processes took a share (one may start late and find little left).
    expect(perConsumer.filter((count) => count > 0).length, `per consumer: ${perConsumer.join(', ')}`).toBeGreaterThanOrEqual(2);
  });
});
