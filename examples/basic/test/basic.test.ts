import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runBasic } from '../src/run.js';

describe('examples/basic', () => {
  it('delivers every message once per semantic and shows each lifecycle path', async () => {
    const reports = await runBasic(5);
    expect(reports.map((r) => [r.label, r.sent, r.delivered, r.distinct])).toEqual([
      ['at-most-once', 5, 5, 5],
      ['at-least-once', 5, 5, 5],
      ['exactly-once (broker)', 5, 5, 5],
      ['exactly-once (end-to-end)', 5, 5, 5],
    ]);
    expect(reports.map((r) => r.duplicates)).toEqual([0, 0, 0, 1]);
    expect(reports[0]!.path).toEqual(['sent', 'stored', 'leased', 'deleted', 'consumed']);
    expect(reports[1]!.path).toEqual(['sent', 'stored', 'acked', 'leased', 'consumed', 'deleted']);
    expect(reports[2]!.path).toEqual(['sent', 'stored', 'leased', 'consumed', 'deleted']);
    expect(reports[3]!.path).toEqual(['sent', 'stored', 'acked', 'leased', 'consumed', 'deleted']);
  });

  it('runs from its package script and exits 0', () => {
    const out = execFileSync('npm', ['run', '-s', 'start'], { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8' });
    expect(out).toMatch(/at-least-once\s+sent 5\s+delivered 5/);
  });
});
