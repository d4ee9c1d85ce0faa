import type { LeaseRequest } from '@tidings/core/adapter';
import type { SqlDialect } from '../dialect.js';
import { marks, type Statement } from './statement.js';

/** What a lease hands back besides what it set itself. */
const RETURNING = 'seq, id, ordering_key, body, deliveries, created_at, available_at, last_error, headers';

/**
 * The lease, one statement: the candidates (ready, due, oldest first) and, with `keyHeldIn`, only those whose key no
 * earlier copy in those states holds (so only a key's head, and never two of one key in a batch), moved or deleted
 * as a compare-and-set that counts the delivery.
 */
export function leaseStatement(d: SqlDialect, req: LeaseRequest): Statement {
  const held = req.keyHeldIn;
  const keys = held
    ? ` AND (m.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM tidings_message e WHERE e.topic = m.topic AND e.subscription = m.subscription
         AND e.ordering_key = m.ordering_key AND e.seq < m.seq AND e.state IN (${marks(held.length)})))`
    : '';
  const pick = `SELECT m.seq FROM tidings_message m WHERE m.topic = ? AND m.subscription = ? AND m.state = ? AND m.available_at <= ?${keys}
                ORDER BY m.available_at, m.seq LIMIT ?${d.lockClause}`;
  const params = [req.topic, req.subscription, req.from, req.now, ...(held ?? []), req.limit];
  if (req.remove) return { sql: `DELETE FROM tidings_message WHERE ${d.seqIn(pick)} RETURNING ${RETURNING}`, params };
  return {
    sql: `UPDATE tidings_message SET state = ?, deliveries = deliveries + 1, lease_until = ?, lease_token = ? WHERE ${d.seqIn(pick)} RETURNING ${RETURNING}`,
    params: [req.to, req.leaseUntil, req.leaseToken, ...params],
  };
}
