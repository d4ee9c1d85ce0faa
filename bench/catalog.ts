// Every scenario of `npm run bench`, by name, with the row it is compared with.
import type { Semantic, TidingsPlugin } from '@tidings/core';
import { RAW, baselines } from './baselines.js';
import type { BenchContext } from './context.js';
import { backlogScenario, consumerProcesses, secondProcessFixedRate } from './processes.js';
import type { Measured, System } from './rows.js';
import { batches, concurrentSends, fixedRate, singleSends, type StoreKind } from './scenarios.js';
import { fannedOutBatches } from './fan-out.js';

/** A scenario: how to run it once, and what its messages/s are divided by. */
export interface Scenario {
  name: string;
  system: System;
  /** Name of the scenario it is compared with; for a fixed rate, the schedule (its ratio is achieved ÷ scheduled). */
  baseline?: string;
  run(ctx: BenchContext): Promise<Measured>;
}

export const SEMANTICS: readonly Semantic[] = ['at-most-once', 'at-least-once', 'exactly-once'];

/** How a semantic appears in a row name: exactly-once always runs end to end, with producer ids. */
export const semanticLabel = (s: Semantic) => (s === 'exactly-once' ? 'exactly-once e2e' : s);

/** Row names, shared by the bench, the peers and the targets. */
export const names = {
  batches: (s: Semantic, store: StoreKind, concurrency: number) => `${semanticLabel(s)}, ${store}, batches of 100, concurrency ${concurrency}`,
  single: (s: Semantic, store: StoreKind) => `${semanticLabel(s)}, ${store}, one awaited send at a time`,
  concurrent: (s: Semantic, store: StoreKind) => `${semanticLabel(s)}, ${store}, 50 concurrent senders`,
  fixedRate: (s: Semantic, store: StoreKind) => `${semanticLabel(s)}, ${store}, 1,000 sends/s, send to handler start`,
  secondProcess: (s: Semantic) => `${semanticLabel(s)}, SQLite file, 1,000 sends/s, consumer in a second process`,
  processes: (s: Semantic, store: StoreKind, n: number) =>
    `${semanticLabel(s)}, ${store}, ${n} consumer process${n === 1 ? '' : 'es'}, batches of 100, concurrency 50 each`,
  batchHandler: (s: Semantic, store: StoreKind) => `${semanticLabel(s)}, ${store}, a batch handler, batches of 100`,
  backlog: 'at-least-once, SQLite file, backlog (stored in batches of 10,000)',
  plugin: 'at-least-once, memory, batches of 100, concurrency 1, a pass-through plugin',
  ordered: (s: Semantic, store: StoreKind) => `${semanticLabel(s)}, ${store}, ordered by 1,000 keys, batches of 100, concurrency 50`,
  fannedOut: (s: Semantic, store: StoreKind) => `${semanticLabel(s)}, ${store}, 3 subscriptions, batches of 100, concurrency 50 each (summed)`,
  schedule: 'the schedule (1,000 sends/s)',
};

const batchBaseline: Record<StoreKind, string> = { 'SQLite file': RAW.sqliteBatches, memory: RAW.memoryBatches, PostgreSQL: RAW.pgBatches };
const singleBaseline = (store: StoreKind) => (store === 'PostgreSQL' ? RAW.pgSingle : RAW.sqliteSingle);
const passThrough: TidingsPlugin = { name: 'pass', send: (_c, next) => next(), handle: (_c, next) => next() };

/** The scenarios in the order they run; a baseline runs just before the first scenario compared with it. */
export function catalog(): Scenario[] {
  const list: Scenario[] = Object.entries(baselines).map(([name, run]) => ({ name, system: 'raw', run }));
  const stores: StoreKind[] = ['SQLite file', 'memory', 'PostgreSQL'];
  for (const store of stores) {
    for (const semantic of SEMANTICS) {
      for (const c of [1, 50])
        list.push({
          name: names.batches(semantic, store, c),
          system: 'tidings',
          baseline: batchBaseline[store],
          run: (ctx) => batches(ctx, store, semantic, c),
        });
    }
  }
  list.push({
    name: names.plugin,
    system: 'tidings',
    baseline: names.batches('at-least-once', 'memory', 1),
    run: (ctx) => batches(ctx, 'memory', 'at-least-once', 1, { plugins: [passThrough] }),
  });
  // Each shape is divided by the same semantic's unordered, one-subscription run on the same store.
  for (const store of ['SQLite file', 'PostgreSQL'] as const) {
    for (const semantic of ['at-least-once', 'exactly-once'] as const) {
      const plain = names.batches(semantic, store, 50);
      list.push({
        name: names.ordered(semantic, store),
        system: 'tidings',
        baseline: plain,
        run: (ctx) => batches(ctx, store, semantic, 50, { ordered: true }),
      });
      list.push({ name: names.fannedOut(semantic, store), system: 'tidings', baseline: plain, run: (ctx) => fannedOutBatches(ctx, store, semantic) });
      list.push({
        name: names.batchHandler(semantic, store),
        system: 'tidings',
        baseline: plain,
        run: (ctx) => batches(ctx, store, semantic, 50, { batchHandler: true }),
      });
    }
  }
  for (const store of ['SQLite file', 'PostgreSQL'] as const) {
    for (const semantic of SEMANTICS)
      list.push({ name: names.single(semantic, store), system: 'tidings', baseline: singleBaseline(store), run: (ctx) => singleSends(ctx, store, semantic) });
    for (const semantic of SEMANTICS)
      list.push({
        name: names.concurrent(semantic, store),
        system: 'tidings',
        baseline: singleBaseline(store),
        run: (ctx) => concurrentSends(ctx, store, semantic),
      });
    for (const semantic of SEMANTICS)
      list.push({ name: names.fixedRate(semantic, store), system: 'tidings', baseline: names.schedule, run: (ctx) => fixedRate(ctx, store, semantic) });
  }
  for (const semantic of SEMANTICS)
    list.push({ name: names.secondProcess(semantic), system: 'tidings', baseline: names.schedule, run: (ctx) => secondProcessFixedRate(ctx, semantic) });
  // Scale-out: each count of processes divided by one process on the same database.
  for (const [store, counts] of [
    ['PostgreSQL', [1, 2, 4]],
    ['SQLite file', [1, 2]],
  ] as const) {
    for (const semantic of ['at-least-once', 'exactly-once'] as const) {
      for (const n of counts) {
        const baseline = n === 1 ? batchBaseline[store] : names.processes(semantic, store, 1);
        list.push({ name: names.processes(semantic, store, n), system: 'tidings', baseline, run: (ctx) => consumerProcesses(ctx, store, semantic, n) });
      }
    }
  }
  list.push({ name: names.backlog, system: 'tidings', baseline: RAW.sqliteBulk, run: backlogScenario });
  return list;
}
