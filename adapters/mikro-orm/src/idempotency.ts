import type { EntityManager } from '@mikro-orm/knex';
import type { IdempotencyStore } from '@tidings/core/adapter';
import type { SqlConnection } from './connection.js';

/** Consumed ids in the `tidings_idempotency` table, written in the handler's own transaction. */
export class MikroOrmIdempotencyStore implements IdempotencyStore<EntityManager> {
  readonly name: string;

  constructor(private readonly connection: SqlConnection) {
    this.name = connection.dialect.name;
  }

  async seen(topic: string, ids: string[], tx?: EntityManager): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.connection.exec(
      `SELECT id FROM tidings_idempotency WHERE topic = ? AND ${this.connection.dialect.stringIn('id')}`,
      [topic, JSON.stringify(ids)],
      tx,
      'idempotency.seen',
    );
    return new Set(rows.map((r) => r.id as string));
  }

  async record(topic: string, ids: string[], expiresAt: number, tx?: EntityManager): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.connection.exec(
      `INSERT INTO tidings_idempotency (topic, id, expires_at) SELECT ?, value, ? FROM (${this.connection.dialect.jsonStrings}) AS ids WHERE true
       ON CONFLICT (topic, id) DO NOTHING RETURNING id`,
      [topic, expiresAt, JSON.stringify(ids)],
      tx,
      'idempotency.record',
    );
    return rows.map((r) => r.id as string);
  }

  async purge(now: number): Promise<number> {
    return (await this.connection.exec(`DELETE FROM tidings_idempotency WHERE expires_at <= ? RETURNING id`, [now], undefined, 'idempotency.purge')).length;
  }
}
