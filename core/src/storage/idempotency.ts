/**
 * Remembers which message ids a consumer group has consumed, so a redelivery is not consumed twice.
 * `Tx` is the storage's transaction handle: a store sharing the handler's transaction makes
 * the record and the handler's writes commit together.
 */
export interface IdempotencyStore<Tx = unknown> {
  /** Short name for logs, e.g. `memory`. */
  readonly name: string;
  /**
   * Of `ids`, those recorded for `scope` and not yet purged (the store keeps no clock of its own). A scope is one
   * subscription's: see `idempotencyScope`; treat it as an opaque name of up to 301 characters.
   */
  seen(scope: string, ids: string[], tx?: Tx): Promise<Set<string>>;
  /** Record ids as consumed in `scope` until `expiresAt`; returns the ids that were new (the others were already held). */
  record(scope: string, ids: string[], expiresAt: number, tx?: Tx): Promise<string[]>;
  /** Forget records whose `expiresAt <= now`; returns how many. */
  purge(now: number): Promise<number>;
  /** Release resources; calling twice is fine. */
  close?(): Promise<void>;
}
