// npm run bench:peers: Tidings beside BullMQ (Redis), and beside Graphile Worker, pg-boss and BullMQ's PostgreSQL
// backend (PostgreSQL) on the same machine, the systems alternating round by round, medians compared; then every
// target of issues 11 and 18. See docs/benchmarks.md.
import { readFileSync } from 'node:fs';
import { processArgs } from './args.js';
import { bullBatches, bullFixedRate, bullSingleAdds } from './bullmq.js';
import { bullPostgresBatches } from './bullmq-postgres.js';
import { catalog, names, type Scenario } from './catalog.js';
import { BenchContext, countsFor } from './context.js';
import { graphileBatches, graphileSingleAdds } from './graphile.js';
import { Progress, machine, printTable } from './output.js';
import { pgBossBatches, pgBossFixedRate, pgBossSingleSends } from './pg-boss.js';
import { REDIS_INSTALL, redisServerPath, startRedis, type LocalRedis } from './redis.js';
import type { Failure, Measured, Results, Row } from './rows.js';
import { runAll, stepsOf } from './runner.js';
import { median, medianLatency, round } from './stats.js';
import { PEERS, judgeTargets, rowsNeededBeyond } from './targets.js';

const args = processArgs();
const redisServer = redisServerPath();
if (!redisServer) {
  console.error(REDIS_INSTALL);
  process.exit(3);
}

// Interrupted, the process still exits through 'exit', where the redis-server it started is killed.
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));

const ALO = 'at-least-once';
const EO = 'exactly-once';
const all = catalog();
const tidings = (name: string): Scenario => all.find((s) => s.name === name)!;
const peer = (name: string, system: Scenario['system'], run: (ctx: BenchContext) => Promise<Measured>): Scenario => ({ name, system, run });

/** Systems measured side by side: the last one is the peer the others are divided by. */
function comparisons(redis: LocalRedis): Scenario[][] {
  return [
    [
      tidings(names.batches(ALO, 'SQLite file', 50)),
      tidings(names.batches(EO, 'SQLite file', 50)),
      peer(PEERS.bullmq(50), 'bullmq', (ctx) => bullBatches(ctx, redis, 50)),
    ],
    [
      tidings(names.batches(ALO, 'SQLite file', 1)),
      tidings(names.batches(EO, 'SQLite file', 1)),
      peer(PEERS.bullmq(1), 'bullmq', (ctx) => bullBatches(ctx, redis, 1)),
    ],
    // The PostgreSQL peers in one comparison, so they alternate with each other too; each row is divided by Graphile Worker's.
    [
      tidings(names.batches(ALO, 'PostgreSQL', 50)),
      tidings(names.batches(EO, 'PostgreSQL', 50)),
      peer(PEERS.pgBoss, 'pg-boss', pgBossBatches),
      peer(PEERS.bullmqPostgres(50), 'bullmq-postgres', (ctx) => bullPostgresBatches(ctx, 50)),
      peer(PEERS.graphile(50), 'graphile-worker', (ctx) => graphileBatches(ctx, 50)),
    ],
    [tidings(names.single(ALO, 'SQLite file')), peer(PEERS.bullmqSingle, 'bullmq', (ctx) => bullSingleAdds(ctx, redis))],
    [
      tidings(names.single(ALO, 'PostgreSQL')),
      peer(PEERS.pgBossSingle, 'pg-boss', pgBossSingleSends),
      peer(PEERS.graphileSingle, 'graphile-worker', graphileSingleAdds),
    ],
    [tidings(names.fixedRate(ALO, 'SQLite file')), peer(PEERS.bullmqFixedRate, 'bullmq', (ctx) => bullFixedRate(ctx, redis))],
    [tidings(names.fixedRate(ALO, 'PostgreSQL')), peer(PEERS.pgBossFixedRate, 'pg-boss', pgBossFixedRate)],
  ];
}

/** What Tidings logged over all rounds, by message. */
function sumLogged(runs: Measured[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const m of runs) for (const [k, n] of Object.entries(m.logged ?? {})) sum[k] = (sum[k] ?? 0) + n;
  return sum;
}

const only = args.only;
const matches = (name: string) => !only || name.toLowerCase().includes(only);
const rounds = args.rounds ?? (args.quick ? 1 : 3);
const ctx = new BenchContext(countsFor(args.quick, args.messages), args.quick);
const rows: Row[] = [];
/** Tidings' rows of one run, for the targets the comparisons cannot judge. */
const oneRun: Row[] = [];
const failures: Failure[] = [];
let redis: LocalRedis | undefined;
try {
  redis = await startRedis(redisServer);
  const chosen = comparisons(redis).filter((systems) => systems.some((s) => matches(s.name)));
  // Targets whose rows are not all compared here are judged on one run of Tidings alone: read (--bench FILE) or run once.
  const compared = new Set(
    comparisons(redis)
      .flat()
      .map((s) => s.name),
  );
  const targetOnly = rowsNeededBeyond(compared);
  const saved = args.bench ? (JSON.parse(readFileSync(args.bench, 'utf8')) as Results).rows : undefined;
  const extras = saved ? [] : all.filter((s) => targetOnly.includes(s.name) && matches(s.name));
  const progress = new Progress(chosen.reduce((n, systems) => n + systems.length * rounds, 0) + stepsOf(extras, all));

  for (const systems of chosen) {
    const measured = new Map<Scenario, Measured[]>(systems.map((s) => [s, []]));
    const failed = new Set<Scenario>();
    // Round by round, each system in turn, so a noisy minute on the shared machine falls on all of them.
    for (let r = 1; r <= rounds; r++) {
      for (const s of systems) {
        if (failed.has(s)) continue;
        progress.step(`round ${r}/${rounds}: ${s.name}`);
        try {
          measured.get(s)!.push(await s.run(ctx));
        } catch (error) {
          failed.add(s);
          failures.push({ name: s.name, error: error instanceof Error ? error.message : String(error) });
        }
      }
    }
    const peerSystem = systems.at(-1)!;
    const medianOf = (s: Scenario) => median(measured.get(s)!.map((m) => m.messagesPerSecond));
    for (const s of systems) {
      if (failed.has(s)) continue;
      const runs = measured.get(s)!;
      const latencies = runs.flatMap((m) => (m.latencyMs ? [m.latencyMs] : []));
      const isPeer = s === peerSystem;
      rows.push({
        name: s.name,
        system: s.system,
        messagesPerSecond: Math.round(medianOf(s)),
        messages: runs[0]!.messages,
        ...(latencies.length && { latencyMs: medianLatency(latencies) }),
        ...(runs[0]!.scheduledPerSecond && { scheduledPerSecond: runs[0]!.scheduledPerSecond }),
        ...(runs.some((m) => m.duplicates) && { duplicates: runs.reduce((n, m) => n + (m.duplicates ?? 0), 0) }),
        ...(runs.some((m) => m.logged) && { logged: sumLogged(runs) }),
        baseline: isPeer ? null : peerSystem.name,
        ratio: isPeer || failed.has(peerSystem) ? null : round(medianOf(s) / medianOf(peerSystem), 3),
        rounds: runs.map((m) => Math.round(m.messagesPerSecond)),
      });
    }
  }

  const once = saved ? { rows: saved.filter((r) => matches(r.name)), failures: [] } : await runAll(ctx, extras, all, progress);
  oneRun.push(...once.rows);
  // Shown here: those rows not divided by a row of the comparisons (whose figure here is another run's), with their baselines.
  const shown = once.rows.filter((r) => targetOnly.includes(r.name) && !compared.has(r.name) && !compared.has(r.baseline ?? ''));
  rows.push(...once.rows.filter((r) => shown.includes(r) || shown.some((s) => s.baseline === r.name)));
  failures.push(...once.failures);
  progress.finish();
} finally {
  try {
    await redis?.stop();
  } finally {
    await ctx.close();
  }
}

const results: Results = {
  kind: 'peers',
  date: new Date().toISOString(),
  machine: machine(),
  quick: args.quick,
  rows,
  failures,
  targets: judgeTargets(rows, oneRun),
};
if (args.json) console.log(JSON.stringify(results, null, 2));
else {
  const c = ctx.counts;
  printTable(
    results,
    `${args.quick ? 'QUICK RUN (smoke test, not a measurement): ' : ''}median of ${rounds} round${rounds > 1 ? 's' : ''}, systems alternating; ` +
      `${c.batch} messages of ~256 bytes per end-to-end run, ${c.single} single sends, ${c.rate}/s for ${c.rateSeconds} s; Redis ${redis?.version}` +
      (args.bench ? `; Tidings-only rows from ${args.bench}` : ''),
  );
}
if (failures.length) {
  for (const f of failures) console.error(`FAILED  ${f.name}: ${f.error}`);
  process.exitCode = 1;
}
