import type { StoredMessage } from '../storage/contract.js';
import type { Settler, SettleContext } from './settler.js';
import type { SubscriptionRuntime } from './runtime.js';

/** What a delivery strategy needs of its consumer. */
export interface DeliveryContext<Tx> {
  readonly s: SettleContext & Pick<SubscriptionRuntime, 'scope'>;
  readonly concurrency: number;
  readonly settler: Settler;
  /**
   * Runs the handler on one message; `em` gives the handle its consumption commits in (undefined outside a
   * transaction), asked for only when the handler reads `ctx.em`.
   */
  handle(m: StoredMessage, em: () => Tx | undefined): Promise<void>;
  /** Whether the consumer stopped waiting for its handlers (see `StopOptions`). */
  abandoned(): boolean;
  /** Aborted when the consumer stops waiting for its handlers: a transaction must not wait for one any longer. */
  readonly abandonSignal: AbortSignal;
}

/** The handle of a handler that runs outside any transaction. */
export const noTransaction = (): undefined => undefined;

/** Runs a leased batch's handlers and settles each message as its lifecycle says. */
export interface Delivery {
  /** Resolves when the batch's handlers are done; settling may go on (see `Settler.settled`). */
  process(batch: StoredMessage[]): Promise<void>;
}

/** Runs `work` on every item, at most `concurrency` at a time. */
export async function runAll<I>(items: readonly I[], concurrency: number, work: (item: I) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
