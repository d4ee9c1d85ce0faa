import type { SendOptions } from '@tidings/core';

/** What a `TidingsRecord` sends with its payload: `id` (deduplicated on end-to-end topics), ordering `key`, `headers`, a delay, `em`. */
export type TidingsRecordOptions<Tx = unknown> = SendOptions<Tx>;

/**
 * A payload with its send options, for `TidingsClient.emit`, as `RmqRecord` and `NatsRecord` are for their clients:
 * `client.emit('orders', new TidingsRecord(order, { id: order.id, key: order.customer }))`.
 */
export class TidingsRecord<TData = unknown, Tx = unknown> {
  constructor(
    readonly data: TData,
    public options?: TidingsRecordOptions<Tx>,
  ) {}
}

/** Builds a `TidingsRecord`, as `RmqRecordBuilder` builds an `RmqRecord`: `new TidingsRecordBuilder(order).setOptions({ key }).build()`. */
export class TidingsRecordBuilder<TData = unknown, Tx = unknown> {
  private options?: TidingsRecordOptions<Tx>;

  constructor(private data?: TData) {}

  /** Sets the send options (replacing any set before). */
  setOptions(options: TidingsRecordOptions<Tx>): this {
    this.options = options;
    return this;
  }

  /** Sets the payload. */
  setData(data: TData): this {
    this.data = data;
    return this;
  }

  /** The record. */
  build(): TidingsRecord<TData, Tx> {
    return new TidingsRecord(this.data as TData, this.options);
  }
}
