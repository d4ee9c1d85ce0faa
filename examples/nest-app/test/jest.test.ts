import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const app = join(__dirname, '..');

describe('examples/nest-app under Jest', () => {
  it('passes its Jest suite, which loads Tidings through require()', { timeout: 120_000 }, () => {
    const run = spawnSync('npm', ['run', '-s', 'test:jest', '--', '--ci'], { cwd: app, encoding: 'utf8' });
    const output = `${run.stdout}${run.stderr}`;
    expect(output).toMatch(/Tests:\s+2 passed, 2 total/);
    expect(run.status, output).toBe(0);
  });
});
