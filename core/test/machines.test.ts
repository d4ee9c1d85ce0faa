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
  lifecycleTables,
  type Lifecycle,
  type LifecycleEvent,
  type LifecycleEventType,
} from '../src/index.js';

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
  ],
  'exactly-once/broker': [
    'sent STORE stored',
    'stored LEASE leased',
    'leased CONSUME consumed',
    'leased EXPIRE stored [deliveriesLeft]',
    'leased NACK stored [deliveriesLeft]',
    'leased DEAD dead [deliveriesExhausted]',
    'consumed DELETE deleted',
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
      LIFECYCLE_EVENTS.flatMap((event) =>
        table.rulesFor(from, event).map((r) => `${from} ${event} ${r.target}${r.guard ? ` [${r.guard}]` : ''}`),
      ),
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

  it('keeps transition() off the hot path: only machine files import from xstate at run time', () => {
    const src = fileURLToPath(new URL('../src', import.meta.url));
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const importers = files.filter((f) => /from 'xstate'/.test(readFileSync(join(src, f), 'utf8').replace(/import type[^;]+;/g, '')));
    expect(importers.length).toBe(4);
    expect(importers.every((f) => f.startsWith('machines'))).toBe(true);
  });
});
