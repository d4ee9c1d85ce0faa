// Per-message cost of single steps, in µs: the lifecycle table, an XState transition, serializing a payload, and
// each SQLite storage call in batches of 1,000. Where a change to the engine shows first.
import { transition } from 'xstate';
import { DEFAULT_SUBSCRIPTION, lifecycleMachines, lifecycleTables } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { payload } from './messages.js';
import { round } from './stats.js';

function perOp(fn: () => void, n = 100_000): number {
  for (let i = 0; i < 1000; i++) fn();
  const t = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t) * 1000) / n;
}

/** Each SQLite storage step on its own (the at-least-once path), µs per message in batches of 1,000. */
async function storageSteps(file: string): Promise<Record<string, number>> {
  const storage = sqliteStorage({ file });
  await storage.open();
  const spent = { store: 0, lease: 0, settle: 0 };
  const rounds = 10;
  const body = JSON.stringify(payload(0));
  try {
    for (let r = 0; r < rounds; r++) {
      const messages = Array.from({ length: 1000 }, (_, k) => ({ id: `s-${r}-${k}`, body, availableAt: 0 }));
      let t = performance.now();
      if (r === 0) await storage.declareSubscription({ topic: 'steps', name: DEFAULT_SUBSCRIPTION, maxDeliveries: 5, declaredAt: 0 });
      await storage.store({ topic: 'steps', state: 'acked', messages, now: 0 });
      spent.store += performance.now() - t;
      t = performance.now();
      const leased = await storage.lease({
        topic: 'steps',
        subscription: DEFAULT_SUBSCRIPTION,
        from: 'acked',
        to: 'leased',
        limit: 1000,
        now: 0,
        leaseUntil: 1,
        leaseToken: `t-${r}`,
        remove: false,
      });
      spent.lease += performance.now() - t;
      t = performance.now();
      await storage.settle({ topic: 'steps', subscription: DEFAULT_SUBSCRIPTION, from: 'leased', to: 'deleted', items: leased, remove: true, now: 0 });
      spent.settle += performance.now() - t;
    }
  } finally {
    await storage.close();
  }
  const perMessage = (ms: number) => (ms * 1000) / (rounds * 1000);
  return {
    'SQLite store (INSERT … SELECT json_each)': perMessage(spent.store),
    'SQLite lease (UPDATE … RETURNING)': perMessage(spent.lease),
    'SQLite settle (DELETE … json_each)': perMessage(spent.settle),
  };
}

/** The costs, µs per message or per call, rounded to 0.001. */
export async function stepCosts(file: string): Promise<Record<string, number>> {
  const table = lifecycleTables['at-least-once'];
  const machine = lifecycleMachines['at-least-once'];
  const leased = machine.resolveState({ value: 'leased', context: {} });
  const body = payload(0);
  const costs: Record<string, number> = {
    'table.next(leased, CONSUME)': perOp(() => table.next('leased', 'CONSUME')),
    'xstate transition(leased, CONSUME)': perOp(() => transition(machine, leased, { type: 'CONSUME' }), 20_000),
    'JSON.stringify 256-byte payload': perOp(() => JSON.stringify(body)),
    ...(await storageSteps(file)),
  };
  return Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, round(v, 3)]));
}
