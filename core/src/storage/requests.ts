import type { MessageState } from '../lifecycle/names.js';
import type { LifecyclePlan } from '../lifecycle/plan.js';
import type { TransitionStep } from '../lifecycle/table.js';
import type {
  BrowseRequest,
  DiscardRequest,
  ExpireRequest,
  ExtendLeaseRequest,
  LeaseRequest,
  NewMessage,
  PeekRequest,
  RedriveRequest,
  ReleaseRequest,
  RetryNowRequest,
  SettleItem,
  SettleRequest,
  StoreRequest,
} from './contract.js';

/** Which of a subscription's messages a page shows: waiting (due), delayed (due later: a retry's backoff, `delayMs`), leased, or dead. */
export const MESSAGE_VIEWS = ['waiting', 'delayed', 'leased', 'dead'] as const;
/** One of `MESSAGE_VIEWS`. */
export type MessageView = (typeof MESSAGE_VIEWS)[number];

/** What `browse` shows: a view, or one id or key in any state; a page after a cursor. */
export interface BrowseOptions {
  /** Required unless `id` or `key` is given. */
  view?: MessageView;
  /** Only the message with this id. */
  id?: string;
  /** Only messages with this ordering key. */
  key?: string;
  /** The `next` of the page before. */
  after?: string;
  /** Messages per page, 1 to 500 (default 50). */
  limit?: number;
}

/** A topic as the request builders see it: its name, its lifecycle's plan and its dedup window. */
export interface ProtocolTopic {
  readonly name: string;
  readonly plan: LifecyclePlan;
  readonly dedupWindowMs: number;
}

/** One subscription of a topic as the request builders see it: its delivery limit and how its lease treats keys. */
export interface ProtocolSubscription {
  readonly topic: ProtocolTopic;
  readonly name: string;
  readonly maxDeliveries: number;
  /** The states in which an earlier message of a key holds it (the lease policy's); undefined when unordered. */
  readonly keyHeldIn?: readonly MessageState[];
}

/** A path removes the row when the machine DELETEs the message on it. */
const removes = (steps: readonly TransitionStep[]): boolean => steps.some((s) => s.event === 'DELETE');

/**
 * Every request core makes of a storage adapter, built from the topic's plan: pure, so the ledger, the conformance
 * suite and tools all build the same requests, and the protocol is written down once.
 */
export const requests = {
  /** The producer's store: into the state STORE (and ACK) lead to, with a dedup window where the machine refuses duplicates. */
  store(t: ProtocolTopic, messages: NewMessage[], now: number): StoreRequest {
    return { topic: t.name, state: t.plan.stored, messages, now, dedupUntil: t.plan.dedup ? now + t.dedupWindowMs : undefined };
  },

  /** A consumer's lease along the plan's lease path (which, for at-most-once, ends the message), holding keys where the policy says. */
  lease(s: ProtocolSubscription, o: { limit: number; now: number; leaseMs: number; leaseToken: string }): LeaseRequest {
    const steps = s.topic.plan.steps.lease;
    const req: LeaseRequest = {
      topic: s.topic.name,
      subscription: s.name,
      from: steps[0]!.from,
      to: steps.at(-1)!.to,
      limit: o.limit,
      now: o.now,
      leaseUntil: o.now + o.leaseMs,
      leaseToken: o.leaseToken,
      remove: removes(steps),
    };
    if (s.keyHeldIn) req.keyHeldIn = s.keyHeldIn;
    return req;
  },

  /** A handler's `ctx.extendLease`. */
  extendLease(s: ProtocolSubscription, item: SettleItem, leaseUntil: number, now: number): ExtendLeaseRequest {
    return { topic: s.topic.name, subscription: s.name, state: s.topic.plan.leased, item: { id: item.id, leaseToken: item.leaseToken }, leaseUntil, now };
  },

  /** A compare-and-set along `steps`; only a message still leased takes its lease token into it. */
  settle(s: ProtocolSubscription, steps: readonly TransitionStep[], items: readonly SettleItem[], now: number): SettleRequest {
    const from = steps[0]!.from;
    const fromLease = from === s.topic.plan.leased;
    return {
      topic: s.topic.name,
      subscription: s.name,
      from,
      to: steps.at(-1)!.to,
      items: items.map((m) => (fromLease ? { id: m.id, leaseToken: m.leaseToken } : { id: m.id })),
      remove: removes(steps),
      now,
    };
  },

  /** Where a failed delivery goes: back by NACK while the machine allows it, else DEAD. */
  nackTarget(s: ProtocolSubscription, deliveries: number): { event: 'NACK' | 'DEAD'; to: MessageState } {
    const { plan } = s.topic;
    const facts = { deliveries, maxDeliveries: s.maxDeliveries };
    const retry = plan.table.tryNext(plan.leased, { type: 'NACK', ...facts });
    return retry ? { event: 'NACK', to: retry } : { event: 'DEAD', to: plan.table.next(plan.leased, { type: 'DEAD', ...facts }) };
  },

  /** Leased messages back to `to`, each available again at its own time. */
  release(s: ProtocolSubscription, to: MessageState, items: ReleaseRequest['items'], now: number): ReleaseRequest {
    return { topic: s.topic.name, subscription: s.name, from: s.topic.plan.leased, to, items, now };
  },

  /**
   * The sweep of expired leases: back for redelivery while deliveries are left, dead once used up (the machine's
   * `deliveriesLeft` and `deliveriesExhausted` guards, as a range of deliveries). None for a lifecycle whose leases never come back.
   */
  expire(s: ProtocolSubscription, now: number): { requeue?: ExpireRequest; dead?: ExpireRequest } {
    const { plan } = s.topic;
    const where = { topic: s.topic.name, subscription: s.name, from: plan.leased, now };
    return {
      requeue: plan.retry === undefined ? undefined : { ...where, to: plan.retry, deliveries: { below: s.maxDeliveries } },
      dead: plan.dead === undefined ? undefined : { ...where, to: plan.dead, deliveries: { atLeast: s.maxDeliveries } },
    };
  },

  /** Dead messages back along the machine's REDRIVE; undefined for a lifecycle whose messages never die. */
  redrive(s: ProtocolSubscription, ids: string[] | undefined, now: number): RedriveRequest | undefined {
    const steps = s.topic.plan.steps.redrive;
    if (steps.length === 0) return undefined;
    return { topic: s.topic.name, subscription: s.name, from: steps[0]!.from, to: steps.at(-1)!.to, ids, now };
  },

  /**
   * A page of an operator's view: waiting and delayed are the ready state split at `now`; undefined for a view the
   * lifecycle has no state for (at-most-once keeps no leased or dead copies).
   */
  browse(s: ProtocolSubscription, o: BrowseOptions & { limit: number }, now: number): BrowseRequest | undefined {
    const { plan } = s.topic;
    const req: BrowseRequest = { topic: s.topic.name, subscription: s.name, limit: o.limit };
    if (o.view !== undefined) {
      const state = { waiting: plan.ready, delayed: plan.ready, leased: plan.removeOnLease ? undefined : plan.leased, dead: plan.dead }[o.view];
      if (state === undefined) return undefined;
      req.state = state;
      if (o.view === 'waiting' || o.view === 'delayed') req.due = { now, later: o.view === 'delayed' };
    }
    if (o.id !== undefined) req.id = o.id;
    if (o.key !== undefined) req.key = o.key;
    if (o.after !== undefined) req.after = o.after;
    return req;
  },

  /** Emptying a queue: every ready copy, due or delayed. */
  empty(s: ProtocolSubscription): DiscardRequest {
    return { topic: s.topic.name, subscription: s.name, state: s.topic.plan.ready };
  },

  /** Discarding dead letters, all or some; undefined for a lifecycle whose messages never die. */
  discardDead(s: ProtocolSubscription, ids: string[] | undefined): DiscardRequest | undefined {
    const { dead } = s.topic.plan;
    return dead === undefined ? undefined : { topic: s.topic.name, subscription: s.name, state: dead, ...(ids ? { ids } : {}) };
  },

  /** Delayed ready copies due now, all or some. */
  retryNow(s: ProtocolSubscription, ids: string[] | undefined, now: number): RetryNowRequest {
    return { topic: s.topic.name, subscription: s.name, state: s.topic.plan.ready, now, ...(ids ? { ids } : {}) };
  },

  /** A look at a subscription's messages in `state`. */
  peek(s: ProtocolSubscription, state: MessageState, limit: number): PeekRequest {
    return { topic: s.topic.name, subscription: s.name, state, limit };
  },
};
