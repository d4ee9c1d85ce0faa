import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { EntityManager } from '@mikro-orm/knex';
import { MultiBar, Presets } from 'cli-progress';
import { InvalidOptionsError, LIFECYCLES, semanticOf, Tidings, type Lifecycle, type TopicOptions } from '@tidings/core';
import { decorateStorage, topicTotals } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { checkDeliveries, checkSubscriptions, guaranteeHeld, withFaults, type DeliveryCheck, type Effect, type FaultOptions } from '@tidings/faults';

/** What `tidings demo` passes on from its command line. */
export interface DemoOptions {
  /** Messages to send per semantic. */
  messages: number;
  /** Seed of the fault schedule, so a run replays. */
  seed: number;
  faults: 'none' | 'default' | 'heavy';
  json: boolean;
  /** Folder for the demo's files (default `.tidings/demo`). */
  dir?: string;
}

/** One semantic's outcome, as printed in the table and in `--json`. */
export interface DemoRow {
  /** The lifecycle, or for the ordered run `exactly-once, ordered` (its `lifecycle` says which). */
  semantic: string;
  lifecycle: Lifecycle;
  sent: number;
  acked: number;
  stored: number;
  delivered: number;
  lost: number;
  duplicated: number;
  deadLettered: number;
  messagesPerSecond: number;
  /** The ordered run: messages a handler started while an earlier one of their key was unsettled, over both subscriptions. */
  outOfOrder?: number;
  held: boolean;
  rule: string;
}

/** A run of the demo: one topic of a lifecycle, and for the ordered run its keys and subscriptions. */
interface Run {
  label: string;
  lifecycle: Lifecycle;
  topicOptions: TopicOptions;
  /** Subscriptions of an ordered run, each consumed on its own; messages carry one of `GROUPS` keys. */
  subscriptions?: string[];
}

/** Keys of the ordered run: message n has key g(n mod GROUPS), so each key's messages are spread through the run. */
const GROUPS = 10;

/** The four semantics side by side, then an ordered exactly-once topic with two subscriptions under the same faults. */
const RUNS: Run[] = [
  ...LIFECYCLES.map((l): Run => ({ label: l, lifecycle: l, topicOptions: semanticOf(l) })),
  {
    label: 'exactly-once, ordered',
    lifecycle: 'exactly-once/end-to-end',
    topicOptions: { semantic: 'exactly-once', ordering: 'key' },
    subscriptions: ['billing', 'shipping'],
  },
];

const CRASH_POINTS = ['after-lease-before-handler', 'after-handler-before-ack'] as const;
const crashes = (rate: number) => Object.fromEntries(CRASH_POINTS.map((p) => [p, rate]));

/** Fault levels: rates per storage call. In-process "crashes" abandon the work at the named point. */
const LEVELS: Record<DemoOptions['faults'], Omit<FaultOptions, 'seed'>> = {
  none: {},
  default: { lostAckRate: 0.2, duplicateSendRate: 0.05, delayRate: 0.05, delayMs: [1, 5], crash: crashes(0.02) },
  heavy: { lostAckRate: 0.4, duplicateSendRate: 0.1, delayRate: 0.1, delayMs: [1, 10], crash: crashes(0.05) },
};

const BATCH = 20;
const DEADLINE_MS = 25_000;

/** Runs the four semantics side by side under faults and reports what each guaranteed; resolves to the exit code. */
export async function runDemo(options: DemoOptions): Promise<number> {
  if (!Number.isInteger(options.messages) || options.messages < 1 || options.messages > 1_000_000) {
    throw new InvalidOptionsError(`--messages must be an integer from 1 to 1000000, got ${options.messages}.`);
  }
  if (!(options.faults in LEVELS)) throw new InvalidOptionsError(`--faults must be none, default or heavy, got ${String(options.faults)}.`);
  const dir = options.dir ?? join('.tidings', 'demo');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  // Live bars only on a terminal; piped output gets the table alone.
  const bars =
    options.json || !process.stderr.isTTY
      ? undefined
      : new MultiBar(
          { format: ' {label} [{bar}] {value}/{total} delivered', hideCursor: true, clearOnComplete: false, stream: process.stderr },
          Presets.shades_classic,
        );
  const rows = await Promise.all(
    RUNS.map((run, i) => {
      const total = options.messages * (run.subscriptions?.length ?? 1);
      const bar = bars?.create(total, 0, { label: run.label.padEnd(24) });
      return runOne(run, { ...options, seed: options.seed + i }, dir, (n) => bar?.update(Math.min(n, total)));
    }),
  );
  bars?.stop();

  if (options.json) {
    process.stdout.write(
      `${JSON.stringify(
        rows.map((r) => ({ ...r, seed: options.seed, faults: options.faults })),
        null,
        2,
      )}\n`,
    );
  } else {
    printTable(rows, options);
  }
  return rows.every((r) => r.held) ? 0 : 1;
}

/** One run: a producer and its consumers on their own SQLite file, with the storage wrapped in faults. */
async function runOne(run: Run, o: DemoOptions, dir: string, progress: (delivered: number) => void): Promise<DemoRow> {
  const { lifecycle, topicOptions, subscriptions } = run;
  const slug = run.label.replace(/\W+/g, '-');
  const inner = sqliteStorage({ file: join(dir, `${slug}.db`) });
  let stored = 0;
  // Counted below the faults: a store whose ack was lost still stored its messages.
  const counting = decorateStorage(inner, {
    async store(...args: Parameters<typeof inner.store>) {
      const results = await inner.store(...args);
      stored += results.filter((r) => !r.duplicate).length;
      return results;
    },
  });
  // A crash in this one process abandons the call at its point (the default kills the process).
  const faults: FaultOptions = { seed: o.seed, ...LEVELS[o.faults], onCrash: () => {} };
  // A producer that sends one message twice gets two deliveries from any broker that does not deduplicate;
  // at-most-once promises nothing about that, so its run leaves that fault out.
  if (lifecycle === 'at-most-once') faults.duplicateSendRate = 0;
  const storage = withFaults(counting, faults);
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
  const connection = inner.orm.em.getConnection();
  // `n` keeps the order effects were recorded in: the ordered run's checker reads it.
  await connection.execute(
    'CREATE TABLE IF NOT EXISTS demo_effects (n INTEGER PRIMARY KEY AUTOINCREMENT, msg_key TEXT NOT NULL, subscription TEXT NOT NULL, grp TEXT, position INTEGER, overtook INTEGER NOT NULL)',
  );

  const topic = tidings.topic<{ key: string; group?: string; position?: number }>(slug, {
    ...topicOptions,
    ...(subscriptions ? { subscriptions } : {}),
    leaseMs: 500,
    maxDeliveries: 10,
    deadLetter: `${slug}.dead`,
    backoff: { initialMs: 10, maxMs: 100 },
    ackTimeoutMs: 2_000,
    retry: { attempts: 50, initialMs: 5, maxMs: 50 },
  });
  let deadLettered = 0;
  let delivered = 0;
  tidings.events.on('deadLetter', (e) => e.topic === slug && deadLettered++);

  const exactlyOnce = topicOptions.semantic === 'exactly-once';
  const started = performance.now();
  // Whether a message of the same key stored before this one is still unsettled in this subscription, read from the
  // broker's own rows as the handler starts: what "out of order" means.
  const unsettledBefore = `SELECT COUNT(*) AS n FROM tidings_message e JOIN tidings_message m ON m.topic = e.topic AND m.subscription = e.subscription
    WHERE m.topic = ? AND m.subscription = ? AND m.id = ? AND e.ordering_key = m.ordering_key AND e.seq < m.seq`;
  const consumers = (subscriptions ?? [undefined]).map((name) =>
    (name ? topic.subscription(name) : topic).consume(
      async (m, ctx) => {
        // Exactly-once writes its effect in the message's transaction; the others write it, then ack.
        const em = ctx.em as EntityManager | undefined;
        const target = (em ?? (inner.orm.em as EntityManager)).getConnection();
        const trx = em?.getTransactionContext();
        const [row] = m.key === undefined ? [] : ((await target.execute(unsettledBefore, [slug, m.subscription, m.id], 'all', trx)) as Array<{ n: number }>);
        await target.execute(
          'INSERT INTO demo_effects (msg_key, subscription, grp, position, overtook) VALUES (?, ?, ?, ?, ?)',
          [m.payload.key, m.subscription, m.payload.group ?? null, m.payload.position ?? null, Number(row?.n ?? 0) > 0 ? 1 : 0],
          'run',
          trx,
        );
        progress(++delivered);
      },
      { concurrency: 4, batchSize: 10, pollMs: 20 },
    ),
  );

  const sent: string[] = [];
  const acked: string[] = [];
  for (let from = 0; from < o.messages; from += BATCH) {
    const keys = Array.from({ length: Math.min(BATCH, o.messages - from) }, (_, k) => `k-${from + k}`);
    sent.push(...keys);
    try {
      const n = (key: string) => Number(key.slice(2));
      await topic.sendMany(
        keys.map((key) => (subscriptions ? { key, group: `g${n(key) % GROUPS}`, position: Math.floor(n(key) / GROUPS) } : { key })),
        { ...(exactlyOnce ? { id: (p) => p.key } : {}), ...(subscriptions ? { key: (p) => p.group! } : {}) },
      );
      if (topicOptions.semantic !== 'at-most-once') acked.push(...keys);
    } catch {
      // Broker scope does not retry: the batch may or may not be stored, and that is its promise.
    }
  }

  // Done when nothing waits, is leased or half-consumed for a few looks in a row (or the deadline passes).
  for (let quiet = 0; quiet < 3 && performance.now() - started < DEADLINE_MS;) {
    await new Promise((r) => setTimeout(r, 100));
    const c = topicTotals(await inner.counts(slug))[slug] ?? {};
    quiet = (c.acked ?? 0) + (c.stored ?? 0) + (c.leased ?? 0) + (c.consumed ?? 0) === 0 ? quiet + 1 : 0;
  }
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(consumers.map((c) => c.stop()));
  type EffectRow = { msg_key: string; subscription: string; grp: string | null; position: number | null; overtook: number };
  const rows = (await connection.execute('SELECT msg_key, subscription, grp, position, overtook FROM demo_effects ORDER BY n')) as EffectRow[];
  await tidings.close();
  const effects = rows.map((r): Effect => {
    const e: Effect = { key: r.msg_key, incarnation: 0, subscription: r.subscription };
    return r.grp === null ? e : { ...e, orderingKey: r.grp, position: Number(r.position), overtook: r.overtook === 1 };
  });

  const history = {
    lifecycle,
    sent,
    acked,
    // Broker scope promises what was stored: acknowledged stores, and anything a consumer received.
    stored: lifecycle === 'exactly-once/broker' ? [...new Set([...acked, ...effects.map((e) => e.key)])] : undefined,
    consumed: effects,
  };
  // The ordered run is judged per subscription: each must get every message, once, in key order.
  const results: DeliveryCheck[] = subscriptions ? Object.values(checkSubscriptions(history)) : [checkDeliveries(history)];
  const verdicts = results.map((r) => guaranteeHeld(lifecycle, r));
  const sum = (f: (r: DeliveryCheck) => number) => results.reduce((a, r) => a + f(r), 0);
  const row: DemoRow = {
    semantic: run.label,
    lifecycle,
    sent: results[0]!.sent,
    acked: results[0]!.acked,
    stored,
    delivered: sum((r) => r.delivered),
    lost: sum((r) => (lifecycle === 'at-most-once' ? r.sent - r.distinct : lifecycle === 'exactly-once/broker' ? r.lostStored : r.lost)),
    duplicated: sum((r) => r.duplicated),
    deadLettered,
    messagesPerSecond: Math.round(sum((r) => r.delivered) / seconds),
    held: verdicts.every((v) => v.held),
    rule: subscriptions ? verdicts.map((v, i) => `${subscriptions[i]}: ${v.rule.slice(lifecycle.length + 2)}`).join('; ') : verdicts[0]!.rule,
  };
  if (subscriptions) row.outOfOrder = sum((r) => r.outOfOrder);
  return row;
}

function printTable(rows: DemoRow[], o: DemoOptions): void {
  const columns: Array<[string, (r: DemoRow) => string | number]> = [
    ['semantic', (r) => r.semantic],
    ['sent', (r) => r.sent],
    ['acked', (r) => r.acked],
    ['stored', (r) => r.stored],
    ['delivered', (r) => r.delivered],
    ['lost', (r) => r.lost],
    ['duplicated', (r) => r.duplicated],
    ['dead-lettered', (r) => r.deadLettered],
    ['out of order', (r) => r.outOfOrder ?? ''],
    ['msg/s', (r) => r.messagesPerSecond],
  ];
  const cells = [columns.map(([h]) => h), ...rows.map((r) => columns.map(([, f]) => String(f(r))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  const out = (s = '') => process.stdout.write(`${s}\n`);
  out();
  out(`${o.messages} messages per semantic, faults: ${o.faults}, seed ${o.seed} (replay with --seed ${o.seed})`);
  out();
  out(line(cells[0]!));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells.slice(1)) out(line(c));
  out();
  for (const r of rows)
    out(`${r.held ? '✓ held  ' : '✗ BROKEN'} ${r.semantic === r.lifecycle ? r.rule : `${r.semantic} (${r.lifecycle}, 2 subscriptions) ${r.rule}`}`);
  out();
  out('at-most-once may lose and at-least-once may duplicate; exactly-once does neither, and keeps each key in order in every subscription.');
}
