import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));

/** Runs vitest as `npm test` does (root config, real global setup with PostgreSQL) on the given files only. */
function runVitest(include: string) {
  return spawnSync(process.execPath, [vitest, 'run'], {
    cwd: root,
    env: { ...process.env, TIDINGS_TEST_INCLUDE: include, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0' },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('npm test fails when a test fails', () => {
  it('exits non-zero and ends with a plain "N passed, N failed" line', { timeout: 130_000 }, () => {
    const run = runVitest('test/fixtures/fails-on-purpose.fixture.ts');
    expect(run.error).toBeUndefined();
    expect(run.status, run.stdout + run.stderr).not.toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('tests: 1 passed, 1 failed, 0 skipped');
  });
});

describe('the conformance suite on an adapter that cannot store', () => {
  it('fails its basics with one clear line and skips the rest at once, instead of sitting out race timeouts', { timeout: 130_000 }, () => {
    const started = Date.now();
    const run = runVitest('test/fixtures/broken-adapter.fixture.ts');
    const took = Date.now() - started;
    expect(run.status, run.stdout + run.stderr).not.toBe(0);
    expect(run.stdout + run.stderr).toMatch(/store failed: store is not written yet/);
    const summary = run.stdout.trimEnd().split('\n').at(-1)!;
    expect(summary).toMatch(/^tests: 0 passed, 1 failed, \d+ skipped$/);
    console.log(`conformance on a broken adapter: ${summary}, in ${took} ms (vitest start-up included)`);
    // It took 121 s before the basics came first (two race timeouts of 60 s); about 5 s now, PostgreSQL's start-up included.
    expect(took).toBeLessThan(30_000);
  });
});
