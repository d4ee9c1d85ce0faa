import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transition, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import {
  IllegalTransitionError,
  LIFECYCLE_EVENTS,
  LIFECYCLES,
  MESSAGE_STATES,
  lifecycleMachines,
  lifecycleOf,
  lifecycleTables,
  semanticOf,
  type Lifecycle,
  type LifecycleEvent,
  type LifecycleEventType,
} from '../src/index.js';
import { lifecyclePlans } from '../src/adapter.js';

/** The design's lifecycle tables, written out: `from EVENT to [guard]`. */
const DESIGN: Record<Lifecycle, string[]> = {
  'at-most-once': ['sent STORE stored', 'stored LEASE leased', 'leased DELETE deleted', 'deleted CONSUME consumed'],
  'at-least-once': [
    'sent STORE stored',
    'stored ACK acked',
    'acked LEASE leased',
    'leased CONSUME consumed',
    'leased EXPIRE acked [deliveriesLeft]',
    'leased NACK acked [deliveriesLeft]',
    'leased DEAD dead [deliveriesExhausted]',
    'consumed DELETE deleted',
    'dead REDRIVE acked',
  ],
  'exactly-once/broker': [
    'sent STORE stored',
    'stored LEASE leased',
    'leased CONSUME consumed',
    'leased EXPIRE stored [deliveriesLeft]',
    'leased NACK stored [deliveriesLeft]',
    'leased DEAD dead [deliveriesExhausted]',
    'consumed DELETE deleted',
    'dead REDRIVE stored',
  ],
  'exactly-once/end-to-end': [
    'sent STORE stored [notDuplicate]',
    'stored ACK acked',
    'acked LEASE leased',
    'leased CONSUME consumed',
    'leased EXPIRE acked [deliveriesLeft]',
    'leased NACK acked [deliveriesLeft]',
    'leased DEAD dead [deliveriesExhausted]',
    'consumed DELETE deleted',
    'dead REDRIVE acked',
  ],
};

/** Each event once per guard outcome: the facts that make its guard pass, and those that make it fail. */
function variants(type: LifecycleEventType): LifecycleEvent[] {
  switch (type) {
    case 'STORE':
      return [{ type }, { type, duplicate: true }];
    case 'EXPIRE':
    case 'NACK':
    case 'DEAD':
      return [
        { type, deliveries: 1, maxDeliveries: 3 },
        { type, deliveries: 3, maxDeliveries: 3 },
        { type, deliveries: 4, maxDeliveries: 3 },
      ];
    default:
      return [{ type }];
  }
}
const ALL_EVENTS = LIFECYCLE_EVENTS.flatMap(variants);

function snapshotIn(lifecycle: Lifecycle, state: string): AnyMachineSnapshot {
  return lifecycleMachines[lifecycle].resolveState({ value: state, context: {} }) as AnyMachineSnapshot;
}

/** What XState's pure `transition()` says: the new state, or undefined if the event is refused. */
function machineNext(lifecycle: Lifecycle, state: string, event: LifecycleEvent): string | undefined {
  const before = snapshotIn(lifecycle, state);
  const [after] = transition(lifecycleMachines[lifecycle] as never, before as never, event as never) as [AnyMachineSnapshot, unknown];
  return after === before ? undefined : String(after.value);
}

describe.each(LIFECYCLES)('%s lifecycle', (lifecycle) => {
  const machine = lifecycleMachines[lifecycle];
  const table = lifecycleTables[lifecycle];

  it('has exactly the transitions of the design table', () => {
    const edges = table.states.flatMap((from) =>
      LIFECYCLE_EVENTS.flatMap((event) => table.rulesFor(from, event).map((r) => `${from} ${event} ${r.target}${r.guard ? ` [${r.guard}]` : ''}`)),
    );
    expect(edges.sort()).toEqual([...DESIGN[lifecycle]].sort());
  });

  it('walks every simple path the same way in the machine and in the table', () => {
    const paths = getSimplePaths(machine as AnyStateMachine, { events: ALL_EVENTS });
    expect(paths.length).toBeGreaterThanOrEqual(table.states.length);
    for (const path of paths) {
      const events = path.steps.slice(1).map((s) => s.event as LifecycleEvent);
      const walked = table.walk('sent', events);
      expect(walked.map((s) => s.to)).toEqual(path.steps.slice(1).map((s) => String(s.state.value)));
    }
  });

  it('takes every allowed transition from a reachable state, and refuses every other pair', () => {
    const reachable = getShortestPaths(machine as AnyStateMachine, { events: ALL_EVENTS }).map((p) => String(p.state.value));
    expect(new Set(reachable)).toEqual(new Set(table.states));
    let taken = 0;
    let refused = 0;
    for (const state of MESSAGE_STATES) {
      for (const event of ALL_EVENTS) {
        if (!table.states.includes(state)) {
          expect(() => table.next(state, event)).toThrow(IllegalTransitionError);
          refused++;
          continue;
        }
        const expected = machineNext(lifecycle, state, event);
        if (expected === undefined) {
          const error = (() => {
            try {
              table.next(state, event);
            } catch (e) {
              return e;
            }
          })();
          expect(error).toBeInstanceOf(IllegalTransitionError);
          expect((error as IllegalTransitionError).code).toBe('ILLEGAL_TRANSITION');
          refused++;
        } else {
          expect(table.next(state, event)).toBe(expected);
          taken++;
        }
      }
    }
    const guardedEdges = DESIGN[lifecycle].length;
    expect(taken).toBeGreaterThanOrEqual(guardedEdges);
    expect(refused).toBeGreaterThan(0);
  });

  it('stores into the state its consumers lease from', () => {
    expect(table.tryNext(table.storedState, 'LEASE')).toBe('leased');
    expect(table.readyState).toBe(table.storedState);
  });
});

/**
 * Each lifecycle's full table, written out by hand: one row per state (in `MESSAGE_STATES` order), one column
 * per event and guard outcome, each cell the target or `.` for a refusal. Nothing here is computed from the
 * guards, so a wrong guard changes the machine and the derived table alike and still fails these tests.
 */
const COLUMNS: Array<[string, LifecycleEvent]> = [
  ['STORE', { type: 'STORE' }],
  ['STORE duplicate', { type: 'STORE', duplicate: true }],
  ['ACK', { type: 'ACK' }],
  ['LEASE', { type: 'LEASE' }],
  ['CONSUME', { type: 'CONSUME' }],
  ['DELETE', { type: 'DELETE' }],
  ['EXPIRE 2 of 3', { type: 'EXPIRE', deliveries: 2, maxDeliveries: 3 }],
  ['EXPIRE 3 of 3', { type: 'EXPIRE', deliveries: 3, maxDeliveries: 3 }],
  ['NACK 2 of 3', { type: 'NACK', deliveries: 2, maxDeliveries: 3 }],
  ['NACK 3 of 3', { type: 'NACK', deliveries: 3, maxDeliveries: 3 }],
  ['DEAD 2 of 3', { type: 'DEAD', deliveries: 2, maxDeliveries: 3 }],
  ['DEAD 3 of 3', { type: 'DEAD', deliveries: 3, maxDeliveries: 3 }],
  ['REDRIVE', { type: 'REDRIVE' }],
];

const FULL_TABLES: Record<Lifecycle, { states: string[]; rows: string }> = {
  'at-most-once': {
    states: ['sent', 'stored', 'leased', 'deleted', 'consumed'],
    //         STORE  dup    ACK    LEASE  CONSUME  DELETE  EXP2/3 EXP3/3 NACK2/3 NACK3/3 DEAD2/3 DEAD3/3 REDRIVE
    rows: `
      sent     stored stored .      .      .        .       .      .      .      .      .      .      .
      acked    .      .      .      .      .        .       .      .      .      .      .      .      .
      stored   .      .      .      leased .        .       .      .      .      .      .      .      .
      leased   .      .      .      .      .        deleted .      .      .      .      .      .      .
      consumed .      .      .      .      .        .       .      .      .      .      .      .      .
      deleted  .      .      .      .      consumed .       .      .      .      .      .      .      .
      dead     .      .      .      .      .        .       .      .      .      .      .      .      .`,
  },
  'at-least-once': {
    states: ['sent', 'stored', 'acked', 'leased', 'consumed', 'deleted', 'dead'],
    rows: `
      sent     stored stored .      .      .        .       .      .      .      .      .      .      .
      acked    .      .      .      leased .        .       .      .      .      .      .      .      .
      stored   .      .      acked  .      .        .       .      .      .      .      .      .      .
      leased   .      .      .      .      consumed .       acked  .      acked  .      .      dead   .
      consumed .      .      .      .      .        deleted .      .      .      .      .      .      .
      deleted  .      .      .      .      .        .       .      .      .      .      .      .      .
      dead     .      .      .      .      .        .       .      .      .      .      .      .      acked`,
  },
  'exactly-once/broker': {
    states: ['sent', 'stored', 'leased', 'consumed', 'deleted', 'dead'],
    rows: `
      sent     stored stored .      .      .        .       .      .      .      .      .      .      .
      acked    .      .      .      .      .        .       .      .      .      .      .      .      .
      stored   .      .      .      leased .        .       .      .      .      .      .      .      .
      leased   .      .      .      .      consumed .       stored .      stored .      .      dead   .
      consumed .      .      .      .      .        deleted .      .      .      .      .      .      .
      deleted  .      .      .      .      .        .       .      .      .      .      .      .      .
      dead     .      .      .      .      .        .       .      .      .      .      .      .      stored`,
  },
  'exactly-once/end-to-end': {
    states: ['sent', 'stored', 'acked', 'leased', 'consumed', 'deleted', 'dead'],
    rows: `
      sent     stored .      .      .      .        .       .      .      .      .      .      .      .
      acked    .      .      .      leased .        .       .      .      .      .      .      .      .
      stored   .      .      acked  .      .        .       .      .      .      .      .      .      .
      leased   .      .      .      .      consumed .       acked  .      acked  .      .      dead   .
      consumed .      .      .      .      .        deleted .      .      .      .      .      .      .
      deleted  .      .      .      .      .        .       .      .      .      .      .      .      .
      dead     .      .      .      .      .        .       .      .      .      .      .      .      acked`,
  },
};

/** The written-out table as `state -> column -> target` (undefined for a refusal). */
function writtenTable(lifecycle: Lifecycle): Map<string, Map<string, string | undefined>> {
  const rows = FULL_TABLES[lifecycle].rows
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/));
  return new Map(rows.map(([state, ...cells]) => [state!, new Map(COLUMNS.map(([name], i) => [name, cells[i] === '.' ? undefined : cells[i]]))]));
}

/** The state a redelivery returns a leased message to, as the design names it. */
const READY: Record<Exclude<Lifecycle, 'at-most-once'>, string> = {
  'at-least-once': 'acked',
  'exactly-once/broker': 'stored',
  'exactly-once/end-to-end': 'acked',
};

describe('each lifecycle matches its table written out by hand', () => {
  it.each(LIFECYCLES)('%s: every (state, event, guard outcome) leads where the written table says, in the table and in the machine', (lifecycle) => {
    const table = lifecycleTables[lifecycle];
    const written = writtenTable(lifecycle);
    expect([...written.keys()]).toEqual([...MESSAGE_STATES]);
    expect(table.states.sort()).toEqual([...FULL_TABLES[lifecycle].states].sort());
    for (const state of MESSAGE_STATES) {
      for (const [column, event] of COLUMNS) {
        const expected = written.get(state)!.get(column);
        const where = `${lifecycle}: ${state} ${column}`;
        expect(table.tryNext(state, event), where).toBe(expected);
        if (expected === undefined) expect(() => table.next(state, event), where).toThrow(IllegalTransitionError);
        if (table.states.includes(state)) expect(machineNext(lifecycle, state, event), where).toBe(expected);
      }
    }
  });
});

describe('guard boundaries, pinned to fixed delivery counts', () => {
  const redelivered = ['at-least-once', 'exactly-once/broker', 'exactly-once/end-to-end'] as const;

  // deliveries 1..maxDeliveries+1: a redelivery while deliveries < max, dead-lettering once deliveries >= max.
  const cases: Array<[maxDeliveries: number, deliveries: number, redelivers: boolean, dies: boolean]> = [
    [1, 1, false, true],
    [1, 2, false, true],
    [3, 1, true, false],
    [3, 2, true, false],
    [3, 3, false, true],
    [3, 4, false, true],
    [5, 1, true, false],
    [5, 2, true, false],
    [5, 3, true, false],
    [5, 4, true, false],
    [5, 5, false, true],
    [5, 6, false, true],
  ];

  describe.each(redelivered)('%s', (lifecycle) => {
    const table = lifecycleTables[lifecycle];
    const ready = READY[lifecycle];

    it.each(cases)('with maxDeliveries %i, delivery %i: EXPIRE and NACK redeliver = %s, DEAD = %s', (maxDeliveries, deliveries, redelivers, dies) => {
      for (const type of ['EXPIRE', 'NACK'] as const) {
        const event: LifecycleEvent = { type, deliveries, maxDeliveries };
        const expected = redelivers ? ready : undefined;
        expect(table.tryNext('leased', event), `${type} ${deliveries}/${maxDeliveries}`).toBe(expected);
        expect(machineNext(lifecycle, 'leased', event), `${type} ${deliveries}/${maxDeliveries}`).toBe(expected);
      }
      const dead: LifecycleEvent = { type: 'DEAD', deliveries, maxDeliveries };
      expect(table.tryNext('leased', dead), `DEAD ${deliveries}/${maxDeliveries}`).toBe(dies ? 'dead' : undefined);
      expect(machineNext(lifecycle, 'leased', dead), `DEAD ${deliveries}/${maxDeliveries}`).toBe(dies ? 'dead' : undefined);
    });
  });

  it.each([
    ['at-most-once', 'is stored'],
    ['at-least-once', 'is stored'],
    ['exactly-once/broker', 'is stored'],
    ['exactly-once/end-to-end', 'is refused'],
  ] as const)('%s: a STORE of an id the broker already holds %s (refused only end-to-end)', (lifecycle, outcome) => {
    const table = lifecycleTables[lifecycle];
    const expected = outcome === 'is stored' ? 'stored' : undefined;
    expect(table.tryNext('sent', { type: 'STORE', duplicate: true })).toBe(expected);
    expect(machineNext(lifecycle, 'sent', { type: 'STORE', duplicate: true })).toBe(expected);
    expect(table.tryNext('sent', { type: 'STORE', duplicate: false })).toBe('stored');
    expect(machineNext(lifecycle, 'sent', { type: 'STORE', duplicate: false })).toBe('stored');
  });
});

describe('transition table agrees with transition() for every (state, event, guard outcome)', () => {
  it.each(LIFECYCLES)('%s', (lifecycle) => {
    const table = lifecycleTables[lifecycle];
    let checked = 0;
    for (const state of table.states) {
      for (const event of ALL_EVENTS) {
        expect(table.tryNext(state, event), `${state} ${JSON.stringify(event)}`).toBe(machineNext(lifecycle, state, event));
        checked++;
      }
    }
    expect(checked).toBe(table.states.length * ALL_EVENTS.length);
  });

  it('keeps transition() off the per-message path: only the machine files and the consumer actor (per batch) import from xstate at run time', () => {
    const src = fileURLToPath(new URL('../src', import.meta.url));
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const importers = files.filter((f) => /from 'xstate'/.test(readFileSync(join(src, f), 'utf8').replace(/import type[^;]+;/g, '')));
    expect(importers.filter((f) => !f.startsWith('lifecycle/machines')).sort()).toEqual(['delivery/consumer-machine.ts', 'delivery/consumer.ts']);
    expect(importers.filter((f) => f.startsWith('lifecycle/machines'))).toHaveLength(4);
  });
});

describe('each lifecycle plan, written out by hand', () => {
  /** What delivery does per lifecycle, as the design describes it; the plans are read from the machines. */
  const PLANS: Record<Lifecycle, object> = {
    'at-most-once': {
      producer: 'fire-and-forget',
      delivery: 'remove-on-lease',
      dedup: false,
      stored: 'stored',
      ready: 'stored',
      leased: 'leased',
      retry: undefined,
      dead: undefined,
      consumed: undefined,
      removeOnLease: true,
      idempotent: false,
    },
    'at-least-once': {
      producer: 'retry-until-acked',
      delivery: 'ack-after-handler',
      dedup: false,
      stored: 'acked',
      ready: 'acked',
      leased: 'leased',
      retry: 'acked',
      dead: 'dead',
      consumed: 'consumed',
      removeOnLease: false,
      idempotent: false,
    },
    'exactly-once/broker': {
      producer: 'await-store',
      delivery: 'transactional-inbox',
      dedup: false,
      stored: 'stored',
      ready: 'stored',
      leased: 'leased',
      retry: 'stored',
      dead: 'dead',
      consumed: 'consumed',
      removeOnLease: false,
      idempotent: true,
    },
    'exactly-once/end-to-end': {
      producer: 'retry-until-acked',
      delivery: 'transactional-inbox',
      dedup: true,
      stored: 'acked',
      ready: 'acked',
      leased: 'leased',
      retry: 'acked',
      dead: 'dead',
      consumed: 'consumed',
      removeOnLease: false,
      idempotent: true,
    },
  };
  const STEPS: Record<Lifecycle, Record<string, string>> = {
    'at-most-once': {
      store: 'sent STORE stored',
      lease: 'stored LEASE leased, leased DELETE deleted',
      handled: 'deleted CONSUME consumed',
      consume: '',
      delete: '',
      redrive: '',
    },
    'at-least-once': {
      store: 'sent STORE stored, stored ACK acked',
      lease: 'acked LEASE leased',
      handled: 'leased CONSUME consumed, consumed DELETE deleted',
      consume: 'leased CONSUME consumed',
      delete: 'consumed DELETE deleted',
      redrive: 'dead REDRIVE acked',
    },
    'exactly-once/broker': {
      store: 'sent STORE stored',
      lease: 'stored LEASE leased',
      handled: 'leased CONSUME consumed, consumed DELETE deleted',
      consume: 'leased CONSUME consumed',
      delete: 'consumed DELETE deleted',
      redrive: 'dead REDRIVE stored',
    },
    'exactly-once/end-to-end': {
      store: 'sent STORE stored, stored ACK acked',
      lease: 'acked LEASE leased',
      handled: 'leased CONSUME consumed, consumed DELETE deleted',
      consume: 'leased CONSUME consumed',
      delete: 'consumed DELETE deleted',
      redrive: 'dead REDRIVE acked',
    },
  };

  it.each(LIFECYCLES)('%s: its plan says what the design says', (lifecycle) => {
    const { lifecycle: name, table, steps, ...plan } = lifecyclePlans[lifecycle];
    expect(name).toBe(lifecycle);
    expect(table).toBe(lifecycleTables[lifecycle]);
    expect(plan).toEqual(PLANS[lifecycle]);
    expect(Object.fromEntries(Object.entries(steps).map(([k, path]) => [k, path.map((s) => `${s.from} ${s.event} ${s.to}`).join(', ')]))).toEqual(
      STEPS[lifecycle],
    );
  });

  it.each(LIFECYCLES)('%s: semanticOf gives back what lifecycleOf takes', (lifecycle) => {
    const { semantic, scope } = semanticOf(lifecycle);
    expect(lifecycleOf(semantic, scope)).toBe(lifecycle);
  });

  it('keeps lifecycle names out of delivery: only the lifecycle module and the options name them', () => {
    const src = fileURLToPath(new URL('../src', import.meta.url));
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.startsWith('lifecycle/machines'));
    const naming = files.filter((f) => /'(at-most-once|at-least-once|exactly-once\/(broker|end-to-end))'/.test(readFileSync(join(src, f), 'utf8')));
    expect(naming.sort()).toEqual(['lifecycle/names.ts', 'options.ts', 'tidings.ts']);
  });
});
