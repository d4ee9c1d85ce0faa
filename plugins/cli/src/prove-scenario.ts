import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { postgresStorage } from '@tidings/adapter-postgres';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { seededRandom, type Effect } from '@tidings/faults';

// Run from sources (tests, with the @tidings/source condition and tsx) the worker is a .ts file beside this one;
// built, it is dist/prove-worker.js beside every chunk.
const fromSource = import.meta.url.endsWith('.ts');
const worker = fileURLToPath(new URL(`./prove-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url));
const nodeArgs = fromSource ? ['--conditions=@tidings/source', '--import', 'tsx'] : [];

/** Where a crash run's processes keep their messages: a SQLite file, or a PostgreSQL database and a schema of the run's own. */
export interface ProveTarget {
  /** A SQLite file path or a postgres:// URL. */
  db: string;
  /** PostgreSQL: the schema every connection of the run uses (its search_path). */
  schema?: string;
}

/** How long the last consumers may take to empty a topic once the kills are over. */
export const DRAIN_LIMIT_MS = 120_000;

/** One crash run: a topic on a database, producers and consumers killed and restarted. */
export interface CrashScenario extends ProveTarget {
  config: 'at-most-once' | 'at-least-once' | 'exactly-once/broker' | 'exactly-once/end-to-end';
  messages: number;
  seed: number;
  /** Minimum SIGKILLs the parent sends. */
  kills: number;
  lostAckRate: number;
  /** Per-call probability of a crash point killing a worker from the inside. */
  crashRate: number;
  leaseMs?: number;
  /** Subscriptions the topic is declared with, each read by a consumer process of its own; without, one consumer of the default. */
  subscriptions?: string[];
  /** Messages carry ordering keys and the topic is declared `ordering: 'key'`. */
  ordered?: boolean;
  /** Consumers hand each leased batch to one batch handler call. */
  batch?: boolean;
}

/** What the producers were told, what the broker stored, and what the consumers' effects recorded. */
export interface CrashOutcome {
  sent: string[];
  acked: string[];
  /** Keys the broker stored, recorded by a database trigger on its message table: its own side, whatever the processes printed. */
  stored: string[];
  /** The same, by the subscription each copy was stored for. */
  storedBySubscription: Record<string, string[]>;
  /** Keys sent by a producer incarnation that ran to the end (never killed): each must have been stored. */
  sentByFinishedProducers: string[];
  /** At-most-once: each lease of a key, with the consumer incarnation that leased it. */
  leases: Array<{ key: string; incarnation: number }>;
  /** Consumer incarnations that were killed (every one but the final drain). */
  killedConsumers: number;
  /** Whether the last consumers emptied the topic within `DRAIN_LIMIT_MS`. */
  drainedWithin: boolean;
  /** One entry per recorded effect, in the order they were recorded, with the consumer incarnation that made it. */
  effects: Effect[];
  /** Processes that died of SIGKILL: sent by the parent or raised by a crash point. */
  kills: number;
  /** Keys a consumer was holding (leased or handling) when it was killed, without an effect from that incarnation. */
  crashed: Array<{ key: string; incarnation: number }>;
}

/** A worker process and the promise of how it ended. */
export interface Running {
  proc: ChildProcess;
  exited: Promise<NodeJS.Signals | number | null>;
}

/** Starts a crash-run worker process (see prove-worker.ts for its arguments); `onLine` gets each line it prints. */
export function startWorker(args: string[], onLine: (line: string) => void): Running {
  const proc = spawn(process.execPath, [...nodeArgs, worker, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let buffered = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    lines.forEach(onLine);
  });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    proc.on('exit', (code, signal) => {
      if (code !== 0 && code !== null) process.stderr.write(`worker ${args.join(' ')} exited ${code}: ${stderr}\n`);
      resolve(signal ?? code);
    }),
  );
  return { proc, exited };
}

/** The `--db` (and `--schema`) arguments a worker gets for a target. */
export function targetArgs(t: ProveTarget): string[] {
  return ['--db', t.db, ...(t.schema ? ['--schema', t.schema] : [])];
}

/** The storage of a target, as its workers open it. */
export function targetStorage(t: ProveTarget) {
  return t.db.startsWith('postgres') ? postgresStorage({ url: t.db, schema: t.schema }) : sqliteStorage({ file: t.db });
}

/** Runs statements on a SQLite file or a PostgreSQL URL (in the target's schema), returning the last one's rows. */
export async function query(t: ProveTarget, statements: string[], params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const db = t.db;
  if (db.startsWith('postgres')) {
    const c = new pg.Client({ connectionString: db, ...(t.schema ? { options: `-c search_path=${t.schema}` } : {}) });
    await c.connect();
    try {
      let rows: Record<string, unknown>[] = [];
      for (const sql of statements) rows = (await c.query(sql, sql.includes('$1') ? params : [])).rows;
      return rows;
    } finally {
      await c.end();
    }
  }
  // Through Tidings' own SQLite storage, so whichever driver the application installed (better-sqlite3 or sqlite3) runs them.
  const storage = sqliteStorage({ file: db });
  await storage.open();
  try {
    const connection = storage.orm.em.getConnection();
    let rows: Record<string, unknown>[] = [];
    for (const sql of statements) {
      const reads = /^\s*SELECT/i.test(sql);
      rows = (await connection.execute(sql.replace(/\$\d/g, '?'), sql.includes('$1') ? params : [], reads ? 'all' : 'run')) as Record<string, unknown>[];
    }
    return Array.isArray(rows) ? rows : [];
  } finally {
    await storage.close();
  }
}

/**
 * Creates Tidings' tables, the table consumers record their effects in, and a trigger that records every row
 * the broker inserts into its message table: what was stored, known from the broker's side.
 */
export async function prepareDatabase(t: ProveTarget): Promise<void> {
  const db = t.db;
  const storage = targetStorage(t);
  await storage.open();
  await storage.close();
  const tables = [
    // `n` numbers effects in the order they were recorded (committed, for SQLite's one writer at a time).
    `CREATE TABLE IF NOT EXISTS prove_effects (n ${db.startsWith('postgres') ? 'BIGSERIAL PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT'}, topic VARCHAR(200) NOT NULL,
       subscription VARCHAR(100) NOT NULL, msg_key VARCHAR(200) NOT NULL, incarnation INTEGER NOT NULL, grp VARCHAR(20) NULL, position INTEGER NULL, overtook INTEGER NOT NULL)`,
    'CREATE TABLE IF NOT EXISTS prove_stored (topic VARCHAR(200) NOT NULL, subscription VARCHAR(100) NOT NULL, id VARCHAR(200) NOT NULL, body TEXT NOT NULL)',
  ];
  const trigger = db.startsWith('postgres')
    ? [
        `CREATE OR REPLACE FUNCTION prove_record_stored() RETURNS trigger AS $fn$ BEGIN INSERT INTO prove_stored VALUES (NEW.topic, NEW.subscription, NEW.id, NEW.body); RETURN NEW; END $fn$ LANGUAGE plpgsql`,
        'CREATE OR REPLACE TRIGGER prove_stored_t AFTER INSERT ON tidings_message FOR EACH ROW EXECUTE FUNCTION prove_record_stored()',
      ]
    : [
        'CREATE TRIGGER IF NOT EXISTS prove_stored_t AFTER INSERT ON tidings_message BEGIN INSERT INTO prove_stored VALUES (NEW.topic, NEW.subscription, NEW.id, NEW.body); END',
      ];
  await query(t, [...tables, ...trigger]);
}

/** The keys (from the payload) of every message the broker stored in `topic`, by the subscription each copy was stored for. */
export async function readStored(t: ProveTarget, topic: string): Promise<Record<string, string[]>> {
  const rows = await query(t, ['SELECT subscription, body FROM prove_stored WHERE topic = $1'], [topic]);
  const out: Record<string, string[]> = {};
  for (const r of rows) (out[r.subscription as string] ??= []).push((JSON.parse(r.body as string) as { key: string }).key);
  return out;
}

/** Every effect consumers recorded for a topic, in the order they were recorded, with what its handler saw of order. */
export async function readEffects(t: ProveTarget, topic: string): Promise<Effect[]> {
  const rows = await query(
    t,
    ['SELECT subscription, msg_key AS key, incarnation, grp, position, overtook FROM prove_effects WHERE topic = $1 ORDER BY n'],
    [topic],
  );
  return rows.map((r) => {
    const e: Effect = { key: r.key as string, incarnation: Number(r.incarnation), subscription: r.subscription as string };
    if (r.grp != null) Object.assign(e, { orderingKey: r.grp as string, position: Number(r.position), overtook: Number(r.overtook) === 1 });
    return e;
  });
}

/** How far a crash run has come, for a progress bar. */
export interface CrashProgress {
  /** Keys the producers have had acked (fire-and-forget and broker scope: sent), of `messages`. */
  produced: number;
  kills: number;
  /** `draining` once the producers are done and the last consumers empty the topic. */
  phase: 'producing' | 'draining';
}

/**
 * Runs producers and consumers in child processes, SIGKILLs them at seeded random moments, restarts them, then drains.
 * `onProgress` hears of each step.
 */
export async function runCrashScenario(s: CrashScenario, topic: string, onProgress?: (p: CrashProgress) => void): Promise<CrashOutcome> {
  const random = seededRandom(s.seed);
  const leaseMs = String(s.leaseMs ?? 300);
  const sent: string[] = [];
  const acked = new Set<string>();
  const sentSet = new Set<string>();
  const sentByFinishedProducers: string[] = [];
  const leases: CrashOutcome['leases'] = [];
  let kills = 0;
  let killedConsumers = 0;
  const touched: CrashOutcome['crashed'] = [];
  let next = 0;
  let produced = false;
  const common = [
    ...targetArgs(s),
    ...['--topic', topic, '--config', s.config, '--lease-ms', leaseMs],
    ...(s.subscriptions ? ['--subscriptions', s.subscriptions.join(',')] : []),
    ...(s.ordered ? ['--ordered'] : []),
    ...(s.batch ? ['--batch'] : []),
  ];
  // One consumer process per subscription, each incarnation.
  const readers: Array<string | undefined> = s.subscriptions ?? [undefined];
  const as = (subscription?: string) => (subscription ? ['--subscription', subscription] : []);
  // Acked semantics resend what was never acked; the others move on, as their producers would.
  const resends = s.config === 'at-least-once' || s.config === 'exactly-once/end-to-end';
  const report = (phase: CrashProgress['phase']) => onProgress?.({ produced: resends ? acked.size : sentSet.size, kills, phase });
  for (let incarnation = 0; !produced || kills < s.kills; incarnation++) {
    let done = false;
    // Kill once this incarnation has made a seeded random amount of progress, so a slow machine still gets somewhere.
    const target = 5 + Math.floor(random() * 20);
    let progress = 0;
    let progressed!: () => void;
    const enough = new Promise<void>((r) => (progressed = r));
    const step = () => ++progress >= target && progressed();
    const sentHere: string[] = [];
    const producer = produced
      ? undefined
      : startWorker(
          [
            ...common,
            '--role',
            'producer',
            '--from',
            String(next),
            '--to',
            String(s.messages),
            '--seed',
            String(s.seed * 1000 + incarnation),
            '--lost-acks',
            String(s.lostAckRate),
            '--crash-rate',
            String(s.crashRate),
          ],
          (line) => {
            const [kind, key] = line.split(' ');
            if (kind === 'sent') {
              sent.push(key!);
              sentSet.add(key!);
              sentHere.push(key!);
              if (!resends) {
                step();
                report('producing');
              }
            } else if (kind === 'acked') {
              acked.add(key!);
              if (resends) {
                step();
                report('producing');
              }
            } else if (kind === 'done') {
              done = true;
              progressed();
            }
          },
        );
    // What this consumer incarnation held when it was killed: keys it was handling, and (at-most-once) its last
    // leased batch; an at-most-once consumer leases its next batch only once the previous one is handled.
    const held = new Set<string>();
    let lastBatch: string[] = [];
    const leased = (keys: string[]) => {
      lastBatch = keys;
      for (const key of keys) leases.push({ key, incarnation });
    };
    // At-most-once's first consumer dies right after its first leased batch, before handling it, so every run holds
    // a message that must never be handed out again; the run waits for that death (up to 60 s), not for progress.
    const holdingRun = s.config === 'at-most-once' && incarnation === 0;
    const killHolding = holdingRun ? ['--kill-holding', '1'] : [];
    const consumers = readers.map((subscription, i) =>
      startWorker(
        [
          ...common,
          ...as(subscription),
          '--role',
          'consumer',
          '--incarnation',
          String(incarnation),
          '--seed',
          String(s.seed * 1000 + 500 + incarnation + 100 * i),
          '--crash-rate',
          String(s.crashRate),
          ...killHolding,
        ],
        (line) => {
          const [kind, key, ids] = line.split(' ');
          if (kind === 'handling') {
            held.add(key!);
            if (produced) step();
          } else if (kind === 'leased') {
            leased(key!.split(','));
          } else if (kind === 'crash' && key === 'after-lease-before-handler' && s.config === 'at-most-once') {
            // The crash point fired before the lease was reported; at-most-once ids are the keys.
            leased(ids!.split(','));
          }
        },
      ),
    );
    const consumer = consumers[0]!;
    const died = Promise.race([producer?.exited, ...consumers.map((c) => c.exited)].filter(Boolean));
    // The 5 s without enough progress count from the first line the worker prints: on a loaded machine start-up
    // alone can take seconds, and a kill before any work only burns an incarnation.
    const started = new Promise<void>((resolve) => (producer ?? consumer).proc.stdout!.once('data', () => resolve()));
    await Promise.race(
      holdingRun ? [consumer.exited, new Promise((r) => setTimeout(r, 60_000))] : [enough, died, started.then(() => new Promise((r) => setTimeout(r, 5_000)))],
    );
    // Let the consumers run a little past the producer's moment, at a seeded offset.
    await new Promise((r) => setTimeout(r, random() * 200));
    for (const p of [producer, ...consumers]) {
      if (!p) continue;
      if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
      if ((await p.exited) === 'SIGKILL') kills++;
    }
    report('producing');
    killedConsumers++;
    for (const key of [...held, ...lastBatch]) touched.push({ key, incarnation });
    if (done) {
      produced = true;
      sentByFinishedProducers.push(...sentHere);
    } else {
      const keys = Array.from({ length: s.messages }, (_, n) => n);
      next = resends ? (keys.find((n) => !acked.has(`k-${n}`)) ?? s.messages) : (keys.find((n) => !sentSet.has(`k-${n}`)) ?? s.messages);
      if (next >= s.messages) produced = true;
    }
  }
  report('draining');
  const drains = readers.map((subscription) =>
    startWorker([...common, ...as(subscription), '--role', 'consumer', '--incarnation', '9999', '--drain'], (line) => {
      const [kind, key] = line.split(' ');
      if (kind === 'leased') for (const k of key!.split(',')) leases.push({ key: k, incarnation: 9999 });
    }),
  );
  // A broker that never settles what it hands out would keep the drain going for ever: stop it, and let the checker
  // count what is missing.
  const drainTimer = setTimeout(() => drains.forEach((d) => d.proc.kill('SIGKILL')), DRAIN_LIMIT_MS);
  const ends = await Promise.all(drains.map((d) => d.exited));
  clearTimeout(drainTimer);
  const drainedWithin = ends.every((end) => end === 0);
  if (!drainedWithin && !ends.includes('SIGKILL')) throw new Error(`drain consumer ended with ${ends.join(', ')}`);
  const effects = await readEffects(s, topic);
  const storedBySubscription = await readStored(s, topic);
  const stored = Object.values(storedBySubscription).flat();
  const finished = new Set(effects.map((e) => `${e.key}@${e.incarnation}`));
  const crashed = touched.filter((t) => !finished.has(`${t.key}@${t.incarnation}`));
  return { sent, acked: [...acked], stored, storedBySubscription, sentByFinishedProducers, leases, killedConsumers, drainedWithin, effects, kills, crashed };
}

/** What at-most-once may and may not do in a crash run, judged from the broker's records and the consumers' reports. */
export interface AtMostOnceBounds {
  /** Keys leased more than once: at-most-once never hands a message out twice. */
  leasedTwice: string[];
  /** Stored keys with no effect that no killed consumer held: lost without a crash to explain it. */
  lostUnexplained: string[];
  /** Stored keys with no effect and no lease any process reported (its holder died before it could say). */
  lostUnreported: string[];
  /** Keys a producer that ran to the end sent, but the broker never stored. */
  neverStored: string[];
}

/** Bounds at-most-once's losses by what crashed processes held; everything else stored must have been consumed, once. */
export function atMostOnceBounds(outcome: CrashOutcome): AtMostOnceBounds {
  const effects = new Set(outcome.effects.map((e) => e.key));
  const leaseCount = new Map<string, number>();
  for (const l of outcome.leases) leaseCount.set(l.key, (leaseCount.get(l.key) ?? 0) + 1);
  const heldByCrashed = new Set(outcome.crashed.map((c) => c.key));
  const lost = [...new Set(outcome.stored)].filter((k) => !effects.has(k));
  const stored = new Set(outcome.stored);
  return {
    leasedTwice: [...leaseCount].filter(([, n]) => n > 1).map(([k]) => k),
    lostUnexplained: lost.filter((k) => !heldByCrashed.has(k) && leaseCount.has(k)),
    lostUnreported: lost.filter((k) => !leaseCount.has(k)),
    neverStored: outcome.sentByFinishedProducers.filter((k) => !stored.has(k)),
  };
}
