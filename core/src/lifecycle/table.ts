import { IllegalTransitionError } from '../errors.js';
import { LIFECYCLES, type Lifecycle, type LifecycleEvent, type LifecycleEventType, type MessageState } from './names.js';
import { lifecycleMachines, type LifecycleMachine } from './machines/index.js';

type Guard = (args: { event: LifecycleEvent }) => boolean;

/** One allowed transition out of a state: a target and, if any, the named guard that must pass. */
export interface TransitionRule {
  readonly target: MessageState;
  readonly guard?: string;
}

/** One step of a walk: the event taken and the state it led to. */
export interface TransitionStep {
  readonly from: MessageState;
  readonly event: LifecycleEventType;
  readonly to: MessageState;
}

/**
 * A lifecycle machine flattened into lookups, so the per-message path costs a map read,
 * not an XState `transition()`. Built from the machine at start-up; a test proves them equal.
 */
export class TransitionTable {
  /** The state a message waits in until it is leased. */
  readonly readyState: MessageState;
  /** The state a message is persisted in once the producer's send is done (after STORE, and ACK if acked). */
  readonly storedState: MessageState;
  /** The events that take a message from `sent` to `storedState`. */
  readonly storeEvents: readonly LifecycleEventType[];

  constructor(
    readonly lifecycle: Lifecycle,
    private readonly rules: ReadonlyMap<MessageState, ReadonlyMap<LifecycleEventType, readonly TransitionRule[]>>,
    private readonly guards: Readonly<Record<string, Guard>>,
  ) {
    this.storeEvents = this.allows('stored', 'ACK') ? ['STORE', 'ACK'] : ['STORE'];
    this.storedState = this.walk('sent', this.storeEvents).at(-1)!.to;
    this.readyState = this.sourcesOf('LEASE')[0]!;
  }

  /** The states of this lifecycle. */
  get states(): MessageState[] {
    return [...this.rules.keys()];
  }

  /** The target of `event` from `from`, or undefined if the machine refuses it. */
  tryNext(from: MessageState, event: LifecycleEvent | LifecycleEventType): MessageState | undefined {
    const e = typeof event === 'string' ? { type: event } : event;
    const candidates = this.rules.get(from)?.get(e.type);
    if (!candidates) return undefined;
    for (const rule of candidates) {
      if (!rule.guard || this.guards[rule.guard]!({ event: e })) return rule.target;
    }
    return undefined;
  }

  /** The target of `event` from `from`; throws `IllegalTransitionError` if the machine refuses it. */
  next(from: MessageState, event: LifecycleEvent | LifecycleEventType): MessageState {
    const to = this.tryNext(from, event);
    if (to === undefined) {
      throw new IllegalTransitionError(this.lifecycle, from, typeof event === 'string' ? event : event.type);
    }
    return to;
  }

  /** Applies events in order from `from`, returning each step; throws on the first refused one. */
  walk(from: MessageState, events: readonly (LifecycleEvent | LifecycleEventType)[]): TransitionStep[] {
    const steps: TransitionStep[] = [];
    let state = from;
    for (const event of events) {
      const to = this.next(state, event);
      steps.push({ from: state, event: typeof event === 'string' ? event : event.type, to });
      state = to;
    }
    return steps;
  }

  /** Whether some rule for `event` leaves `from`, whatever its guard says. */
  allows(from: MessageState, event: LifecycleEventType): boolean {
    return this.rules.get(from)?.has(event) ?? false;
  }

  /** The rules out of `from` for `event` (empty when refused). */
  rulesFor(from: MessageState, event: LifecycleEventType): readonly TransitionRule[] {
    return this.rules.get(from)?.get(event) ?? [];
  }

  /** The states from which `event` is allowed. */
  sourcesOf(event: LifecycleEventType): MessageState[] {
    return this.states.filter((s) => this.allows(s, event));
  }
}

/** Flattens a lifecycle machine's states, transitions and named guards into a `TransitionTable`. */
export function deriveTable(lifecycle: Lifecycle, machine: LifecycleMachine): TransitionTable {
  const rules = new Map<MessageState, Map<LifecycleEventType, TransitionRule[]>>();
  for (const [key, node] of Object.entries(machine.root.states)) {
    const byEvent = new Map<LifecycleEventType, TransitionRule[]>();
    for (const [event, defs] of node.transitions) {
      byEvent.set(
        event as LifecycleEventType,
        defs.map((d) => {
          const target = d.target?.[0]?.key as MessageState | undefined;
          if (!target || d.target!.length !== 1) throw new Error(`${lifecycle}: ${key} -${event}-> needs one target`);
          const guard = d.guard === undefined ? undefined : typeof d.guard === 'string' ? d.guard : undefined;
          if (d.guard !== undefined && guard === undefined) throw new Error(`${lifecycle}: guards must be named`);
          return guard ? { target, guard } : { target };
        }),
      );
    }
    rules.set(key as MessageState, byEvent);
  }
  return new TransitionTable(lifecycle, rules, machine.implementations.guards as unknown as Record<string, Guard>);
}

/** The derived table of every lifecycle, built once when the module loads. */
export const lifecycleTables: Readonly<Record<Lifecycle, TransitionTable>> = Object.fromEntries(
  LIFECYCLES.map((l) => [l, deriveTable(l, lifecycleMachines[l])]),
) as Record<Lifecycle, TransitionTable>;
