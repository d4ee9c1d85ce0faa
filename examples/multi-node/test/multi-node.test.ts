import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresDatabase } from '../../../test/support/databases.js';
import { readTable, runCluster, totals, type NodeRun } from '../src/cluster.js';

const JOBS = 200;

describe('examples/multi-node: two processes on one PostgreSQL sharing an exactly-once topic', () => {
  let url: string;
  let runs: NodeRun[];
  let table: { rows: number; distinct: number };

  // One run of the two processes (a few seconds, mostly tsx start-up) is what every spec below inspects.
  beforeAll(async () => {
    url = await freshPostgresDatabase('multi_node');
    runs = await runCluster({ url, jobs: JOBS, timeoutMs: 15_000 });
    table = await readTable(url);
  }, 20_000);

  it('runs two real node processes to completion, each exiting 0 with its JSON summary', () => {
    for (const run of runs) expect({ code: run.code, stderr: run.stderr, summary: run.summary !== undefined }).toEqual({ code: 0, stderr: '', summary: true });
  });

  it('consumes every job exactly once: the application table holds N rows, all distinct', () => {
    expect(table).toEqual({ rows: JOBS, distinct: JOBS });
    expect(totals(JOBS, runs, table)).toMatchObject({ produced: JOBS, consumed: JOBS, duplicates: 0, lost: 0 });
  });

  it('shares the work: both nodes consume some jobs', () => {
    for (const run of runs) expect(run.summary!.consumed).toBeGreaterThan(0);
    expect(runs.map((r) => r.summary!.produced)).toEqual([JOBS / 2, JOBS / 2]);
  });

  it('never leases a message the other node holds: N leases and N handler runs in all, without faults', () => {
    const t = totals(JOBS, runs, table);
    expect({ leased: t.leased, handlerRuns: t.handlerRuns }).toEqual({ leased: JOBS, handlerRuns: JOBS });
    for (const run of runs) expect(run.summary!.handlerRuns).toBe(run.summary!.consumed);
  });

  it('runs from its package script against DATABASE_URL, printing zero duplicates and zero lost, and exits 0', async () => {
    const { stdout } = await promisify(execFile)('npm', ['run', '-s', 'start'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, DATABASE_URL: url, JOBS: '40' },
      encoding: 'utf8',
    });
    expect(stdout).toMatch(/^node-a +produced 20 /m);
    expect(stdout).toMatch(/^node-b +produced 20 /m);
    expect(stdout).toContain('jobs made 40, consumed 40, duplicates 0, lost 0');
  }, 20_000);
});
