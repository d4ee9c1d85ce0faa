import type { IdempotencyStore } from '@tidings/core/adapter';

/** Consumed ids kept in process memory, each until its expiry; lost on restart. */
export class MemoryIdempotencyStore implements IdempotencyStore<unknown> {
  readonly name = 'memory';
  private readonly records = new Map<string, Map<string, number>>();

  async seen(topic: string, ids: string[]): Promise<Set<string>> {
    const held = this.records.get(topic);
    return new Set(held ? ids.filter((id) => held.has(id)) : []);
  }

  async record(topic: string, ids: string[], expiresAt: number): Promise<string[]> {
    let held = this.records.get(topic);
    if (!held) this.records.set(topic, (held = new Map()));
    const fresh: string[] = [];
    for (const id of ids) {
      if (held.has(id)) continue;
      held.set(id, expiresAt);
      fresh.push(id);
    }
    return fresh;
  }

  /** Drops records again, for a transaction that rolled back. */
  forget(topic: string, ids: string[]): void {
    const held = this.records.get(topic);
    for (const id of ids) held?.delete(id);
  }

  async purge(now: number): Promise<number> {
    let removed = 0;
    for (const held of this.records.values()) {
      for (const [id, expiresAt] of held) {
        if (expiresAt <= now) {
          held.delete(id);
          removed++;
        }
      }
    }
    return removed;
  }
}

/** An in-memory idempotency store: for tests, and for exactly-once over memory storage. */
export function memoryIdempotency(): IdempotencyStore<unknown> {
  return new MemoryIdempotencyStore();
}
