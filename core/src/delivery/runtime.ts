import { InvalidOptionsError, TopicConflictError } from '../errors.js';
import type { TidingsEventBus } from '../events.js';
import type { LifecyclePlan } from '../lifecycle/plan.js';
import {
  resolveSubscriptionOptions,
  validateSubscriptionName,
  type ResolvedSubscriptionOptions,
  type ResolvedTopicOptions,
  type SubscriptionOptions,
} from '../options.js';
import type { PluginChain } from '../plugin.js';
import type { Clock, IdGenerator, Logger } from '../services.js';
import type { StorageAdapter, SubscriptionRecord, TopicRecord } from '../storage/contract.js';
import type { IdempotencyStore } from '../storage/idempotency.js';
import { idempotencyScope } from '../storage/scopes.js';
import { leasePolicy, type LeasePolicy } from './lease-policy.js';
import { SubscriptionLedger, TopicLedger } from './ledger.js';
import type { PauseWatch } from './pauses.js';
import { LeaseSweeper } from './sweeper.js';

/** Something a consumer of a subscription can be told: wake up, pause, resume, or stop. */
export interface RunningConsumer {
  wake(): void;
  pause(): void;
  resume(): void;
  stop(options?: { graceMs?: number }): Promise<void>;
}

/** A record in storage being written, or written: `declared` settles once it is, rejecting with a conflict if there is one. */
export interface Declaration {
  readonly declared: Promise<void>;
  /** The rejection, once it happened, for callers that cannot wait. */
  error?: unknown;
  /** True once `declared` settled. */
  settled: boolean;
  /** Writes the records inside the caller's transaction: a send there must not wait for a connection that transaction holds. */
  writeIn(tx: unknown): Promise<void>;
}

/** The instance's parts a topic runs with. */
export interface TopicServices {
  readonly storage: StorageAdapter<unknown>;
  readonly idempotency: IdempotencyStore<unknown>;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  readonly events: TidingsEventBus;
  /** Keeps this process's consumers told of their subscriptions' pauses. */
  readonly pauses: PauseWatch;
  /** The registered plugins' `send`, `handle` and `handleBatch` wrappers (undefined where none wraps). */
  readonly plugins: PluginChain;
  /** Registers work that `close()` must wait for. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Throws `ClosedError` once the instance is closing. */
  assertOpen(): void;
  /** The runtime of a topic dead letters are copied to, declared as a dead-letter topic unless it is declared already. */
  deadLetterTopic(name: string): TopicRuntime;
}

/** What the producer, the subscriptions and the instance share for one topic. */
export interface TopicRuntime extends TopicServices {
  readonly name: string;
  readonly options: ResolvedTopicOptions;
  /** What delivery does for the topic's lifecycle, read from its machine. */
  readonly plan: LifecyclePlan;
  /** How its leases treat ordering keys, chosen once from the declaration. */
  readonly policy: LeasePolicy;
  /** The producer's side of its ledger. */
  readonly ledger: TopicLedger;
  /** The topic's record in storage, with the subscriptions declared along with it. */
  readonly declaration: Declaration;
  /** This process's subscriptions of the topic, by name. */
  readonly subscriptions: Map<string, SubscriptionRuntime>;
}

/** What a subscription's consumers, sweeper and ledger share. */
export interface SubscriptionRuntime {
  readonly topic: TopicRuntime;
  readonly name: string;
  readonly options: ResolvedSubscriptionOptions;
  readonly ledger: SubscriptionLedger;
  /** Where its idempotency records are kept: one scope per subscription. */
  readonly scope: string;
  /** This process's running consumers of the subscription. */
  readonly consumers: Set<RunningConsumer>;
  /** Its one sweeper of expired leases in this process, shared by its consumers. */
  readonly sweeper: LeaseSweeper;
  /** Its record in storage (after the topic's). */
  readonly declaration: Declaration;
  /** Whether an operator paused it, as this process last read (see `PauseWatch`). */
  paused: boolean;
}

/**
 * Writes records asynchronously, so `topic()` stays synchronous: sends and consumers wait for `declared`, and
 * `ready()` surfaces a conflict at start-up. Never an unhandled rejection of its own.
 */
function declaration(write: (tx?: unknown) => Promise<void>, track: <T>(work: Promise<T>) => Promise<T>): Declaration {
  const declared = write();
  const d: Declaration = { declared, settled: false, writeIn: (tx) => write(tx) };
  track(declared)
    .catch((error: unknown) => (d.error = error))
    .finally(() => (d.settled = true));
  return d;
}

/** Records the topic (refusing another lifecycle or ordering than the recorded one), then the subscriptions declared with it. */
function declareTopic(rt: Pick<TopicRuntime, 'name' | 'options' | 'storage'>, subscriptions: () => SubscriptionRecord[]) {
  const { name, options, storage } = rt;
  const ordering = options.ordering === 'none' ? undefined : options.ordering;
  const record: TopicRecord = {
    name,
    lifecycle: options.lifecycle,
    deadLetter: options.deadLetter,
    maxDeliveries: options.maxDeliveries,
    declaredAt: Date.now(),
  };
  if (ordering) record.ordering = ordering;
  return async (tx?: unknown) => {
    const kept = await storage.declareTopic(record, tx);
    const recorded = `Topic "${name}" is recorded in ${storage.name} storage as`;
    if (kept.lifecycle !== options.lifecycle) {
      throw new TopicConflictError(
        `${recorded} ${kept.lifecycle} (declared ${new Date(kept.declaredAt).toISOString()}); this process declares it ${options.lifecycle}. Declare it as ${kept.lifecycle}, or use another topic name.`,
      );
    }
    if ((kept.ordering ?? 'none') !== options.ordering) {
      throw new TopicConflictError(
        `${recorded} ordered by ${kept.ordering ?? 'none'}; this process declares ordering '${options.ordering}'. Two orders on one topic would break both: declare ordering '${kept.ordering ?? 'none'}', or use another topic name.`,
      );
    }
    for (const s of subscriptions()) await storage.declareSubscription(s, tx);
  };
}

/** The runtime of a topic; its subscriptions are made on first use, those declared with it at once. */
export function topicRuntime(services: TopicServices, name: string, options: ResolvedTopicOptions, plan: LifecyclePlan): TopicRuntime {
  const subscriptions = new Map<string, SubscriptionRuntime>();
  const policy = leasePolicy(plan, options.ordering);
  const ledger = new TopicLedger({ name, plan, semantic: options.semantic, dedupWindowMs: options.dedupWindowMs }, services, () => {
    for (const s of subscriptions.values()) for (const c of s.consumers) c.wake();
  });
  const withTopic = Object.entries(options.subscriptions).map(([sub, o]) => [sub, resolveSubscriptionOptions(name, options, sub, o)] as const);
  const records = () => withTopic.map(([sub, o]) => subscriptionRecord(name, sub, o));
  const rt: TopicRuntime = { ...services, name, options, plan, policy, ledger, subscriptions, declaration: undefined as never };
  Object.assign(rt, { declaration: declaration(declareTopic(rt, records), services.track) });
  for (const [sub, o] of withTopic) subscriptions.set(sub, subscriptionRuntime(rt, sub, o, rt.declaration));
  return rt;
}

function subscriptionRecord(topic: string, name: string, o: ResolvedSubscriptionOptions): SubscriptionRecord {
  return { topic, name, deadLetter: o.deadLetter, maxDeliveries: o.maxDeliveries, declaredAt: Date.now() };
}

function subscriptionRuntime(topic: TopicRuntime, name: string, options: ResolvedSubscriptionOptions, declared: Declaration): SubscriptionRuntime {
  const consumers = new Set<RunningConsumer>();
  const deadLetter = options.deadLetter === undefined ? undefined : topic.deadLetterTopic(options.deadLetter).ledger;
  const ledger = new SubscriptionLedger(
    topic.ledger,
    name,
    { maxDeliveries: options.maxDeliveries, policy: topic.policy },
    () => consumers.forEach((c) => c.wake()),
    deadLetter,
  );
  const s = { topic, name, options, ledger, scope: idempotencyScope(topic.name, name), consumers, declaration: declared, paused: false } as Omit<
    SubscriptionRuntime,
    'sweeper'
  >;
  return Object.assign(s, { sweeper: new LeaseSweeper(s as SubscriptionRuntime) });
}

/**
 * The ledger of a topic's subscription for reading and redriving it, without declaring it: this process's own when
 * it has one, else one over the records (a mistyped name must not start receiving copies).
 */
export function ledgerOf(topic: TopicRuntime, name: string): SubscriptionLedger {
  validateSubscriptionName(name, topic.name);
  return (
    topic.subscriptions.get(name)?.ledger ??
    new SubscriptionLedger(topic.ledger, name, { maxDeliveries: topic.options.maxDeliveries, policy: topic.policy }, () => undefined)
  );
}

/**
 * A subscription of a topic in this process: the one declared with the topic, or a new one, recorded in storage so
 * that every message stored from then on is copied to it. Options only count on first use.
 */
export function subscriptionOf(topic: TopicRuntime, name: string, options?: SubscriptionOptions): SubscriptionRuntime {
  validateSubscriptionName(name, topic.name);
  const known = topic.subscriptions.get(name);
  if (known) return known;
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new InvalidOptionsError(`Options of subscription "${name}" of topic "${topic.name}" must be an object, e.g. { maxDeliveries: 3 }.`);
  }
  const resolved = resolveSubscriptionOptions(topic.name, topic.options, name, options);
  const record = subscriptionRecord(topic.name, name, resolved);
  const write = async (tx?: unknown) => {
    await (tx === undefined ? topic.declaration.declared : topic.declaration.writeIn(tx));
    await topic.storage.declareSubscription(record, tx);
  };
  const s = subscriptionRuntime(topic, name, resolved, declaration(write, topic.track));
  topic.subscriptions.set(name, s);
  return s;
}
