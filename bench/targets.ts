// The targets of issues 11 and 18, each read from result rows: a figure, and whether it is met.
import { names } from './catalog.js';
import { count } from './output.js';
import type { Row, TargetResult } from './rows.js';

/** Row names of the peers, with the version and settings each runs with. */
export const PEERS = {
  bullmq: (concurrency: number) => `BullMQ 6.7.6, Redis AOF everysec, addBulk 100, concurrency ${concurrency}`,
  bullmqSingle: 'BullMQ 6.7.6, Redis AOF everysec, one awaited add at a time',
  bullmqFixedRate: 'BullMQ 6.7.6, Redis AOF everysec, 1,000 adds/s, add to processor start',
  bullmqPostgres: (concurrency: number) => `BullMQ 6.7.6, PostgreSQL backend, addBulk 100, concurrency ${concurrency}`,
  graphile: (concurrency: number) => `Graphile Worker 0.18.0, PostgreSQL, addJobs 100, local queue 100, concurrency ${concurrency}`,
  graphileSingle: 'Graphile Worker 0.18.0, PostgreSQL, one awaited addJob at a time',
  pgBoss: 'pg-boss 12.38.1, PostgreSQL, insert 100, 4 workers of batchSize 100, LISTEN/NOTIFY',
  pgBossSingle: 'pg-boss 12.38.1, PostgreSQL, one awaited send at a time',
  pgBossFixedRate: 'pg-boss 12.38.1, PostgreSQL, 1,000 sends/s, send to handler start',
};

interface Target {
  target: string;
  /** The rows it reads, judged together from one run. */
  needs: readonly string[];
  /** The figure and verdict, or undefined when a row it needs is missing. */
  judge(row: (name: string) => Row | undefined): { figure: string; met: boolean } | undefined;
}

const rate = (r: Row) => `${count(r.messagesPerSecond)}/s`;

/** `name`'s messages/s at least `times` those of `than`. */
function atLeastTimes(target: string, name: string, than: string, times: number): Target {
  return {
    target,
    needs: [name, than],
    judge(row) {
      const [a, b] = [row(name), row(than)];
      if (!a || !b) return undefined;
      const ratio = a.messagesPerSecond / b.messagesPerSecond;
      return { figure: `${ratio.toFixed(2)}× (${rate(a)} vs ${rate(b)})`, met: ratio >= times };
    },
  };
}

/** A latency percentile of `name` at most `ms`. */
function latencyAtMost(target: string, name: string, p: 'p50' | 'p99', ms: number): Target {
  return {
    target,
    needs: [name],
    judge(row) {
      const l = row(name)?.latencyMs;
      return l && { figure: `${p} ${l[p]} ms (p50 ${l.p50}, p99 ${l.p99}, p99.9 ${l.p999})`, met: l[p] <= ms };
    },
  };
}

const ALO = 'at-least-once' as const;
const EO = 'exactly-once' as const;

/** Every target, in the order docs/benchmarks.md lists them. */
export const TARGETS: Target[] = [
  atLeastTimes('SQLite at-least-once ≥ 4.6× BullMQ (batches of 100, concurrency 50)', names.batches(ALO, 'SQLite file', 50), PEERS.bullmq(50), 4.6),
  ...[1, 50].map((c) =>
    atLeastTimes(`SQLite exactly-once e2e ≥ 2.5× BullMQ (batches of 100, concurrency ${c})`, names.batches(EO, 'SQLite file', c), PEERS.bullmq(c), 2.5),
  ),
  ...[1, 50].map((c) =>
    atLeastTimes(
      `SQLite exactly-once e2e ≥ 0.6× its own at-least-once (batches of 100, concurrency ${c})`,
      names.batches(EO, 'SQLite file', c),
      names.batches(ALO, 'SQLite file', c),
      0.6,
    ),
  ),
  ...[1, 50].map((c) =>
    atLeastTimes(
      `PostgreSQL exactly-once e2e ≥ 0.6× its own at-least-once (batches of 100, concurrency ${c})`,
      names.batches(EO, 'PostgreSQL', c),
      names.batches(ALO, 'PostgreSQL', c),
      0.6,
    ),
  ),
  ...(['SQLite file', 'PostgreSQL'] as const).map((store) =>
    atLeastTimes(
      `${store} exactly-once e2e: a batch handler ≥ 1.5× a handler per message (concurrency 50)`,
      names.batchHandler(EO, store),
      names.batches(EO, store, 50),
      1.5,
    ),
  ),
  atLeastTimes('PostgreSQL at-least-once ≥ 2× Graphile Worker (batches of 100, concurrency 50)', names.batches(ALO, 'PostgreSQL', 50), PEERS.graphile(50), 2),
  atLeastTimes('PostgreSQL exactly-once e2e ≥ 1× Graphile Worker (batches of 100, concurrency 50)', names.batches(EO, 'PostgreSQL', 50), PEERS.graphile(50), 1),
  ...(['SQLite file', 'PostgreSQL'] as const).flatMap((store) =>
    ([ALO, EO] as const).flatMap((semantic) => [
      atLeastTimes(`${store} ${semantic}: ordered by 1,000 keys ≥ 0.7× unordered`, names.ordered(semantic, store), names.batches(semantic, store, 50), 0.7),
      atLeastTimes(`${store} ${semantic}: 3 subscriptions (summed) ≥ 0.8× one`, names.fannedOut(semantic, store), names.batches(semantic, store, 50), 0.8),
    ]),
  ),
  latencyAtMost('1,000 sends/s on SQLite (at-least-once), send to handler start: p50 ≤ 2 ms', names.fixedRate(ALO, 'SQLite file'), 'p50', 2),
  latencyAtMost('1,000 sends/s on SQLite (at-least-once), send to handler start: p99 ≤ 6 ms', names.fixedRate(ALO, 'SQLite file'), 'p99', 6),
  latencyAtMost('1,000 sends/s on SQLite (at-least-once) to a consumer in a second process: p50 ≤ 5 ms', names.secondProcess(ALO), 'p50', 5),
  latencyAtMost('1,000 sends/s on PostgreSQL (at-least-once), send to handler start: p99 ≤ 15 ms', names.fixedRate(ALO, 'PostgreSQL'), 'p99', 15),
  {
    target: '50 concurrent single senders on SQLite (at-least-once) ≥ 10,000 sends/s',
    needs: [names.concurrent(ALO, 'SQLite file')],
    judge(row) {
      const r = row(names.concurrent(ALO, 'SQLite file'));
      return r && { figure: `${rate(r)} (send p50 ${r.latencyMs?.p50} ms, p99 ${r.latencyMs?.p99} ms)`, met: r.messagesPerSecond >= 10_000 };
    },
  },
  {
    target: 'backlog of 1,000,000 on SQLite: consumer RSS ≤ 150 MB',
    needs: [names.backlog],
    judge(row) {
      const b = row(names.backlog)?.backlog;
      return (
        b && { figure: `${b.consumerRssMb[1]} MB at ${count(b.sizes[1])} (${b.consumerRssMb[0]} MB at ${count(b.sizes[0])})`, met: b.consumerRssMb[1] <= 150 }
      );
    },
  },
  {
    target: 'backlog of 1,000,000 on SQLite: lease of a batch of 100 within 1.2× of that at 10,000',
    needs: [names.backlog],
    judge(row) {
      const b = row(names.backlog)?.backlog;
      return (
        b && { figure: `${b.leaseRatio}× (${b.leaseMs[1]} ms at ${count(b.sizes[1])}, ${b.leaseMs[0]} ms at ${count(b.sizes[0])})`, met: b.leaseRatio <= 1.2 }
      );
    },
  },
];

/** The rows targets read that `measured` lacks: those of each target not judged on `measured` alone. */
export function rowsNeededBeyond(measured: ReadonlySet<string>): string[] {
  return [...new Set(TARGETS.filter((t) => !t.needs.every((n) => measured.has(n))).flatMap((t) => t.needs))];
}

/**
 * Each target judged on `rows` when they hold every row it needs (the peers' medians), else on `oneRun` (the bench's
 * rows, so that a ratio never divides one run's figure by another's); `not measured` where a row is missing.
 */
export function judgeTargets(rows: readonly Row[], oneRun: readonly Row[] = []): TargetResult[] {
  const has = new Set(rows.map((r) => r.name));
  return TARGETS.map((t) => {
    const from = t.needs.every((n) => has.has(n)) ? rows : oneRun;
    const verdict = t.judge((name) => from.find((r) => r.name === name));
    return verdict ? { target: t.target, ...verdict } : { target: t.target, figure: 'not measured', met: undefined };
  });
}
