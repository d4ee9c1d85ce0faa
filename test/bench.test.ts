import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Tally, payload } from '../bench/messages.js';
import { REDIS_INSTALL, redisServerPath } from '../bench/redis.js';
import { recordingMachineMarkdown, replaceSection, rowsMarkdown, targetsMarkdown } from '../bench/report.js';
import type { Results, Row } from '../bench/rows.js';
import { percentiles } from '../bench/stats.js';
import { chartSvg } from '../bench/svg.js';
import { PEERS, TARGETS } from '../bench/targets.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const redis = redisServerPath();
const requireRedis = process.env.REQUIRE_REDIS === '1';

/** `npm run -s <script> -- <args>` from the repository root: its exit code, stdout and stderr. */
function npmRun(script: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const run = spawnSync('npm', ['run', '-s', script, '--', ...args], { cwd: root, env, encoding: 'utf8', timeout: 90_000 });
  expect(run.error).toBeUndefined();
  return run;
}

/** What every row of a `--json` run holds. */
function expectRowShape(r: Row) {
  expect(typeof r.name).toBe('string');
  expect(r.messagesPerSecond).toBeGreaterThan(0);
  expect(r.baseline === null || typeof r.baseline === 'string').toBe(true);
  expect(r.ratio === null || r.ratio > 0).toBe(true);
  if (r.latencyMs) for (const p of ['p50', 'p99', 'p999'] as const) expect(r.latencyMs[p]).toBeGreaterThanOrEqual(0);
}

describe('npm run bench', () => {
  it('--quick --json --only runs that scenario after its baseline, every message handled, one JSON row each', { timeout: 90_000 }, () => {
    const name = 'at-least-once, memory, batches of 100, concurrency 50';
    const run = npmRun('bench', ['--quick', '--json', '--only', name]);
    expect(run.status, run.stderr).toBe(0);
    const results = JSON.parse(run.stdout) as Results;
    expect(results).toMatchObject({ kind: 'bench', quick: true, failures: [] });
    expect(results.machine.cpus).toBeGreaterThan(0);
    expect(results.rows.map((r) => r.name)).toEqual(['raw better-sqlite3, :memory:, batches of 100', name]);
    for (const r of results.rows) expectRowShape(r);
    const [baseline, row] = results.rows as [Row, Row];
    expect(baseline).toMatchObject({ system: 'raw', baseline: null, ratio: null, messages: 1_000 });
    // All 1,000 sent were handled, each once.
    expect(row).toMatchObject({ system: 'tidings', baseline: baseline.name, messages: 1_000 });
    expect(row.duplicates ?? 0).toBe(0);
    expect(row.ratio!).toBeCloseTo(row.messagesPerSecond / baseline.messagesPerSecond, 1);
  });

  it('gives a row with latency percentiles where the scenario measures one', { timeout: 90_000 }, () => {
    const run = npmRun('bench', ['--quick', '--json', '--only', 'at-least-once, SQLite file, one awaited send']);
    expect(run.status, run.stderr).toBe(0);
    const row = (JSON.parse(run.stdout) as Results).rows.find((r) => r.system === 'tidings')!;
    expectRowShape(row);
    expect(row).toMatchObject({ messages: 100, baseline: 'raw better-sqlite3, file FULL, one insert per commit' });
    expect(row.latencyMs!.p50).toBeLessThanOrEqual(row.latencyMs!.p99);
    expect(row.latencyMs!.p99).toBeLessThanOrEqual(row.latencyMs!.p999);
  });

  it('refuses an unknown argument with exit code 2', { timeout: 30_000 }, () => {
    const run = npmRun('bench', ['--fast']);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown argument --fast');
  });
});

describe('npm run bench:peers', () => {
  it.skipIf(!redis && !requireRedis)(
    redis || requireRedis
      ? '--quick runs Tidings and BullMQ side by side and judges every target'
      : 'skipped: redis-server is not on PATH (apt-get install redis-server; REQUIRE_REDIS=1 makes this a failure)',
    { timeout: 90_000 },
    () => {
      if (!redis) throw new Error(`REQUIRE_REDIS=1 but ${REDIS_INSTALL}`);
      const run = npmRun('bench:peers', ['--quick', '--json', '--only', 'at-least-once, SQLite file, one awaited send']);
      expect(run.status, run.stderr).toBe(0);
      const results = JSON.parse(run.stdout) as Results;
      expect(results).toMatchObject({ kind: 'peers', quick: true, failures: [] });
      for (const r of results.rows) expectRowShape(r);
      const peer = results.rows.find((r) => r.system === 'bullmq')!;
      const tidings = results.rows.find((r) => r.system === 'tidings')!;
      expect(peer).toMatchObject({ name: PEERS.bullmqSingle, baseline: null, messages: 100 });
      expect(tidings).toMatchObject({ baseline: peer.name, messages: 100 });
      expect(tidings.ratio!).toBeCloseTo(tidings.messagesPerSecond / peer.messagesPerSecond, 1);
      expect(results.targets!.map((t) => t.target)).toEqual(TARGETS.map((t) => t.target));
    },
  );

  it.skipIf(!redis && !requireRedis)(
    redis || requireRedis
      ? '--quick runs Tidings beside Graphile Worker, pg-boss and BullMQ on PostgreSQL, every message handled once'
      : 'skipped: redis-server is not on PATH (apt-get install redis-server; REQUIRE_REDIS=1 makes this a failure)',
    { timeout: 90_000 },
    () => {
      if (!redis) throw new Error(`REQUIRE_REDIS=1 but ${REDIS_INSTALL}`);
      // Every comparison with a pg-boss row: batches (with Graphile Worker and BullMQ's PostgreSQL backend), single sends, fixed rate.
      const run = npmRun('bench:peers', ['--quick', '--json', '--only', 'pg-boss']);
      expect(run.status, run.stderr).toBe(0);
      const results = JSON.parse(run.stdout) as Results;
      expect(results).toMatchObject({ kind: 'peers', quick: true, failures: [] });
      for (const r of results.rows) expectRowShape(r);
      const row = (name: string) => results.rows.find((r) => r.name === name)!;
      for (const [name, system] of [
        [PEERS.pgBoss, 'pg-boss'],
        [PEERS.bullmqPostgres(50), 'bullmq-postgres'],
      ] as const) {
        // All 1,000 sent were handled, each once, and the row is divided by Graphile Worker's, the comparison's last.
        expect(row(name)).toMatchObject({ system, baseline: PEERS.graphile(50), messages: 1_000 });
        expect(row(name).duplicates ?? 0).toBe(0);
      }
      expect(row(PEERS.graphile(50))).toMatchObject({ system: 'graphile-worker', baseline: null, messages: 1_000 });
      expect(row(PEERS.pgBossSingle)).toMatchObject({ system: 'pg-boss', baseline: PEERS.graphileSingle, messages: 100 });
      expect(row(PEERS.pgBossFixedRate)).toMatchObject({ system: 'pg-boss', baseline: null, messages: 500, scheduledPerSecond: 1_000 });
      expect(row(PEERS.pgBossFixedRate).latencyMs!.p50).toBeGreaterThan(0);
      const judged = results.targets!.find((t) => t.target.startsWith('PostgreSQL exactly-once e2e ≥ 1× Graphile Worker'))!;
      expect(judged.met).toBeTypeOf('boolean');
    },
  );

  it('says how to install redis-server and exits 3 when it is not on PATH', { timeout: 30_000 }, () => {
    const run = spawnSync(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', 'bench/peers.ts', '--quick'], {
      cwd: root,
      // node is started by its path; nothing else is looked up on PATH but redis-server.
      env: { ...process.env, PATH: join(root, 'no-such-folder') },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(3);
    expect(run.stderr).toContain('apt-get install -y redis-server');
  });
});

describe('the bench tally', () => {
  it('counts each message once, the rest as duplicates, and resolves when all are handled', async () => {
    const tally = new Tally(3);
    for (const i of [0, 1, 1, 2]) tally.mark(payload(i));
    await tally.finished('test', 1_000);
    expect([tally.handled, tally.duplicates]).toEqual([3, 1]);
  });

  it('fails a run in which no message is handled for the stall time, naming how many were', async () => {
    const tally = new Tally(2);
    tally.mark(payload(0));
    await expect(tally.finished('lossy', 300)).rejects.toThrow('lossy: 1 of 2 messages handled, none in the last 0.3 s');
  });

  it('refuses a message that was never sent', () => {
    expect(() => new Tally(2).mark(payload(5))).toThrow('never sent');
  });

  it('reads p50, p99 and p99.9 by nearest rank', () => {
    expect(percentiles(Array.from({ length: 1000 }, (_, i) => 1000 - i))).toEqual({ p50: 500, p99: 990, p999: 999 });
  });
});

describe('docs/benchmarks.md', () => {
  const saved = (file: string) => JSON.parse(readFileSync(`${root}bench/results/${file}`, 'utf8')) as Results;
  const recorded = existsSync(`${root}bench/results/bench.json`) && existsSync(`${root}bench/results/peers.json`);

  it.runIf(recorded)('shows the saved run: machine, targets, tables and chart (npm run bench:record writes all of them)', () => {
    const [bench, peers] = [saved('bench.json'), saved('peers.json')];
    const doc = readFileSync(`${root}docs/benchmarks.md`, 'utf8');
    for (const [name, body] of [
      ['targets', targetsMarkdown(peers.targets ?? [])],
      ['peers', rowsMarkdown(peers)],
      ['bench', rowsMarkdown(bench)],
    ] as const) {
      expect(replaceSection(doc, name, body)).toBe(doc);
    }
    expect(doc).toContain(recordingMachineMarkdown(bench, peers));
    expect(readFileSync(`${root}docs/img/benchmarks.svg`, 'utf8')).toBe(chartSvg([bench, peers]));
    expect(bench.quick || peers.quick).toBe(false);
  });
});
