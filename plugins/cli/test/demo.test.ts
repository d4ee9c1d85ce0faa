import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { DemoRow } from '../src/demo.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tidings-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let runs = 0;
/** Runs `tidings demo` from source in its own folder; resolves with the exit code and output. */
function demo(...args: string[]) {
  return promisify(execFile)(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', cli, 'demo', '--dir', join(dir, `run-${++runs}`), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('tidings demo', () => {
  it('prints a JSON row per semantic, every guarantee held, under the default faults', { timeout: 60_000 }, async () => {
    const r = await demo('--json', '--seed', '7', '--messages', '400');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as DemoRow[];
    expect(rows.map((x) => x.semantic)).toEqual(['at-most-once', 'at-least-once', 'exactly-once/broker', 'exactly-once/end-to-end', 'exactly-once, ordered']);
    for (const row of rows) {
      expect(row).toMatchObject({ sent: 400, held: true });
      expect(Object.keys(row)).toEqual(expect.arrayContaining(['semantic', 'sent', 'delivered', 'lost', 'duplicated', 'deadLettered', 'messagesPerSecond']));
    }
    const [, alo, broker, e2e] = rows;
    // Lost acks make at-least-once producers resend under fresh ids: duplicates that exactly-once removes.
    expect(alo!.stored).toBeGreaterThan(400);
    expect(alo!.duplicated).toBeGreaterThan(0);
    expect(broker!.duplicated + e2e!.duplicated + e2e!.lost).toBe(0);
    expect(e2e!.delivered).toBe(400);
    // Two subscriptions each get every message once, and each key in order, under the same faults.
    expect(rows[4]).toMatchObject({ lifecycle: 'exactly-once/end-to-end', delivered: 800, lost: 0, duplicated: 0, outOfOrder: 0 });
  });

  it('replays the producer faults of a seed: the same acks and stores every time', { timeout: 90_000 }, async () => {
    const [a, b] = await Promise.all([demo('--json', '--seed', '42', '--messages', '300'), demo('--json', '--seed', '42', '--messages', '300')]);
    const pick = (out: string) => (JSON.parse(out) as DemoRow[]).map((x) => [x.semantic, x.acked, x.stored]);
    expect(pick(a.stdout)).toEqual(pick(b.stdout));
  });

  it('prints the table and one verdict line per semantic, with no faults at all', { timeout: 60_000 }, async () => {
    const r = await demo('--faults', 'none', '--seed', '1', '--messages', '200');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/semantic\s+sent\s+acked\s+stored\s+delivered\s+lost\s+duplicated\s+dead-lettered\s+out of order\s+msg\/s/);
    expect(r.stdout.match(/✓ held/g)).toHaveLength(5);
    expect(r.stdout).toMatch(/exactly-once, ordered\s+200\s+200\s+200\s+400\s+0\s+0\s+0\s+0/);
    expect(r.stdout).toMatch(/at-least-once\s+200\s+200\s+200\s+200\s+0\s+0\s+0/);
  });

  it('refuses an unknown fault level or a bad message count with a one-line error', async () => {
    const wild = await demo('--faults', 'wild');
    expect(wild.code).not.toBe(0);
    expect(wild.stderr).toMatch(/wild/);
    const none = await demo('--messages', '0');
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^tidings: --messages/m);
  });
});

describe('npm start', () => {
  it('runs the demo on the embedded SQLite default and prints the guarantees held', { timeout: 90_000 }, async () => {
    const r = await promisify(execFile)('npm', ['start', '--silent', '--', '--messages', '300', '--seed', '3', '--dir', join(dir, 'npm-start')], {
      cwd: root,
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(r.stdout.match(/✓ held/g)).toHaveLength(5);
    expect(r.stdout).toMatch(/exactly-once, ordered\s+300\s+300\s+300\s+600\s+0\s+0\s+0\s+0\s/);
  });
});
