import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { InvalidOptionsError, type Lifecycle } from '@tidings/core';
import { redactUrl } from '@tidings/adapter-postgres';
import { checkDeliveries, checkSubscriptions, guaranteeHeld, type DeliveryCheck, type GuaranteeVerdict } from '@tidings/faults';
import type { Output } from './commands.js';
import { checkPostgres } from './database.js';
import { DatabaseNotFoundError } from './errors.js';
import {
  DRAIN_LIMIT_MS,
  atMostOnceBounds,
  prepareDatabase,
  query,
  runCrashScenario,
  type CrashOutcome,
  type CrashScenario,
  type ProveTarget,
} from './prove-scenario.js';
import { table } from './table.js';

/** What `tidings prove` takes from its command line. */
export interface ProveOptions {
  /** The database to prove on: a SQLite file (its folder must exist; the file itself is not touched) or a postgres:// URL. */
  db: string;
  /** Messages each run sends. */
  messages: number;
  /** SIGKILLs each run sends at least (producers and consumers, at seeded moments). */
  kills: number;
  /** Share of producer acks lost after the store (the producer sees a failure, the broker has the message). */
  lostAcks: number;
  /** Seed of every kill, lost ack and crash point, so a run replays. */
  seed: number;
  /** Only these runs (names as in `PROVE_RUNS`); default all. */
  only?: string[];
  json: boolean;
  /** Leave the run's file or schema in place, to look into. */
  keep?: boolean;
}

/** One run of `tidings prove`: a semantic on a topic of its own, and for some an ordering or a batch handler. */
export interface ProveRun {
  name: string;
  lifecycle: Lifecycle;
  /** Two subscriptions, each read by processes of their own, and messages spread over ten ordering keys. */
  ordered?: boolean;
  batch?: boolean;
}

/** Every run, in the order they go: the four semantics, then exactly-once ordered with two subscriptions, and with a batch handler. */
export const PROVE_RUNS: readonly ProveRun[] = [
  { name: 'at-most-once', lifecycle: 'at-most-once' },
  { name: 'at-least-once', lifecycle: 'at-least-once' },
  { name: 'exactly-once/broker', lifecycle: 'exactly-once/broker' },
  { name: 'exactly-once/end-to-end', lifecycle: 'exactly-once/end-to-end' },
  { name: 'exactly-once-ordered', lifecycle: 'exactly-once/end-to-end', ordered: true },
  { name: 'exactly-once-batch', lifecycle: 'exactly-once/end-to-end', batch: true },
];

const SUBSCRIPTIONS = ['billing', 'shipping'];

/** One run's outcome, as printed in the table and in `--json`. */
export interface ProveRow {
  run: string;
  lifecycle: Lifecycle;
  kills: number;
  sent: number;
  acked: number;
  stored: number;
  delivered: number;
  /** What the run's semantic counts as lost: stored but never consumed (at-most-once, broker scope), else acked but never consumed. */
  lost: number;
  duplicated: number;
  /** Ordered runs: messages a handler started while an earlier one of their key was unsettled, over both subscriptions. */
  outOfOrder?: number;
  seconds: number;
  held: boolean;
  /** The rule the run was judged by, with what it found; and every bound it broke. */
  rule: string;
  broken: string[];
}

/** The whole result of `tidings prove`. */
export interface ProveResult {
  target: string;
  seed: number;
  messages: number;
  rows: ProveRow[];
  held: boolean;
}

/**
 * Proves the delivery guarantees on the given database: for each run, real producer and consumer processes, SIGKILLed
 * at seeded moments and restarted, with lost acks and crash points, then a checker over what the broker stored and what
 * the consumers' effects recorded. Works in a file (SQLite) or a schema (PostgreSQL) of its own, removed after.
 */
export async function prove(options: ProveOptions, output: Output): Promise<ProveResult> {
  const runs = checkOptions(options);
  const place = await makePlace(options);
  const stopOnSignal = () => {
    void place.remove().finally(() => process.exit(130));
  };
  process.once('SIGINT', stopOnSignal);
  try {
    const rows: ProveRow[] = [];
    for (const [i, run] of runs.entries()) {
      const label = `${i + 1}/${runs.length} ${run.name}`;
      const bar =
        options.json || !process.stderr.isTTY
          ? undefined
          : new SingleBar(
              { format: ` ${label.padEnd(28)} [{bar}] {value}/{total} {phase}, {kills} kills`, hideCursor: true, stream: process.stderr },
              Presets.shades_classic,
            );
      bar?.start(options.messages, 0, { phase: 'producing', kills: 0 });
      const row = await proveOne(run, { ...options, seed: options.seed + i }, place.target, (p) => bar?.update(p.produced, { phase: p.phase, kills: p.kills }));
      bar?.stop();
      if (!options.json) output.err(` ${label}: ${row.held ? 'held' : 'BROKEN'} (${row.kills} kills, ${row.seconds} s)`);
      rows.push(row);
    }
    const result = { target: place.name, seed: options.seed, messages: options.messages, rows, held: rows.every((r) => r.held) };
    output.out(options.json ? JSON.stringify(result, null, 2) : render(result, options));
    return result;
  } finally {
    process.removeListener('SIGINT', stopOnSignal);
    if (options.keep) output.err(`kept ${place.name}`);
    else await place.remove();
  }
}

function checkOptions(o: ProveOptions): ProveRun[] {
  const count = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new InvalidOptionsError(`${name} must be an integer from ${min} to ${max}, got ${v}.`);
  };
  count('--messages', o.messages, 10, 100_000);
  count('--kills', o.kills, 1, 1_000);
  count('--seed', o.seed, 0, 2 ** 31);
  if (!(o.lostAcks >= 0 && o.lostAcks < 1))
    throw new InvalidOptionsError(`--lost-acks must be a share from 0 up to (not including) 1, e.g. 0.2, got ${o.lostAcks}.`);
  if (!o.only) return [...PROVE_RUNS];
  const names = PROVE_RUNS.map((r) => r.name);
  const unknown = o.only.filter((n) => !names.includes(n));
  if (unknown.length > 0) throw new InvalidOptionsError(`--only ${unknown.join(', ')}: no such run; the runs are ${names.join(', ')}.`);
  return PROVE_RUNS.filter((r) => o.only!.includes(r.name));
}

/** Where the runs keep their messages, apart from the application's own: a SQLite file beside it, or a PostgreSQL schema. */
interface Place {
  target: ProveTarget;
  /** For messages: the file, or the schema and the database without its password. */
  name: string;
  remove(): Promise<void>;
}

async function makePlace(o: ProveOptions): Promise<Place> {
  if (/^postgres(ql)?:\/\//i.test(o.db)) {
    const schema = `tidings_prove_${o.seed}`;
    const server: ProveTarget = { db: o.db };
    // An unreachable server or a database that is not there is told as such, before anything is created.
    await checkPostgres(o.db, `PostgreSQL at ${redactUrl(o.db)}`);
    // A schema left by a run killed before it could clean up, with the same seed, is that run's: start afresh.
    await query(server, [`DROP SCHEMA IF EXISTS ${schema} CASCADE`, `CREATE SCHEMA ${schema}`]);
    return {
      target: { db: o.db, schema },
      name: `schema ${schema} of PostgreSQL at ${redactUrl(o.db)}`,
      remove: () => query(server, [`DROP SCHEMA IF EXISTS ${schema} CASCADE`]).then(() => undefined),
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(o.db))
    throw new InvalidOptionsError(`--db ${redactUrl(o.db)} is not a database tidings can prove on: pass a SQLite file path or a postgres:// URL.`);
  const folder = dirname(resolve(o.db));
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new DatabaseNotFoundError(
      `--db ${o.db}: no folder ${folder}. tidings prove works in a file beside your database, on the same disk; create the folder or pass another path.`,
    );
  }
  const file = join(folder, `tidings-prove-${o.seed}.db`);
  const remove = async () => {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
  };
  await remove();
  return { target: { db: file }, name: file, remove };
}

/** One run, judged: the checker's counts, the semantic's rule, and (at-most-once) what a crash may and may not lose. */
async function proveOne(run: ProveRun, o: ProveOptions, target: ProveTarget, onProgress: Parameters<typeof runCrashScenario>[2]): Promise<ProveRow> {
  const topic = `prove-${run.name.replace(/\W+/g, '-')}`;
  await prepareDatabase(target);
  const scenario: CrashScenario = {
    ...target,
    config: run.lifecycle as CrashScenario['config'],
    messages: o.messages,
    seed: o.seed,
    kills: o.kills,
    lostAckRate: o.lostAcks,
    crashRate: 0.005,
    ...(run.ordered ? { ordered: true, subscriptions: SUBSCRIPTIONS } : {}),
    ...(run.batch ? { batch: true } : {}),
  };
  const started = performance.now();
  const outcome = await runCrashScenario(scenario, topic, onProgress);
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  const { checks, subscriptions, verdicts, broken } = judgeCrashRun(run, outcome);
  const sum = (f: (c: DeliveryCheck) => number) => checks.reduce((n, c) => n + f(c), 0);
  return {
    run: run.name,
    lifecycle: run.lifecycle,
    kills: outcome.kills,
    sent: checks[0]?.sent ?? 0,
    acked: checks[0]?.acked ?? 0,
    stored: sum((c) => c.stored),
    delivered: sum((c) => c.delivered),
    lost: sum((c) => (run.lifecycle === 'at-most-once' || run.lifecycle === 'exactly-once/broker' ? c.lostStored : c.lost)),
    duplicated: sum((c) => c.duplicated),
    ...(run.ordered ? { outOfOrder: sum((c) => c.outOfOrder) } : {}),
    seconds,
    held: broken.length === 0,
    // The rule without the lifecycle it begins with, which the run's name says (or, for the other runs, `lifecycle` does).
    rule: verdicts.map((v, i) => `${subscriptions[i] ? `${subscriptions[i]}: ` : ''}${v.rule.slice(run.lifecycle.length + 2)}`).join('; '),
    broken,
  };
}

/** A crash run judged: the checker's counts (one per subscription when ordered), the semantic's verdicts, and what broke. */
export interface CrashJudgement {
  checks: DeliveryCheck[];
  /** The subscription each check is of, for an ordered run (checked per subscription); else empty. */
  subscriptions: string[];
  verdicts: GuaranteeVerdict[];
  /** Each broken rule or bound, with the keys behind it; empty when every guarantee held. */
  broken: string[];
}

/** Judges a crash run by its semantic's rule and, beyond it, the bounds a crash puts on what may be lost. */
export function judgeCrashRun(run: ProveRun, outcome: CrashOutcome): CrashJudgement {
  const history = {
    lifecycle: run.lifecycle,
    sent: outcome.sent,
    acked: outcome.acked,
    stored: outcome.stored,
    consumed: outcome.effects,
    crashed: outcome.crashed,
  };
  const bySubscription = run.ordered ? checkSubscriptions({ ...history, storedBySubscription: outcome.storedBySubscription }) : undefined;
  const subscriptions = Object.keys(bySubscription ?? {});
  const checks = bySubscription ? Object.values(bySubscription) : [checkDeliveries(history)];
  const broken: string[] = [];
  const none = (what: string, keys: string[]) =>
    keys.length > 0 && broken.push(`${what}: ${keys.length} (${keys.slice(0, 5).join(', ')}${keys.length > 5 ? ', …' : ''})`);
  if (checks.every((c) => c.stored === 0)) broken.push('the broker stored nothing: no guarantee was put to the test');
  if (!outcome.drainedWithin) broken.push(`the last consumers did not empty the topic within ${DRAIN_LIMIT_MS / 1000} s`);
  if (run.lifecycle === 'at-most-once') {
    // Never twice, and lost only what a killed process held: a consumer's leased batch, or a producer's unsent queue.
    const bounds = atMostOnceBounds(outcome);
    none('leased twice', bounds.leasedTwice);
    none('lost though no killed process held them', bounds.lostUnexplained);
    none('sent by a producer that finished, never stored', bounds.neverStored);
    // A lease nobody reported was taken by a consumer killed before it could say: at most one batch (10) per kill.
    if (bounds.lostUnreported.length > 10 * outcome.killedConsumers) none('lost beyond what killed consumers could hold', bounds.lostUnreported);
  } else {
    // The durable semantics lose nothing the broker stored, acked or not (the runs never dead-letter).
    for (const c of checks) none('stored, never consumed', c.keys.lostStored);
  }
  const verdicts = checks.map((c) => guaranteeHeld(run.lifecycle, c));
  verdicts.forEach((v, i) => v.held || broken.unshift(`broke ${subscriptions[i] ? `${subscriptions[i]}: ` : ''}${v.rule}`));
  return { checks, subscriptions, verdicts, broken };
}

function render(r: ProveResult, o: ProveOptions): string {
  const all: Array<[string, (row: ProveRow) => string | number, boolean]> = [
    ['run', (row) => row.run, false],
    ['kills', (row) => row.kills, true],
    ['sent', (row) => row.sent, true],
    ['acked', (row) => row.acked, true],
    ['stored', (row) => row.stored, true],
    ['delivered', (row) => row.delivered, true],
    ['lost', (row) => row.lost, true],
    ['duplicated', (row) => row.duplicated, true],
    ['out of order', (row) => row.outOfOrder ?? '', true],
    ['seconds', (row) => row.seconds, true],
  ];
  const columns = r.rows.some((row) => row.outOfOrder !== undefined) ? all : all.filter(([h]) => h !== 'out of order');
  const cells = r.rows.map((row) => columns.map(([, f]) => String(f(row))));
  const verdicts = r.rows.flatMap((row) => [
    `${row.held ? '✓ held  ' : '✗ BROKEN'} ${row.run}${row.run === row.lifecycle ? '' : ` (${row.lifecycle})`}: ${row.rule}`,
    ...row.broken.map((b) => `           ${b}`),
  ]);
  return [
    '',
    `${r.messages} messages per run on ${r.target}, ${o.kills}+ SIGKILLs each, ${Math.round(o.lostAcks * 100)}% of acks lost, seed ${r.seed} (replay with --seed ${r.seed})`,
    '',
    table(
      columns.map(([h]) => h),
      cells,
      columns.map(([, , right]) => right),
    ),
    '',
    ...verdicts,
    '',
    r.held
      ? 'Every guarantee held on this database.'
      : 'A guarantee broke on this database: the lines marked BROKEN say which messages. Replay with the same --seed.',
  ].join('\n');
}
