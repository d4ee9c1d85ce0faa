import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { sqliteStorage } from '@tidings/adapter-sqlite';

const root = fileURLToPath(new URL('../..', import.meta.url));
const child = fileURLToPath(new URL('./sqlite-child.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tidings-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the child until it has printed `acks` acks, then SIGKILLs it; returns what it printed. */
function runAndKill(file: string, prefix: string, acks: number): Promise<{ acked: string[]; consumed: string[] }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', child, file, prefix], { cwd: root });
    const acked: string[] = [];
    const consumed: string[] = [];
    let buffered = '';
    let killed = false;
    proc.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [kind, id] = line.split(' ');
        if (kind === 'acked') acked.push(id!);
        if (kind === 'deleted' || kind === 'handled') consumed.push(id!);
      }
      // Kill at a moment that varies with the run: mid-stream, between and during commits.
      if (!killed && acked.length >= acks) {
        killed = true;
        proc.kill('SIGKILL');
      }
    });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('exit', (_code, signal) => (signal === 'SIGKILL' ? resolve({ acked, consumed }) : reject(new Error(`child exited on its own: ${stderr}`))));
  });
}

describe('a SIGKILLed producer and consumer on a SQLite file', () => {
  it('loses no acked message across three kills and restarts', { timeout: 60_000 }, async () => {
    const file = join(dir, 'kill.db');
    const acked = new Set<string>();
    const consumed = new Set<string>();
    for (const [round, target] of [
      [1, 300],
      [2, 517],
      [3, 211],
    ] as const) {
      const seen = await runAndKill(file, `r${round}`, target);
      seen.acked.forEach((id) => acked.add(id));
      seen.consumed.forEach((id) => consumed.add(id));
    }
    expect(acked.size).toBeGreaterThanOrEqual(1000);

    // Reopen the file here, in another process than the ones that wrote it.
    const storage = sqliteStorage({ file });
    await storage.open();
    const held = new Set<string>();
    for (const state of ['acked', 'leased'] as const) {
      for (const m of await storage.peek({ topic: 'crash', subscription: 'default', state: state, limit: 100_000 })) held.add(m.id);
    }
    await storage.close();
    const lost = [...acked].filter((id) => !held.has(id) && !consumed.has(id));
    expect(lost).toEqual([]);
    // Every message in the file was sent by a producer (nothing unexpected).
    expect([...held].every((id) => /^r[123]-\d+$/.test(id))).toBe(true);
  });
});
