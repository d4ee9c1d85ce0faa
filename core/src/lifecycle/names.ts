/** The three delivery semantics a topic can be declared with. */
export const SEMANTICS = ['at-most-once', 'at-least-once', 'exactly-once'] as const;
/** A delivery semantic. */
export type Semantic = (typeof SEMANTICS)[number];

/** Scopes of exactly-once: what "every message" counts from. */
export const SCOPES = ['broker', 'end-to-end'] as const;
/** Exactly-once scope: from what the broker stored, or from what the producer made. */
export type Scope = (typeof SCOPES)[number];

/** The four lifecycles: one machine each. */
export const LIFECYCLES = ['at-most-once', 'at-least-once', 'exactly-once/broker', 'exactly-once/end-to-end'] as const;
/** A semantic with its scope, naming one lifecycle machine. */
export type Lifecycle = (typeof LIFECYCLES)[number];

/** Every state a message can be in. */
export const MESSAGE_STATES = ['sent', 'acked', 'stored', 'leased', 'consumed', 'deleted', 'dead'] as const;
/** A message's lifecycle state. */
export type MessageState = (typeof MESSAGE_STATES)[number];

/** Every event a lifecycle machine knows. */
export const LIFECYCLE_EVENTS = ['STORE', 'ACK', 'LEASE', 'CONSUME', 'DELETE', 'EXPIRE', 'NACK', 'DEAD', 'REDRIVE'] as const;
/** A lifecycle event's name. */
export type LifecycleEventType = (typeof LIFECYCLE_EVENTS)[number];

/** A lifecycle event with the facts its guards decide on. */
export interface LifecycleEvent {
  type: LifecycleEventType;
  /** STORE: the broker already holds this id inside the dedup window. */
  duplicate?: boolean;
  /** EXPIRE, NACK, DEAD: deliveries made so far, this one included. */
  deliveries?: number;
  /** EXPIRE, NACK, DEAD: the topic's delivery limit. */
  maxDeliveries?: number;
}

/** The semantic and scope a lifecycle is declared with, as `tidings.topic` takes them: the inverse of `lifecycleOf`. */
export function semanticOf(lifecycle: Lifecycle): { semantic: Semantic; scope?: Scope } {
  if (lifecycle === 'exactly-once/broker') return { semantic: 'exactly-once', scope: 'broker' };
  if (lifecycle === 'exactly-once/end-to-end') return { semantic: 'exactly-once', scope: 'end-to-end' };
  return { semantic: lifecycle };
}

/** Names the lifecycle machine for a semantic and scope (`exactly-once` defaults to end-to-end). */
export function lifecycleOf(semantic: Semantic, scope?: Scope): Lifecycle {
  if (semantic === 'exactly-once') return scope === 'broker' ? 'exactly-once/broker' : 'exactly-once/end-to-end';
  return semantic;
}
