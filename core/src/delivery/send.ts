/** The broker's answer to a send. */
export interface SendAck {
  /** The message id (producer-made, or made for the message when none was given). */
  id: string;
  /** True when the broker already held this id and did not store the message again. */
  duplicate: boolean;
}

/** Per-send options. */
export interface SendOptions<Tx = unknown> {
  /** Your id for the message; end-to-end exactly-once deduplicates by it. Without it, Tidings makes a time-ordered UUID (v7). */
  id?: string;
  /**
   * Its ordering key (an order number, an account): on a topic declared with `ordering: 'key'`, messages with one
   * key are handled one at a time in the order they were stored, per subscription. Up to 200 characters.
   */
  key?: string;
  /** Deliver no earlier than this many ms from now. */
  delayMs?: number;
  /** Deliver no earlier than this time. */
  deliverAt?: Date | number;
  /** Store inside your own transaction (transactional outbox): it commits with your writes. */
  em?: Tx;
  /** String name/value pairs stored and delivered with the message (`message.headers`), e.g. a trace context; at most 8 KiB. */
  headers?: Record<string, string>;
}

/** Options for `sendMany`; `id` and `key` map each payload to its id and ordering key. */
export interface SendManyOptions<T, Tx = unknown> extends Omit<SendOptions<Tx>, 'id' | 'key'> {
  id?: (payload: T, index: number) => string;
  key?: (payload: T, index: number) => string | undefined;
}
