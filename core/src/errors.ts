/** Every code core and the storage adapters raise; docs/errors.md says when, and which are retryable. */
export const TIDINGS_ERROR_CODES = [
  'INVALID_MESSAGE',
  'PAYLOAD_TOO_LARGE',
  'INVALID_TOPIC',
  'INVALID_OPTIONS',
  'TOPIC_CONFLICT',
  'CLOSED',
  'ILLEGAL_TRANSITION',
  'ACK_TIMEOUT',
  'LEASE_LOST',
  'SUBSCRIPTION_IN_USE',
  'UNKNOWN_SUBSCRIPTION',
  'OPERATION_NOT_SUPPORTED',
  'ROLLBACK',
  'ABANDONED',
  'HANDLER_FAILED',
  'STORAGE_ERROR',
  'STORAGE_BUSY',
  'CONNECTION_LOST',
  'STORAGE_FULL',
  'STORAGE_READ_ONLY',
  'TRANSACTION_HANDLE_REQUIRED',
  'SCHEMA_MISMATCH',
  'FOREIGN_ENTITY_MANAGER',
  'MIGRATION_IRREVERSIBLE',
  'SQLITE_DRIVER_MISSING',
] as const;

/** A code core or a storage adapter raises; see `TIDINGS_ERROR_CODES`. */
export type TidingsErrorCode = (typeof TIDINGS_ERROR_CODES)[number];

/** The codes of `StorageError`. */
export type StorageErrorCode = 'STORAGE_ERROR' | 'STORAGE_BUSY' | 'CONNECTION_LOST' | 'STORAGE_FULL' | 'STORAGE_READ_ONLY';

/** What a `TidingsError` is given besides its code and message. */
export interface TidingsErrorOptions {
  cause?: unknown;
  /** Whether the same call may succeed if made again; default false. */
  retryable?: boolean;
}

/** Base of every error Tidings throws; `code` is stable and safe to switch on. */
export class TidingsError extends Error {
  /** Stable machine-readable code, e.g. `PAYLOAD_TOO_LARGE`. */
  // `| (string & {})`: a caught TidingsError may be a plugin's (CLI, dashboard, Nest, faults) with its own code; editors still offer core's.
  readonly code: TidingsErrorCode | (string & {});
  /** Whether the same call may succeed if made again: a producer retries a send that failed with a retryable error. */
  readonly retryable: boolean;

  constructor(code: TidingsErrorCode | (string & {}), message: string, options?: TidingsErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/** The payload cannot be sent as it is (not JSON-serializable, or no payload at all). */
export class InvalidMessageError extends TidingsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_MESSAGE', message, options);
  }
}

/** The serialized payload is larger than the topic's `maxPayloadBytes`. */
export class PayloadTooLargeError extends TidingsError {
  constructor(
    readonly bytes: number,
    readonly limit: number,
    topic: string,
    /** The item's position when a `sendMany` batch was refused for it. */
    readonly index?: number,
  ) {
    super(
      'PAYLOAD_TOO_LARGE',
      `Payload${index === undefined ? '' : ` at index ${index} of the batch`} for topic "${topic}" is ${bytes} bytes, over the limit of ${limit} bytes. ` +
        `Send a smaller payload (store large blobs elsewhere and send a reference), or raise maxPayloadBytes on the topic.`,
    );
  }
}

/** A topic name is empty or uses characters outside `[A-Za-z0-9._:-]`. */
export class InvalidTopicError extends TidingsError {
  constructor(message: string) {
    super('INVALID_TOPIC', message);
  }
}

/** Topic, consumer or instance options are out of range or of the wrong type. */
export class InvalidOptionsError extends TidingsError {
  constructor(message: string) {
    super('INVALID_OPTIONS', message);
  }
}

/** A topic was declared twice with different delivery semantics. */
export class TopicConflictError extends TidingsError {
  constructor(message: string) {
    super('TOPIC_CONFLICT', message);
  }
}

/** The instance (or consumer) was closed; nothing more can be sent or consumed through it. */
export class ClosedError extends TidingsError {
  constructor(what: string) {
    super('CLOSED', `${what} is closed. Create a new Tidings instance (Tidings.create) to send or consume again.`);
  }
}

/** A message was asked to make a transition its semantic's machine does not allow. */
export class IllegalTransitionError extends TidingsError {
  constructor(
    readonly lifecycle: string,
    readonly from: string,
    readonly event: string,
  ) {
    super(
      'ILLEGAL_TRANSITION',
      `The ${lifecycle} lifecycle does not allow ${event} from state "${from}". ` +
        `See the lifecycle table in the README for the transitions each semantic allows.`,
    );
  }
}

/** The producer gave up waiting for the broker's ack after all retries. */
export class AckTimeoutError extends TidingsError {
  constructor(topic: string, id: string | undefined, attempts: number, options?: { cause?: unknown }) {
    super(
      'ACK_TIMEOUT',
      `No ack for message ${id ?? '(broker id)'} on topic "${topic}" after ${attempts} attempt(s). ` +
        `Check that the storage is reachable, or raise ackTimeoutMs / retry.attempts on the topic.`,
      { ...options, retryable: true },
    );
  }
}

/** A consumer settled a message whose lease had already expired and gone to another consumer. */
export class LeaseLostError extends TidingsError {
  constructor(topic: string, id: string) {
    super(
      'LEASE_LOST',
      `The lease on message ${id} of topic "${topic}" expired before it was settled; it will be (or was) redelivered. ` +
        `Raise leaseMs or call ctx.extendLease() in long handlers.`,
    );
  }
}

/**
 * The storage failed. Retryable when it was busy, lost its connection or failed for no known reason (`STORAGE_ERROR`);
 * not when it is full or read-only, which lasts until someone frees space or remounts. A code of a plugin's own is not
 * retryable unless its error says so.
 */
export class StorageError extends TidingsError {
  constructor(message: string, options?: TidingsErrorOptions & { code?: StorageErrorCode | (string & {}) }) {
    const code = options?.code ?? 'STORAGE_ERROR';
    super(code, message, { ...options, retryable: options?.retryable ?? (code === 'STORAGE_ERROR' || code === 'STORAGE_BUSY' || code === 'CONNECTION_LOST') });
  }
}

/** A subscription cannot be removed while consumers use it. */
export class SubscriptionInUseError extends TidingsError {
  constructor(topic: string, subscription: string, consumers: number, leased: number) {
    super(
      'SUBSCRIPTION_IN_USE',
      `Subscription "${subscription}" of topic "${topic}" is in use (${consumers} consumer(s) in this process, ${leased} message(s) leased): ` +
        `stop its consumers everywhere (await consumer.stop()) and let their leases settle, then remove it.`,
    );
  }
}

/** The storage adapter does not offer an operator's verb (pause, browse, discard, retry now). */
export class OperationNotSupportedError extends TidingsError {
  constructor(storage: string, method: string, what: string) {
    super(
      'OPERATION_NOT_SUPPORTED',
      `The ${storage} storage adapter has no ${method}(), so Tidings cannot ${what}. Implement ${method}() in the adapter (docs/writing-an-adapter.md says how, and @tidings/conformance checks it), or use the SQLite, PostgreSQL or memory adapter.`,
    );
  }
}

/** An operator's verb named a subscription storage has no record of. */
export class UnknownSubscriptionError extends TidingsError {
  constructor(topic: string, subscription: string) {
    super(
      'UNKNOWN_SUBSCRIPTION',
      `Topic "${topic}" has no recorded subscription "${subscription}": check the name (\`tidings stats\` lists them), or declare it first.`,
    );
  }
}
