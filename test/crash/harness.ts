import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { seededRandom } from '@tidings/faults';

const root = fileURLToPath(new URL('../..', import.meta.url));
const worker = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** One crash run: a topic on a database, producers and consumers killed and restarted. */
export interface CrashScenario {
  /** A SQLite file path or a postgres:// URL. */
  db: string;
  config: 'at-most-once' | 'at-least-once' | 'exactly-once/broker' | 'exactly-once/end-to-end';
  messages: number;
  seed: number;
  /** Minimum SIGKILLs the parent sends. */
  kills: number;
  lostAckRate: number;
  /** Per-call probability of a crash point killing a worker from the inside. */
  crashRate: number;
  leaseMs?: number;
}

/** What the producers were told and what the consumers' effects recorded. */
export interface CrashOutcome {
  sent: string[];
  acked: string[];
  /** One entry per recorded effect, with the consumer incarnation that made it. */
  effects: Array<{ key: string; incarnation: number }>;
  /** Processes that died of SIGKILL: sent by the parent or raised by a crash point. */
  kills: number;
  /** Keys a consumer was handling when it was killed, without an effect from that incarnation. */
  crashed: Array<{ key: string; incarnation: number }>;
}

/** A worker process and the promise of how it ended. */
export interface Running {
  proc: ChildProcess;
  exited: Promise<NodeJS.Signals | number | null>;
}

/** Starts a worker process; `onLine` gets each line it prints. */
export function startWorker(args: string[], onLine: (line: string) => void): Running {
  const proc = spawn(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', worker, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
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

/** Creates the table consumers record their effects in. */
export async function prepareEffects(db: string): Promise<void> {
  const ddl = 'CREATE TABLE IF NOT EXISTS crash_effects (topic VARCHAR(200) NOT NULL, msg_key VARCHAR(200) NOT NULL, incarnation INTEGER NOT NULL)';
  if (db.startsWith('postgres')) {
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    await c.query(ddl);
    await c.end();
  } else {
    const d = new Database(db);
    d.exec(ddl);
    d.close();
  }
}

/** Every effect consumers recorded for a topic, with the incarnation that recorded it. */
export async function readEffects(db: string, topic: string): Promise<CrashOutcome['effects']> {
  const sql = 'SELECT msg_key AS key, incarnation FROM crash_effects WHERE topic = $1';
  if (db.startsWith('postgres')) {
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    const { rows } = await c.query(sql, [topic]);
    await c.end();
    return rows;
  }
  const d = new Database(db, { readonly: true });
  const rows = d.prepare(sql.replace('$1', '?')).all(topic) as CrashOutcome['effects'];
  d.close();
  return rows;
}

/** Runs producers and consumers in child processes, SIGKILLs them at seeded random moments, restarts them, then drains. */
export async function runCrashScenario(s: CrashScenario, topic: string): Promise<CrashOutcome> {
  const random = seededRandom(s.seed);
  const leaseMs = String(s.leaseMs ?? 300);
  const sent: string[] = [];
  const acked = new Set<string>();
  const sentSet = new Set<string>();
  let kills = 0;
  const touched: CrashOutcome['crashed'] = [];
  let next = 0;
  let produced = false;
  const common = ['--db', s.db, '--topic', topic, '--config', s.config, '--lease-ms', leaseMs];
  // Acked semantics resend what was never acked; the others move on, as their producers would.
  const resends = s.config === 'at-least-once' || s.config === 'exactly-once/end-to-end';
  for (let incarnation = 0; !produced || kills < s.kills; incarnation++) {
    let done = false;
    // Kill once this incarnation has made a seeded random amount of progress, so a slow machine still gets somewhere.
    const target = 5 + Math.floor(random() * 20);
    let progress = 0;
    let progressed!: () => void;
    const enough = new Promise<void>((r) => (progressed = r));
    const step = () => ++progress >= target && progressed();
    const producer = produced
      ? undefined
      : startWorker([...common, '--role', 'producer', '--from', String(next), '--to', String(s.messages), '--seed', String(s.seed * 1000 + incarnation), '--lost-acks', String(s.lostAckRate), '--crash-rate', String(s.crashRate)], (line) => {
          const [kind, key] = line.split(' ');
          if (kind === 'sent') {
            sent.push(key!);
            sentSet.add(key!);
            if (!resends) step();
          } else if (kind === 'acked') {
            acked.add(key!);
            if (resends) step();
          } else if (kind === 'done') {
            done = true;
            progressed();
          }
        });
    const handling = new Set<string>();
    const consumer = startWorker([...common, '--role', 'consumer', '--incarnation', String(incarnation), '--seed', String(s.seed * 1000 + 500 + incarnation), '--crash-rate', String(s.crashRate)], (line) => {
      const [kind, key] = line.split(' ');
      if (kind === 'handling') {
        handling.add(key!);
        if (produced) step();
      }
    });
    const died = Promise.race([producer?.exited, consumer.exited].filter(Boolean));
    await Promise.race([enough, died, new Promise((r) => setTimeout(r, 5_000))]);
    // Let the consumer run a little past the producer's moment, at a seeded offset.
    await new Promise((r) => setTimeout(r, random() * 200));
    for (const p of [producer, consumer]) {
      if (!p) continue;
      if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
      if ((await p.exited) === 'SIGKILL') kills++;
    }
    for (const key of handling) touched.push({ key, incarnation });
    if (done) produced = true;
    else {
      const keys = Array.from({ length: s.messages }, (_, n) => n);
      next = resends ? (keys.find((n) => !acked.has(`k-${n}`)) ?? s.messages) : (keys.find((n) => !sentSet.has(`k-${n}`)) ?? s.messages);
      if (next >= s.messages) produced = true;
    }
  }
  const drain = startWorker([...common, '--role', 'consumer', '--incarnation', '9999', '--drain'], () => {});
  const end = await drain.exited;
  if (end !== 0) throw new Error(`drain consumer ended with ${String(end)}`);
  const effects = await readEffects(s.db, topic);
  const finished = new Set(effects.map((e) => `${e.key}@${e.incarnation}`));
  const crashed = touched.filter((t) => !finished.has(`${t.key}@${t.incarnation}`));
  return { sent, acked: [...acked], effects, kills, crashed };
}
