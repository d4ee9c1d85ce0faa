import type {
  DiscardRequest,
  ExpireRequest,
  ExtendLeaseRequest,
  RedriveRequest,
  ReleaseRequest,
  RetryNowRequest,
  SettleItem,
  SettleRequest,
} from '@tidings/core/adapter';
import type { SqlDialect } from '../dialect.js';
import { MESSAGE_COLUMNS, type Statement } from './statement.js';

/** Every compare-and-set names its subscription's copies and the state it moves from. */
const COPY = 'topic = ? AND subscription = ? AND state = ?';

/** Pushes one lease's deadline out, while the lease token still matches. */
export function extendLeaseStatement(req: ExtendLeaseRequest): Statement {
  return {
    sql: `UPDATE tidings_message SET lease_until = ? WHERE ${COPY} AND id = ? AND lease_token = ? RETURNING id`,
    params: [req.leaseUntil, req.topic, req.subscription, req.state, req.item.id, req.item.leaseToken ?? null],
  };
}

/** Settles the items of one lease token (or of none): deleted, or moved to `to` and unleased. */
export function settleStatement(d: SqlDialect, req: SettleRequest, token: string | undefined, items: SettleItem[]): Statement {
  const where = `${COPY} AND ${d.stringIn('id')}${token === undefined ? '' : ' AND lease_token = ?'}`;
  const params = [req.topic, req.subscription, req.from, JSON.stringify(items.map((i) => i.id)), ...(token === undefined ? [] : [token])];
  if (req.remove) return { sql: `DELETE FROM tidings_message WHERE ${where} RETURNING id`, params };
  return { sql: `UPDATE tidings_message SET state = ?, lease_until = NULL, lease_token = NULL WHERE ${where} RETURNING id`, params: [req.to, ...params] };
}

/** Releases one leased copy: unleased, in `to`, available again at its own time, with its error kept. */
export function releaseStatement(req: ReleaseRequest, item: ReleaseRequest['items'][number]): Statement {
  const token = item.leaseToken === undefined ? [] : [item.leaseToken];
  return {
    sql: `UPDATE tidings_message SET state = ?, available_at = ?, lease_until = NULL, lease_token = NULL, last_error = ?
          WHERE ${COPY} AND id = ?${token.length ? ' AND lease_token = ?' : ''} RETURNING id`,
    params: [req.to, item.availableAt, item.error ?? null, req.topic, req.subscription, req.from, item.id, ...token],
  };
}

/** Takes back the leases expired by `now` whose deliveries lie in the range. */
export function expireStatement(req: ExpireRequest): Statement {
  const { atLeast, below } = req.deliveries ?? {};
  return {
    sql: `UPDATE tidings_message SET state = ?, available_at = ?, lease_until = NULL, lease_token = NULL
          WHERE ${COPY} AND lease_until <= ?${atLeast === undefined ? '' : ' AND deliveries >= ?'}${below === undefined ? '' : ' AND deliveries < ?'}
          RETURNING ${MESSAGE_COLUMNS}`,
    params: [
      req.to,
      req.now,
      req.topic,
      req.subscription,
      req.from,
      req.now,
      ...(atLeast === undefined ? [] : [atLeast]),
      ...(below === undefined ? [] : [below]),
    ],
  };
}

/** Dead copies back as new lifecycles: deliveries reset, fresh timestamps, their place in store order kept. */
export function redriveStatement(d: SqlDialect, req: RedriveRequest): Statement {
  return {
    sql: `UPDATE tidings_message SET state = ?, deliveries = 0, available_at = ?, created_at = ?, lease_until = NULL, lease_token = NULL, last_error = NULL
          WHERE ${COPY}${req.ids ? ` AND ${d.stringIn('id')}` : ''} RETURNING id`,
    params: [req.to, req.now, req.now, req.topic, req.subscription, req.from, ...(req.ids ? [JSON.stringify(req.ids)] : [])],
  };
}

/**
 * Drops unleased copies in a state, all or by id; answers one row holding the count (`n`): where a statement may hold a
 * modifying CTE the count is made there, else one small row per copy dropped.
 */
export function discardStatement(d: SqlDialect, req: DiscardRequest): Statement {
  const del = `DELETE FROM tidings_message WHERE ${COPY} AND lease_token IS NULL${req.ids ? ` AND ${d.stringIn('id')}` : ''}`;
  const params = [req.topic, req.subscription, req.state, ...(req.ids ? [JSON.stringify(req.ids)] : [])];
  return { sql: d.modifyingCtes ? `WITH gone AS (${del} RETURNING 1) SELECT COUNT(*) AS n FROM gone` : `${del} RETURNING 1 AS n`, params };
}

/** Delayed copies in a state due now, all or by id. */
export function retryNowStatement(d: SqlDialect, req: RetryNowRequest): Statement {
  return {
    sql: `UPDATE tidings_message SET available_at = ? WHERE ${COPY} AND available_at > ?${req.ids ? ` AND ${d.stringIn('id')}` : ''} RETURNING id`,
    params: [req.now, req.topic, req.subscription, req.state, req.now, ...(req.ids ? [JSON.stringify(req.ids)] : [])],
  };
}
