import type { MessageState } from '../lifecycle/names.js';
import type { LifecyclePlan } from '../lifecycle/plan.js';

/** How a topic's subscriptions hand out messages that carry an ordering key. */
export const ORDERINGS = ['none', 'key', 'key-strict'] as const;

/**
 * `none`: keys are data, messages go out in any order. `key`: one message of a key at a time, in store order, per
 * subscription; a dead-lettered message lets its key go on. `key-strict`: as `key`, but a dead message holds its
 * key until it is redriven (or dropped), as pg-boss's `key_strict_fifo` does.
 */
export type Ordering = (typeof ORDERINGS)[number];

/** What a lease does with keys, chosen once from the topic's declaration, beside its producer and delivery strategies. */
export interface LeasePolicy {
  readonly ordering: Ordering;
  /** The states in which an earlier message of a key holds the key; undefined when keys are not ordered. */
  readonly keyHeldIn?: readonly MessageState[];
  /** Whether a message that leaves those states may free a later one of its key, so consumers should look again. */
  readonly freesKeys: boolean;
}

/**
 * The lease policy of an ordering on a lifecycle: a key is held by a message waiting, leased, or backing off after a
 * nack (and, under `key-strict`, dead), so the next is handed out only once the one before is settled.
 */
export function leasePolicy(plan: LifecyclePlan, ordering: Ordering): LeasePolicy {
  if (ordering === 'none') return { ordering, freesKeys: false };
  const held = new Set<MessageState>([plan.ready, plan.leased]);
  if (plan.retry !== undefined) held.add(plan.retry);
  if (ordering === 'key-strict' && plan.dead !== undefined) held.add(plan.dead);
  return { ordering, keyHeldIn: [...held], freesKeys: true };
}
