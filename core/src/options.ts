import { knownOptions } from './known-options.js';
import { InvalidOptionsError, InvalidTopicError } from './errors.js';
import { DEFAULT_SUBSCRIPTION } from './storage/scopes.js';
import { ORDERINGS, type Ordering } from './delivery/lease-policy.js';
import { SCOPES, SEMANTICS, lifecycleOf, type Lifecycle, type Scope, type Semantic } from './lifecycle/names.js';

/** Exponential backoff with optional full jitter. */
export interface BackoffOptions {
  /** First delay in ms (default 100). */
  initialMs?: number;
  /** Upper bound in ms (default 30 000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Randomize each delay between half and all of it (default true). */
  jitter?: boolean;
}

/** What a subscription may set for itself; whatever it leaves out it takes from its topic (but `deadLetter`, see below). */
export interface SubscriptionOptions {
  /** Visibility timeout of its leases in ms. */
  leaseMs?: number;
  /** Deliveries before its copy of a message is dead-lettered. */
  maxDeliveries?: number;
  /**
   * Topic that receives a copy of each of its dead-lettered messages. The default subscription takes the topic's;
   * a named one has none unless it names one (two subscriptions copying one message into one topic would collide).
   */
  deadLetter?: string;
  /** Delay between a nack and the redelivery. */
  backoff?: BackoffOptions;
  /** How long its idempotency records are kept, in ms. */
  idempotencyWindowMs?: number;
}

/** How a topic delivers; `semantic` is required, everything else has a default. */
export interface TopicOptions {
  semantic: Semantic;
  /** Only for `exactly-once`; default `end-to-end`. */
  scope?: Scope;
  /** Visibility timeout of a lease in ms (default 30 000). */
  leaseMs?: number;
  /** Deliveries before a message is dead-lettered (default 5). */
  maxDeliveries?: number;
  /** Topic that receives a copy of each dead-lettered message. */
  deadLetter?: string;
  /** How long end-to-end exactly-once remembers an id, in ms (default 300 000). */
  dedupWindowMs?: number;
  /** How long consumers' idempotency records are kept, in ms (default 7 days). */
  idempotencyWindowMs?: number;
  /** How long dead messages are kept for inspection and redrive, in ms (default 14 days). */
  retentionMs?: number;
  /** Largest serialized payload in bytes (default 1 MiB). */
  maxPayloadBytes?: number;
  /** How long a producer waits for the broker's ack per attempt, in ms (default 5 000). */
  ackTimeoutMs?: number;
  /** Producer retries on a lost or failed ack (acked semantics only). */
  retry?: { attempts?: number } & BackoffOptions;
  /** Delay between a nack and the redelivery. */
  backoff?: BackoffOptions;
  /**
   * `key`: messages sent with the same `key` are handled one at a time in the order they were stored, per
   * subscription, across every process; a dead-lettered message lets its key go on. `key-strict`: a dead message
   * holds its key until redriven. Default `none`: any order.
   */
  ordering?: Ordering;
  /**
   * The subscriptions declared with the topic, by name (with options of their own, or `{}`): every message stored
   * from then on is delivered to each. Without it the topic has one, `default`, which `topic.consume()` reads.
   */
  subscriptions?: readonly string[] | Readonly<Record<string, SubscriptionOptions>>;
}

/** A subscription's options with its topic's filled in. */
export interface ResolvedSubscriptionOptions {
  leaseMs: number;
  maxDeliveries: number;
  deadLetter?: string;
  backoff: Required<BackoffOptions>;
  idempotencyWindowMs: number;
}

/** Topic options with every default filled in. */
export interface ResolvedTopicOptions {
  semantic: Semantic;
  scope?: Scope;
  lifecycle: Lifecycle;
  leaseMs: number;
  maxDeliveries: number;
  deadLetter?: string;
  dedupWindowMs: number;
  idempotencyWindowMs: number;
  retentionMs: number;
  maxPayloadBytes: number;
  ackTimeoutMs: number;
  retry: Required<BackoffOptions> & { attempts: number };
  backoff: Required<BackoffOptions>;
  ordering: Ordering;
  /** The subscriptions declared with the topic (`default` alone when it names none). */
  subscriptions: Readonly<Record<string, SubscriptionOptions>>;
}

const TOPIC_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;
const SUBSCRIPTION_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

/** Throws `InvalidOptionsError` unless `name` is 1-100 characters of `[A-Za-z0-9._:-]` starting with a letter or digit. */
export function validateSubscriptionName(name: unknown, topic: string): asserts name is string {
  if (typeof name !== 'string' || !SUBSCRIPTION_NAME.test(name)) {
    throw new InvalidOptionsError(
      `Subscription name ${describe(name)} of topic "${topic}" is invalid: use 1-100 characters of letters, digits and . _ : -, starting with a letter or digit (e.g. "billing").`,
    );
  }
}

/** Throws `InvalidTopicError` unless `name` is 1-200 characters of `[A-Za-z0-9._:-]` starting with a letter or digit. */
export function validateTopicName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidTopicError(`A topic name must be a non-empty string, got ${describe(name)}. Use e.g. "orders".`);
  }
  if (!TOPIC_NAME.test(name)) {
    throw new InvalidTopicError(
      `Topic name "${name}" is invalid: use 1-200 characters of letters, digits and . _ : -, starting with a letter or digit (e.g. "orders.dead").`,
    );
  }
}

/** Every option name of `T`, listed in a record so the compiler fails when an option is added and not listed here. */
const names = <T>(all: Record<keyof T, true>): readonly string[] => Object.keys(all);

const BACKOFF_OPTIONS = names<BackoffOptions>({ initialMs: true, maxMs: true, factor: true, jitter: true });
const SUBSCRIPTION_OPTIONS = names<SubscriptionOptions>({ leaseMs: true, maxDeliveries: true, deadLetter: true, backoff: true, idempotencyWindowMs: true });
const TOPIC_OPTIONS = names<TopicOptions>({
  semantic: true,
  scope: true,
  leaseMs: true,
  maxDeliveries: true,
  deadLetter: true,
  dedupWindowMs: true,
  idempotencyWindowMs: true,
  retentionMs: true,
  maxPayloadBytes: true,
  ackTimeoutMs: true,
  retry: true,
  backoff: true,
  ordering: true,
  subscriptions: true,
});

function describe(v: unknown): string {
  return v === '' ? 'an empty string' : typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Longest delay Node's timers take: a longer one fires after 1 ms, so ms options that become timers are capped at it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function positive(name: string, v: number | undefined, fallback: number, min = 1, max = Infinity): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    const range = max === Infinity ? `>= ${min}` : `>= ${min} and <= ${max}`;
    throw new InvalidOptionsError(`${name} must be a finite number ${range}, got ${describe(v)}.`);
  }
  return v;
}

function backoff(name: string, o: BackoffOptions | undefined, max = Infinity, extra: readonly string[] = []): Required<BackoffOptions> {
  if (o !== undefined) knownOptions(name, o, [...BACKOFF_OPTIONS, ...extra]);
  const initialMs = positive(`${name}.initialMs`, o?.initialMs, 100, 0);
  const maxMs = positive(`${name}.maxMs`, o?.maxMs, 30_000, 0, max);
  const factor = positive(`${name}.factor`, o?.factor, 2);
  if (maxMs < initialMs) throw new InvalidOptionsError(`${name}.maxMs (${maxMs}) must be >= ${name}.initialMs (${initialMs}).`);
  return { initialMs, maxMs, factor, jitter: o?.jitter ?? true };
}

/** Checks topic options and fills in defaults; throws `InvalidOptionsError` saying which option is wrong. */
export function resolveTopicOptions(topic: string, o: TopicOptions): ResolvedTopicOptions {
  if (o === null || typeof o !== 'object') {
    throw new InvalidOptionsError(`Options for topic "${topic}" must be an object like { semantic: 'at-least-once' }.`);
  }
  knownOptions(`Topic "${topic}"`, o, TOPIC_OPTIONS);
  if (!SEMANTICS.includes(o.semantic)) {
    throw new InvalidOptionsError(`Unknown semantic ${describe(o.semantic)} for topic "${topic}": use one of ${SEMANTICS.map((s) => `'${s}'`).join(', ')}.`);
  }
  if (o.scope !== undefined) {
    if (o.semantic !== 'exactly-once') {
      throw new InvalidOptionsError(`scope applies only to 'exactly-once'; remove it from the ${o.semantic} topic "${topic}".`);
    }
    if (!SCOPES.includes(o.scope)) {
      throw new InvalidOptionsError(`Unknown scope ${describe(o.scope)} for topic "${topic}": use 'broker' or 'end-to-end'.`);
    }
  }
  if (o.deadLetter !== undefined) {
    validateTopicName(o.deadLetter);
    if (o.deadLetter === topic) throw new InvalidOptionsError(`Topic "${topic}" cannot be its own deadLetter topic: name another one, e.g. "${topic}.dead".`);
  }
  const lifecycle = lifecycleOf(o.semantic, o.scope);
  if (o.ordering !== undefined && !ORDERINGS.includes(o.ordering)) {
    throw new InvalidOptionsError(`Unknown ordering ${describe(o.ordering)} for topic "${topic}": use ${ORDERINGS.map((x) => `'${x}'`).join(', ')}.`);
  }
  return {
    semantic: o.semantic,
    scope: o.semantic === 'exactly-once' ? (o.scope ?? 'end-to-end') : undefined,
    lifecycle,
    leaseMs: positive('leaseMs', o.leaseMs, 30_000),
    maxDeliveries: Math.floor(positive('maxDeliveries', o.maxDeliveries, 5)),
    deadLetter: o.deadLetter,
    dedupWindowMs: positive('dedupWindowMs', o.dedupWindowMs, 300_000, 0),
    idempotencyWindowMs: positive('idempotencyWindowMs', o.idempotencyWindowMs, 7 * 86_400_000, 0),
    retentionMs: positive('retentionMs', o.retentionMs, 14 * 86_400_000, 0),
    maxPayloadBytes: positive('maxPayloadBytes', o.maxPayloadBytes, 1024 * 1024),
    ackTimeoutMs: positive('ackTimeoutMs', o.ackTimeoutMs, 5_000, 1, MAX_TIMER_MS),
    retry: { attempts: Math.floor(positive('retry.attempts', o.retry?.attempts, 5)), ...backoff('retry', o.retry, MAX_TIMER_MS, ['attempts']) },
    backoff: backoff('backoff', o.backoff),
    ordering: o.ordering ?? 'none',
    subscriptions: declaredSubscriptions(topic, o.subscriptions),
  };
}

/** The subscriptions a topic declares, by name: `default` alone when it names none. */
function declaredSubscriptions(topic: string, given: TopicOptions['subscriptions']): Record<string, SubscriptionOptions> {
  if (given === undefined) return { [DEFAULT_SUBSCRIPTION]: {} };
  const entries: Array<[string, SubscriptionOptions]> = Array.isArray(given)
    ? (given as unknown[]).map((name) => [name as string, {}])
    : typeof given === 'object' && given !== null
      ? Object.entries(given as Record<string, SubscriptionOptions>)
      : [];
  if (entries.length === 0) {
    throw new InvalidOptionsError(
      `subscriptions of topic "${topic}" must name at least one, e.g. ['billing', 'email'] or { billing: { maxDeliveries: 3 } }; leave it out for the default subscription.`,
    );
  }
  const names = new Set<string>();
  for (const [name, options] of entries) {
    validateSubscriptionName(name, topic);
    if (names.has(name)) throw new InvalidOptionsError(`Topic "${topic}" names subscription "${name}" twice.`);
    names.add(name);
    if (options === null || typeof options !== 'object')
      throw new InvalidOptionsError(`Options of subscription "${name}" of topic "${topic}" must be an object, e.g. { maxDeliveries: 3 }.`);
  }
  return Object.fromEntries(entries);
}

/** A subscription's options, its topic's filling what it leaves out; throws `InvalidOptionsError` naming a bad one. */
export function resolveSubscriptionOptions(topic: string, t: ResolvedTopicOptions, name: string, o: SubscriptionOptions = {}): ResolvedSubscriptionOptions {
  if (o.deadLetter !== undefined) {
    validateTopicName(o.deadLetter);
    if (o.deadLetter === topic)
      throw new InvalidOptionsError(
        `Subscription "${name}" of topic "${topic}" cannot dead-letter into its own topic: name another one, e.g. "${topic}.${name}.dead".`,
      );
  }
  knownOptions(`Subscription "${name}" of topic "${topic}"`, o, SUBSCRIPTION_OPTIONS);
  const what = (option: string) => `subscription "${name}": ${option}`;
  return {
    leaseMs: positive(what('leaseMs'), o.leaseMs, t.leaseMs),
    maxDeliveries: Math.floor(positive(what('maxDeliveries'), o.maxDeliveries, t.maxDeliveries)),
    deadLetter: o.deadLetter ?? (name === DEFAULT_SUBSCRIPTION ? t.deadLetter : undefined),
    backoff: o.backoff === undefined ? t.backoff : backoff(what('backoff'), o.backoff),
    idempotencyWindowMs: positive(what('idempotencyWindowMs'), o.idempotencyWindowMs, t.idempotencyWindowMs, 0),
  };
}

/** The delay before attempt `attempt` (1-based) under `o`. */
export function backoffDelay(o: Required<BackoffOptions>, attempt: number, random: () => number = Math.random): number {
  const raw = Math.min(o.maxMs, o.initialMs * o.factor ** Math.max(0, attempt - 1));
  return o.jitter ? Math.round(raw / 2 + (random() * raw) / 2) : raw;
}
