import type { EntityManager } from '@mikro-orm/knex';
import type { IdempotencyStore } from '@tidings/core';
import type { MikroOrmStorage } from './storage.js';

/** Consumed ids in the `tidings_idempotency` table, written in the handler's own transaction. */
export class MikroOrmIdempotencyStore implements IdempotencyStore<EntityManager> {
  constructor(private readonly storage: MikroOrmStorage) {}

  /** The storage's name, read when asked: the storage makes this store before its own name is set. */
  get name(): string {
    return this.storage.name;
  }

  async seen(topic: string, ids: string[], tx?: EntityManager): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.storage.exec(
      `SELECT id FROM tidings_idempotency WHERE topic = ? AND id IN (${this.storage.dialect.jsonStrings})`,
      [topic, JSON.stringify(ids)],
      tx,
      'idempotency.seen',
    );
    return new Set(rows.map((r) => r.id as string));
  }

  async record(topic: string, ids: string[], expiresAt: number, tx?: EntityManager): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.storage.exec(
      `INSERT INTO tidings_idempotency (topic, id, expires_at) SELECT ?, value, ? FROM (${this.storage.dialect.jsonStrings}) AS ids WHERE true
       ON CONFLICT (topic, id) DO NOTHING RETURNING id`,
      [topic, expiresAt, JSON.stringify(ids)],
      tx,
      'idempotency.record',
    );
    return rows.map((r) => r.id as string);
  }

  async purge(now: number): Promise<number> {
    return (await this.storage.exec(`DELETE FROM tidings_idempotency WHERE expires_at <= ? RETURNING id`, [now], undefined, 'idempotency.purge')).length;
  }
}
