import type { NewMessage, StoreRequest } from '@tidings/core/adapter';
import type { SqlDialect } from '../dialect.js';
import type { Statement } from './statement.js';

/**
 * The dedup record: an id is new if it has no record, or its record's window has passed. Each id once (PostgreSQL
 * refuses an upsert that touches a row twice), in sorted order so two brokers storing overlapping batches lock rows
 * in the same order and cannot deadlock. Returns the ids found new.
 */
export function dedupRecord(d: SqlDialect, req: StoreRequest): Statement {
  return {
    sql: `INSERT INTO tidings_dedup (topic, id, expires_at) SELECT ?, value, ? FROM (${d.jsonStrings}) AS ids WHERE true
      ON CONFLICT (topic, id) DO UPDATE SET expires_at = excluded.expires_at WHERE tidings_dedup.expires_at <= ? RETURNING id`,
    params: [req.topic, req.dedupUntil, JSON.stringify([...new Set(req.messages.map((m) => m.id))].sort()), req.now],
  };
}

/**
 * The copies: one row per message and recorded subscription, in the batch's order (so store order per subscription
 * follows it); a subscription that holds the id already gets none. `which` filters the batch (the dedup record's new
 * ids). Returns the id of every copy inserted.
 */
export function insertCopies(d: SqlDialect, req: StoreRequest, messages: NewMessage[], which = 'true'): Statement {
  return {
    sql: `INSERT INTO tidings_message (topic, subscription, id, ordering_key, body, state, deliveries, available_at, created_at, last_error, headers)
      SELECT ?, s.name, m.id, m.ordering_key, m.body, ?, 0, m.available_at, ?, m.last_error, m.headers
      FROM (${d.jsonMessages}) AS m JOIN tidings_subscription s ON s.topic = ? WHERE ${which} ORDER BY m.n, s.name${d.registryLock}
      ON CONFLICT (topic, id, subscription) DO NOTHING RETURNING id`,
    params: [req.topic, req.state, req.now, JSON.stringify(messages), req.topic],
  };
}

/** Whether the topic has a subscription at all: a store into none is not a duplicate, only kept nowhere. */
export function anySubscription(topic: string): Statement {
  return { sql: `SELECT name FROM tidings_subscription WHERE topic = ? LIMIT 1`, params: [topic] };
}

/** Within one batch the first of two equal ids is the one stored. */
export function firstOfEach(messages: readonly NewMessage[]): NewMessage[] {
  const ids = new Set<string>();
  return messages.filter((m) => !ids.has(m.id) && ids.add(m.id));
}
