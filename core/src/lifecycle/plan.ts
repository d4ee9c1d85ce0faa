import type { Lifecycle, LifecycleEventType, MessageState } from './names.js';
import { lifecycleMachines } from './machines/index.js';
import { lifecycleTables, type TransitionStep, type TransitionTable } from './table.js';

/** How a producer hands a message over: without waiting, waiting for the store, or retrying until acked. */
export type ProducerStrategy = 'fire-and-forget' | 'await-store' | 'retry-until-acked';

/** How a consumer settles a leased message: deleted at lease, acked after the handler, or in the handler's transaction. */
export type DeliveryStrategy = 'remove-on-lease' | 'ack-after-handler' | 'transactional-inbox';

/** What the machines say about delivery that their states and events do not show (`meta` of the machine). */
interface LifecycleMeta {
  /** The producer never waits for storage (nothing is promised if the message is lost). */
  producer?: 'fire-and-forget';
  /** The consumer records each consumed id in an idempotency store, in the handler's transaction. */
  consumer?: 'deduplicates';
}

/**
 * Everything delivery needs to know about one lifecycle, read once from its machine. Producers and consumers
 * follow the plan and never compare lifecycle or state names; the machine still decides every transition.
 */
export interface LifecyclePlan {
  readonly lifecycle: Lifecycle;
  readonly table: TransitionTable;
  readonly producer: ProducerStrategy;
  readonly delivery: DeliveryStrategy;
  /** The broker refuses a STORE of an id it holds inside the dedup window, so a retry must keep its ids. */
  readonly dedup: boolean;
  /** The state a sent message is stored in (after STORE, and ACK where the producer is acked). */
  readonly stored: MessageState;
  /** The state a message waits in until it is leased. */
  readonly ready: MessageState;
  /** The state a lease takes a message to. */
  readonly leased: MessageState;
  /** Where an expired or nacked lease goes while deliveries are left; undefined when leases never come back. */
  readonly retry?: MessageState;
  /** Where a message goes once its deliveries are used up; undefined when it cannot die. */
  readonly dead?: MessageState;
  /** Where a consumption puts a message before its delete (the transactional inbox's committed state). */
  readonly consumed?: MessageState;
  /** A lease deletes the message (before the handler runs). */
  readonly removeOnLease: boolean;
  /** Consumption needs an idempotency store. */
  readonly idempotent: boolean;
  /** The transitions each step emits. */
  readonly steps: {
    readonly store: readonly TransitionStep[];
    readonly lease: readonly TransitionStep[];
    /** A handled message: consumed (and deleted, unless the lease deleted it already). */
    readonly handled: readonly TransitionStep[];
    /** The transactional inbox's two halves: consume in the handler's transaction, then delete. */
    readonly consume: readonly TransitionStep[];
    readonly delete: readonly TransitionStep[];
    /** A dead message back for delivery, as a new lifecycle. */
    readonly redrive: readonly TransitionStep[];
  };
}

/** The one target of `event` from `from` whatever the guards say, or undefined if the machine has none. */
function targetOf(table: TransitionTable, from: MessageState, event: LifecycleEventType): MessageState | undefined {
  return table.rulesFor(from, event)[0]?.target;
}

/** Reads a lifecycle's plan from its derived table and its machine's `meta`. */
export function derivePlan(table: TransitionTable, meta: LifecycleMeta = {}): LifecyclePlan {
  const ready = table.readyState;
  const leased = table.next(ready, 'LEASE');
  const removeOnLease = table.allows(leased, 'DELETE');
  const consumed = removeOnLease ? undefined : targetOf(table, leased, 'CONSUME');
  const deduplicates = meta.consumer === 'deduplicates';
  const lease = table.walk(ready, removeOnLease ? ['LEASE', 'DELETE'] : ['LEASE']);
  const afterLease = lease.at(-1)!.to;
  const dead = targetOf(table, leased, 'DEAD');
  return {
    lifecycle: table.lifecycle,
    table,
    producer: table.storeEvents.includes('ACK') ? 'retry-until-acked' : meta.producer === 'fire-and-forget' ? 'fire-and-forget' : 'await-store',
    delivery: removeOnLease ? 'remove-on-lease' : deduplicates ? 'transactional-inbox' : 'ack-after-handler',
    dedup: table.tryNext('sent', { type: 'STORE', duplicate: true }) === undefined,
    stored: table.storedState,
    ready,
    leased,
    retry: targetOf(table, leased, 'EXPIRE'),
    dead,
    consumed,
    removeOnLease,
    idempotent: deduplicates,
    steps: {
      store: table.walk('sent', table.storeEvents),
      lease,
      handled: table.walk(afterLease, removeOnLease ? ['CONSUME'] : ['CONSUME', 'DELETE']),
      consume: consumed ? table.walk(leased, ['CONSUME']) : [],
      delete: consumed ? table.walk(consumed, ['DELETE']) : [],
      redrive: table.sourcesOf('REDRIVE').flatMap((from) => table.walk(from, ['REDRIVE'])),
    },
  };
}

/** The plan of every lifecycle, built once when the module loads. */
export const lifecyclePlans: Readonly<Record<Lifecycle, LifecyclePlan>> = Object.fromEntries(
  Object.entries(lifecycleTables).map(([lifecycle, table]) => [
    lifecycle,
    derivePlan(table, lifecycleMachines[lifecycle as Lifecycle].root.meta as LifecycleMeta),
  ]),
) as Record<Lifecycle, LifecyclePlan>;
