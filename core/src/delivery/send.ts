/** The broker's answer to a send. */
export interface SendAck {
  /** The message id (producer-made, or made for the message when none was given). */
  id: string;
  /** True when the broker already held this id and did not store the message again. */
  duplicate: boolean;
}

/** Per-send options. */
export interface SendOptions<Tx = unknown> {
  /** Your id for the message; end-to-end exactly-once deduplicates by it. */
  id?: string;
  /** Deliver no earlier than this many ms from now. */
  delayMs?: number;
  /** Deliver no earlier than this time. */
  deliverAt?: Date | number;
  /** Store inside your own transaction (transactional outbox): it commits with your writes. */
  em?: Tx;
  /** String name/value pairs stored and delivered with the message (`message.headers`), e.g. a trace context; at most 8 KiB. */
  headers?: Record<string, string>;
}

/** Options for `sendMany`; `id` maps each payload to its id. */
export interface SendManyOptions<T, Tx = unknown> extends Omit<SendOptions<Tx>, 'id'> {
  id?: (payload: T, index: number) => string;
}
