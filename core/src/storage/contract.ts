import type { IdempotencyStore } from './idempotency.js';
import type { Lifecycle, MessageState } from '../lifecycle/names.js';
import type { Logger } from '../services.js';

/** A message the broker is asked to store; the body is already serialized JSON. */
export interface NewMessage {
  id: string;
  body: string;
  /** Its ordering key: kept with every copy, and what a lease with `keyHeldIn` orders by. */
  key?: string;
  /** Epoch ms before which the message is not handed out (delayed delivery). */
  availableAt: number;
  /** Why an earlier life of the message failed: a dead-letter copy keeps its source's last error. */
  lastError?: string;
  /** The message's headers as JSON text (string names and values), kept and handed back byte for byte; absent when none. */
  headers?: string;
}

/**
 * Store a batch in one topic: one copy of each message in every subscription recorded for the topic when the store
 * runs (a subscription declared later never sees it; a topic with no subscription keeps no copy), each copy in
 * store order after every copy stored before it.
 */
export interface StoreRequest {
  topic: string;
  /** The state rows are written in, as the machine's STORE (and ACK) lead to. */
  state: MessageState;
  messages: NewMessage[];
  now: number;
  /**
   * When set, each id is remembered for the topic (whatever its subscriptions) until this epoch ms: a store at
   * `now < dedupUntil` of the same id is a duplicate, also after its copies are deleted; at `now >= dedupUntil` it is
   * new again. Without it an id is a duplicate only while every subscription still holds a copy of it.
   */
  dedupUntil?: number;
}

/** The broker's answer for one stored message: `duplicate` when the id was already held. */
export interface StoreResult {
  id: string;
  duplicate: boolean;
}

/** A message as the storage holds it: one subscription's copy. */
export interface StoredMessage {
  id: string;
  topic: string;
  /** The subscription this copy belongs to. */
  subscription: string;
  /** Its ordering key, when sent with one. */
  key?: string;
  body: string;
  state: MessageState;
  /** Deliveries so far, counting the current one once leased. */
  deliveries: number;
  availableAt: number;
  createdAt: number;
  leaseUntil?: number;
  leaseToken?: string;
  /** Why the last delivery failed (the handler's error message and stack), kept through nacks and dead-lettering. */
  lastError?: string;
  /** The headers it was stored with (JSON text), through every state change; absent when none. */
  headers?: string;
}

/**
 * Hand out up to `limit` of a subscription's messages in `from` whose `availableAt <= now` as one compare-and-set
 * `from` -> `to`, each delivery counted; oldest first as far as the storage keeps an order (SQL: by `availableAt`,
 * then store order), which only keys make a rule of.
 */
export interface LeaseRequest {
  topic: string;
  subscription: string;
  from: MessageState;
  to: MessageState;
  limit: number;
  now: number;
  leaseUntil: number;
  leaseToken: string;
  /** The lease's path ends the message's life (the machine DELETEs it as it is handed out): remove the rows. */
  remove: boolean;
  /**
   * Per-key order: a message with a key is handed out only while no message of the same topic, subscription and key
   * stored before it is in one of these states, and never with another of its key in the same batch. Messages
   * without a key are not held. Absent: keys are ignored. Core always includes `from`, so a key's later waiting
   * messages are never candidates: only each key's first one is. Still one statement (no round trip per key) on SQL.
   */
  keyHeldIn?: readonly MessageState[];
}

/** One leased message to settle; `leaseToken` must still match (omit for messages no longer leased). */
export interface SettleItem {
  id: string;
  leaseToken?: string;
}

/**
 * Push a lease's deadline out to `leaseUntil`: a compare-and-set on `state` (where leased messages are) and the
 * item's lease token. A lease past its deadline that no sweep has taken back can still be extended: nobody else holds it.
 */
export interface ExtendLeaseRequest {
  topic: string;
  subscription: string;
  state: MessageState;
  item: SettleItem;
  leaseUntil: number;
  now: number;
}

/** Compare-and-set `from` -> `to` for the items; `remove` (the path DELETEs the message) deletes the rows instead of keeping them in `to`. */
export interface SettleRequest {
  topic: string;
  subscription: string;
  from: MessageState;
  to: MessageState;
  items: SettleItem[];
  remove: boolean;
  now: number;
}

/** Compare-and-set leased messages `from` -> `to` (a nack's retry, or the dead state), unleased, with the given `availableAt`. */
export interface ReleaseRequest {
  topic: string;
  subscription: string;
  from: MessageState;
  to: MessageState;
  /** `error`: why the delivery failed, stored with the message as its `lastError`. */
  items: Array<SettleItem & { availableAt: number; error?: string }>;
  now: number;
}

/**
 * Move leases expired by `now` (`leaseUntil <= now`) from `from` to `to`, unleased and available at `now`, as one
 * compare-and-set; only messages whose deliveries lie in `deliveries` (`atLeast <= deliveries < below`, each bound optional).
 */
export interface ExpireRequest {
  topic: string;
  subscription: string;
  from: MessageState;
  to: MessageState;
  now: number;
  deliveries?: { atLeast?: number; below?: number };
}

/** Put dead messages of a subscription (in `from`) back as new lifecycles in `to`: deliveries reset, created and available at `now`; all, or the given ids. */
export interface RedriveRequest {
  topic: string;
  subscription: string;
  from: MessageState;
  to: MessageState;
  ids?: string[];
  now: number;
}

/**
 * Drop what retention allows: dedup records expired by `now` (`dedupUntil <= now`) always, and message rows only when
 * both `states` and `before` are given: those in one of `states` created before `before`. Scoped to `topic` if given.
 */
export interface PurgeRequest {
  topic?: string;
  now: number;
  /** Rows in `states` created before this epoch ms are removed. */
  before?: number;
  states?: MessageState[];
}

/** Read up to `limit` of a subscription's messages in `state`, in store order, without changing them. */
export interface PeekRequest {
  topic: string;
  subscription: string;
  state: MessageState;
  limit: number;
}

/**
 * One page of a subscription's copies, as an operator browses them: in one `state` (or any, when looking one up by
 * `id` or `key`), in delivery order (`availableAt`, then store order), from where the previous page's `next` left off.
 * Storage answers from its indexes, never by reading a topic into memory.
 */
export interface BrowseRequest {
  topic: string;
  subscription: string;
  /** Copies in this state; may be absent only with `id` or `key`. */
  state?: MessageState;
  /** With `state`: only copies due by `now` (`later` false: waiting), or only those due after it (`later` true: delayed). */
  due?: { now: number; later: boolean };
  /** Only the copy with this id. */
  id?: string;
  /** Only copies with this ordering key. */
  key?: string;
  /** The previous page's `next`: an opaque cursor the same storage made. */
  after?: string;
  limit: number;
}

/** A page of copies, and the cursor of the next page when there may be one. */
export interface BrowsePage {
  messages: StoredMessage[];
  next?: string;
}

/** Drop a subscription's copies in `state` (not leased ones: their handlers hold them), all or the given ids: emptying a queue, discarding dead letters. */
export interface DiscardRequest {
  topic: string;
  subscription: string;
  state: MessageState;
  ids?: string[];
}

/** Make a subscription's copies in `state` that are due after `now` (delayed, backing off) due at `now`; all or the given ids. */
export interface RetryNowRequest {
  topic: string;
  subscription: string;
  state: MessageState;
  ids?: string[];
  now: number;
}

/** A declared topic as storage records it, so every process and the CLI read its lifecycle instead of guessing it. */
export interface TopicRecord {
  name: string;
  lifecycle: Lifecycle;
  /** How its subscriptions hand out keyed messages (`key`, `key-strict`); absent when unordered. */
  ordering?: string;
  /** The topic its dead letters are copied to, if any. */
  deadLetter?: string;
  maxDeliveries: number;
  /** When it was first declared (epoch ms). */
  declaredAt: number;
}

/** A subscription as storage records it: a topic's messages stored after `declaredAt` are copied to it. */
export interface SubscriptionRecord {
  topic: string;
  name: string;
  /** The topic its dead letters are copied to, if any. */
  deadLetter?: string;
  maxDeliveries: number;
  /** When it was first declared (epoch ms). */
  declaredAt: number;
  /** Since when its consumers lease nothing (epoch ms), in every process; absent while it runs. A declaration never changes it. */
  pausedAt?: number;
}

/** Message counts per topic and state; states without messages are left out, and so may be topics without any. */
export type StateCounts = Record<string, Partial<Record<MessageState, number>>>;

/** Message counts per topic, subscription and state; states without messages are left out. */
export type SubscriptionCounts = Record<string, Record<string, Partial<Record<MessageState, number>>>>;

/** Whether consumers are woken when another process stores (PostgreSQL `LISTEN`, SQLite's WAL watch), since when, and why not. */
export interface WakeUpHealth {
  /** `live`: wake-ups arrive; `connecting`: the first attempt runs; `reconnecting`: lost or never up, tried again with backoff (consumers poll meanwhile). */
  state: 'live' | 'connecting' | 'reconnecting';
  /** When it entered this state (epoch ms). */
  since: number;
  /** Why the last attempt failed or the connection was lost, while not live. */
  lastError?: string;
}

/** What a storage adapter can say of its own health. */
export interface StorageHealth {
  /** Its wake-ups across processes; absent when it has none, or no consumer has asked for them yet. */
  wakeUps?: WakeUpHealth;
}

/**
 * Where messages live. Storage-agnostic: it knows topics, states and compare-and-set, not semantics; Tidings
 * computes every `from`/`to` from the lifecycle machine, and decides retries, dead-lettering and dead-letter copies.
 * Every call runs on the `now` it is given, never on the adapter's own clock.
 * `Tx` is the handle a transaction gives handlers (`ctx.em`).
 */
export interface StorageAdapter<Tx = unknown> {
  /** Short name for logs and errors, e.g. `memory`, `sqlite`. */
  readonly name: string;
  /**
   * Connect and prepare (create tables, which another handle on the same database may already have made); called once by
   * `Tidings.create`, which passes its logger for what the adapter finds amiss but can work with (such as an
   * application's schema tools that would change its tables).
   */
  open?(context?: { logger: Logger }): Promise<void>;
  /**
   * Insert new messages, a copy per subscription (see `StoreRequest`); answers one result per message, in order. Ids
   * are unique per subscription: an id inside the topic's dedup window, one every subscription holds, or one repeated
   * earlier in the batch is a duplicate, not stored again; a subscription that holds an id gets no second copy.
   */
  store(req: StoreRequest, tx?: Tx): Promise<StoreResult[]>;
  /** Lease a batch as one compare-and-set; never hands one message to two leases at once. */
  lease(req: LeaseRequest): Promise<StoredMessage[]>;
  /** Push a lease's deadline out (inside `tx` when the handler runs in one); false if the lease was lost. */
  extendLease(req: ExtendLeaseRequest, tx?: Tx): Promise<boolean>;
  /** Consume and/or delete leased messages; returns the ids whose compare-and-set won. */
  settle(req: SettleRequest, tx?: Tx): Promise<string[]>;
  /** Nack or dead-letter leased messages (inside `tx` when core copies them to a dead-letter topic); returns the ids whose compare-and-set won. */
  release(req: ReleaseRequest, tx?: Tx): Promise<string[]>;
  /** Takes back expired leases (inside `tx` when core copies them to a dead-letter topic); returns the moved messages as they now are. */
  expire(req: ExpireRequest, tx?: Tx): Promise<StoredMessage[]>;
  /** Dead messages back for delivery; returns the ids moved. */
  redrive(req: RedriveRequest): Promise<string[]>;
  /** Messages in a topic (or all) by subscription and state. */
  counts(topic?: string): Promise<SubscriptionCounts>;
  /** Read messages in a state (dead letters, for `dlq list`). */
  peek(req: PeekRequest): Promise<StoredMessage[]>;
  /**
   * Record a declared topic unless one of its name is recorded; resolves to the record kept (the first declaration
   * wins). Inside `tx` when a send in the caller's transaction comes before the declaration is written.
   */
  declareTopic(topic: TopicRecord, tx?: Tx): Promise<TopicRecord>;
  /** Every recorded topic, ordered by name. */
  topics(): Promise<TopicRecord[]>;
  /** Record a subscription unless it is recorded (the first declaration wins); from then on stores copy into it. */
  declareSubscription(subscription: SubscriptionRecord, tx?: Tx): Promise<SubscriptionRecord>;
  /** The recorded subscriptions of a topic (or of all), ordered by topic and name. */
  subscriptions(topic?: string): Promise<SubscriptionRecord[]>;
  /** Forget a subscription and drop every copy it holds, in every state; returns how many copies went. */
  removeSubscription(topic: string, name: string): Promise<number>;
  // The operator's verbs (console, CLI): optional, so an adapter written before them still runs; without one, that
  // verb is refused with `OPERATION_NOT_SUPPORTED`. The conformance suite checks each one an adapter has.
  /** Pause a recorded subscription (`pausedAt` set) or resume it (undefined); false when no such subscription is recorded. */
  setPaused?(topic: string, name: string, pausedAt: number | undefined): Promise<boolean>;
  /** A page of a subscription's copies (see `BrowseRequest`). */
  browse?(req: BrowseRequest): Promise<BrowsePage>;
  /** Drops copies that are not leased (see `DiscardRequest`); returns how many went. */
  discard?(req: DiscardRequest): Promise<number>;
  /** Makes delayed copies due now (see `RetryNowRequest`); returns the ids moved. */
  retryNow?(req: RetryNowRequest): Promise<string[]>;
  /** Drop expired dedup records and, when asked, old rows (see `PurgeRequest`); returns how many dedup records and rows it removed. */
  purge(req: PurgeRequest): Promise<number>;
  /**
   * Run `fn` in one transaction; the handle goes to `store`/`settle`/`release`/`expire` and to handlers as `ctx.em`;
   * `fn`'s own rejection passes through unchanged. Inside `fn`, Tidings passes the handle to every call: a call
   * without it completes (on another connection) or rejects at once with `TRANSACTION_HANDLE_REQUIRED`, never waits
   * for the transaction it runs in. Once settled, the handle is refused: a call given it rejects with a
   * `StorageError` and writes nothing. Other handles see none of its writes before it commits.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Offered where several handlers can run at once inside one transaction: runs `fn`, which calls `own()` for a
   * handle of its own on the transaction `tx` (MikroORM: a fork keeping the transaction, made on the first call and
   * flushed when `fn` resolves), so one handler's flush never writes another's pending changes, and a handler that
   * never asks costs nothing. Without it, handlers running at once get transactions of their own.
   */
  branch?<T>(tx: Tx, fn: (own: () => Tx) => Promise<T>): Promise<T>;
  /** What it can say of its health (wake-ups across processes); see `tidings.health()`. */
  health?(): StorageHealth;
  /**
   * Best effort: calls `onStored` when another process stores into `topic` (e.g. PostgreSQL NOTIFY); consumers poll
   * anyway. After a loss of whatever carries these, it should listen again, and then call every `onStored` once.
   */
  watch?(topic: string, onStored: () => void): () => void;
  /** The idempotency store that shares this storage's transactions, used when none is registered. */
  idempotencyStore?(): IdempotencyStore<Tx>;
  /** Release connections; calling twice is fine, and afterwards every operation rejects with `ClosedError`. */
  close(): Promise<void>;
}
