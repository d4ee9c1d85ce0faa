import type { MessageState } from '../lifecycle/names.js';
import type { LifecyclePlan } from '../lifecycle/plan.js';
import type {
  ExpireRequest,
  ExtendLeaseRequest,
  LeaseRequest,
  NewMessage,
  RedriveRequest,
  ReleaseRequest,
  SettleItem,
  SettleRequest,
  StorageAdapter,
  StoredMessage,
  StoreRequest,
  StoreResult,
} from './contract.js';
import type { TransitionStep } from '../lifecycle/table.js';

/** A topic as the storage protocol sees it: its name, plan and limits, and the topic its dead letters are copied to. */
export interface ProtocolTopic {
  readonly name: string;
  readonly plan: LifecyclePlan;
  readonly options: { readonly maxDeliveries: number; readonly dedupWindowMs: number };
  readonly deadLetter?: ProtocolTopic;
}

/** A path removes the row when the machine DELETEs the message on it. */
const removes = (steps: readonly TransitionStep[]): boolean => steps.some((s) => s.event === 'DELETE');

/**
 * Every request core makes of a storage adapter, built from the topic's plan: producers, consumers, the instance and
 * the conformance suite all go through these, so the protocol is written down once.
 */
export const requests = {
  /** The producer's store: into the state STORE (and ACK) lead to, with a dedup window where the machine refuses duplicates. */
  store(t: ProtocolTopic, messages: NewMessage[], now: number): StoreRequest {
    return { topic: t.name, state: t.plan.stored, messages, now, dedupUntil: t.plan.dedup ? now + t.options.dedupWindowMs : undefined };
  },

  /** A consumer's lease along the plan's lease path (which, for at-most-once, ends the message). */
  lease(t: ProtocolTopic, o: { limit: number; now: number; leaseMs: number; leaseToken: string }): LeaseRequest {
    const steps = t.plan.steps.lease;
    return {
      topic: t.name,
      from: steps[0]!.from,
      to: steps.at(-1)!.to,
      limit: o.limit,
      now: o.now,
      leaseUntil: o.now + o.leaseMs,
      leaseToken: o.leaseToken,
      remove: removes(steps),
    };
  },

  /** A handler's `ctx.extendLease`. */
  extendLease(t: ProtocolTopic, item: SettleItem, leaseUntil: number, now: number): ExtendLeaseRequest {
    return { topic: t.name, state: t.plan.leased, item: { id: item.id, leaseToken: item.leaseToken }, leaseUntil, now };
  },

  /** A compare-and-set along `steps`; only a message still leased takes its lease token into it. */
  settle(t: ProtocolTopic, steps: readonly TransitionStep[], items: readonly SettleItem[], now: number): SettleRequest {
    const from = steps[0]!.from;
    const fromLease = from === t.plan.leased;
    return {
      topic: t.name,
      from,
      to: steps.at(-1)!.to,
      items: items.map((m) => (fromLease ? { id: m.id, leaseToken: m.leaseToken } : { id: m.id })),
      remove: removes(steps),
      now,
    };
  },

  /** Where a failed delivery goes: back by NACK while the machine allows it, else DEAD. */
  nackTarget(t: ProtocolTopic, deliveries: number): { event: 'NACK' | 'DEAD'; to: MessageState } {
    const { plan } = t;
    const facts = { deliveries, maxDeliveries: t.options.maxDeliveries };
    const retry = plan.table.tryNext(plan.leased, { type: 'NACK', ...facts });
    return retry ? { event: 'NACK', to: retry } : { event: 'DEAD', to: plan.table.next(plan.leased, { type: 'DEAD', ...facts }) };
  },

  /** Leased messages back to `to`, each available again at its own time. */
  release(t: ProtocolTopic, to: MessageState, items: ReleaseRequest['items'], now: number): ReleaseRequest {
    return { topic: t.name, from: t.plan.leased, to, items, now };
  },

  /**
   * The sweep of expired leases: back for redelivery while deliveries are left, dead once used up (the machine's
   * `deliveriesLeft` and `deliveriesExhausted` guards, as a range of deliveries). None for a lifecycle whose leases never come back.
   */
  expire(t: ProtocolTopic, now: number): { requeue?: ExpireRequest; dead?: ExpireRequest } {
    const { plan } = t;
    const max = t.options.maxDeliveries;
    return {
      requeue: plan.retry === undefined ? undefined : { topic: t.name, from: plan.leased, to: plan.retry, now, deliveries: { below: max } },
      dead: plan.dead === undefined ? undefined : { topic: t.name, from: plan.leased, to: plan.dead, now, deliveries: { atLeast: max } },
    };
  },

  /** Dead messages back along the machine's REDRIVE. */
  redrive(t: ProtocolTopic, ids: string[] | undefined, now: number): RedriveRequest | undefined {
    const steps = t.plan.steps.redrive;
    if (steps.length === 0) return undefined;
    return { topic: t.name, from: steps[0]!.from, to: steps.at(-1)!.to, ids, now };
  },
};

/** What a dead-lettering did: the messages moved to the dead state, and the ids copied into the dead-letter topic. */
export interface DeadLettered {
  readonly dead: StoredMessage[];
  readonly copied: string[];
}

/**
 * Moves messages to the dead state with `move`, and copies those that moved into the topic's dead-letter topic
 * (same id, body and last error) in the same transaction, so a dead letter is never without its copy.
 */
async function deadLetter(
  storage: StorageAdapter<unknown>,
  t: ProtocolTopic,
  now: number,
  move: (tx: unknown) => Promise<StoredMessage[]>,
): Promise<DeadLettered> {
  const dl = t.deadLetter;
  if (!dl) return { dead: await move(undefined), copied: [] };
  return storage.transaction(async (tx) => {
    const dead = await move(tx);
    if (dead.length === 0) return { dead, copied: [] };
    const copies = dead.map((m) => ({ id: m.id, body: m.body, availableAt: now, lastError: m.lastError, headers: m.headers }));
    const results: StoreResult[] = await storage.store(requests.store(dl, copies, now), tx);
    return { dead, copied: results.filter((r) => !r.duplicate).map((r) => r.id) };
  });
}

/** One failed delivery to release: the message as leased, when it may be tried again, and why it failed. */
export interface Failure {
  readonly message: StoredMessage;
  readonly availableAt: number;
  readonly error?: string;
}

/** Nacks a batch: one release back for redelivery, one to the dead state (with its dead-letter copies). */
export async function releaseLeases(
  storage: StorageAdapter<unknown>,
  t: ProtocolTopic,
  failures: readonly Failure[],
  now: number,
): Promise<{ retried: StoredMessage[] } & DeadLettered> {
  // Grouped by target: every retry goes to one state and every death to another, so one release each.
  type Group = { to?: MessageState; items: Failure[] };
  const groups: Record<'NACK' | 'DEAD', Group> = { NACK: { items: [] }, DEAD: { items: [] } };
  for (const f of failures) {
    const target = requests.nackTarget(t, f.message.deliveries);
    groups[target.event].to = target.to;
    groups[target.event].items.push(f);
  }
  const release = async ({ to, items: group }: Group, tx?: unknown): Promise<StoredMessage[]> => {
    if (group.length === 0 || to === undefined) return [];
    const items = group.map((f) => ({ id: f.message.id, leaseToken: f.message.leaseToken, availableAt: f.availableAt, error: f.error }));
    const won = new Set(await storage.release(requests.release(t, to, items, now), tx));
    return group.filter((f) => won.has(f.message.id)).map((f) => ({ ...f.message, state: to, lastError: f.error }));
  };
  const retried = await release(groups.NACK);
  const died = groups.DEAD.items.length === 0 ? { dead: [], copied: [] } : await deadLetter(storage, t, now, (tx) => release(groups.DEAD, tx));
  return { retried, ...died };
}

/** Sweeps a topic's expired leases: those out of deliveries to the dead state (with copies), the rest back for redelivery. */
export async function expireLeases(storage: StorageAdapter<unknown>, t: ProtocolTopic, now: number): Promise<{ requeued: StoredMessage[] } & DeadLettered> {
  const { requeue, dead } = requests.expire(t, now);
  const died = dead ? await deadLetter(storage, t, now, (tx) => storage.expire(dead, tx)) : { dead: [], copied: [] };
  const requeued = requeue ? await storage.expire(requeue) : [];
  return { requeued, ...died };
}
