import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('examples/custom-adapter main program', () => {
  it('runs from its package script, delivers every message once (to each subscription, in key order), and commits the handler rows with them', () => {
    const out = execFileSync('npm', ['run', '-s', 'start'], { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8', timeout: 30_000 });
    const lines = out.trim().split('\n');
    for (const email of ['welcome', 'receipt', 'newsletter']) expect(lines).toContain(`delivered emails: ${email} (attempt 1)`);
    expect(lines.filter((l) => l.startsWith('delivered orders: order-1,'))).toEqual(['delivered orders: order-1, total 10 (attempt 1)']);
    expect(lines).toContain('delivered orders: order-2, total 25 (attempt 1)');
    expect(lines.filter((l) => l.startsWith('sent orders:'))).toEqual([
      'sent orders: order-1 stored',
      'sent orders: order-2 stored',
      'sent orders: order-1 duplicate, not stored again',
    ]);
    expect(lines.filter((l) => l.startsWith('payments '))).toEqual([
      'payments audit acct-1: 10, 30, 40',
      'payments audit acct-2: 20, 50',
      'payments ledger acct-1: 10, 30, 40',
      'payments ledger acct-2: 20, 50',
    ]);
    expect(lines.at(-1)).toBe('shipments table: order-1, order-2');
  });
});
