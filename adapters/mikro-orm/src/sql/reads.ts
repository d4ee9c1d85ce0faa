import type { PeekRequest, PurgeRequest } from '@tidings/core';
import { MESSAGE_COLUMNS, marks, type Statement } from './statement.js';

/** Copies by topic, subscription and state. */
export function countsStatement(topic?: string): Statement {
  return {
    sql: `SELECT topic, subscription, state, COUNT(*) AS n FROM tidings_message${topic === undefined ? '' : ' WHERE topic = ?'} GROUP BY topic, subscription, state`,
    params: topic === undefined ? [] : [topic],
  };
}

/** A subscription's copies in one state, in store order. */
export function peekStatement(req: PeekRequest): Statement {
  return {
    sql: `SELECT ${MESSAGE_COLUMNS} FROM tidings_message WHERE topic = ? AND subscription = ? AND state = ? ORDER BY seq LIMIT ?`,
    params: [req.topic, req.subscription, req.state, req.limit],
  };
}

/** What retention drops: expired dedup records, and (when asked) rows in the given states created before `before`. */
export function purgeStatements(req: PurgeRequest): Statement[] {
  const byTopic = req.topic === undefined ? '' : ' AND topic = ?';
  const topic = req.topic === undefined ? [] : [req.topic];
  const out: Statement[] = [{ sql: `DELETE FROM tidings_dedup WHERE expires_at <= ?${byTopic} RETURNING id`, params: [req.now, ...topic] }];
  if (req.before !== undefined && req.states && req.states.length > 0) {
    out.push({ sql: `DELETE FROM tidings_message WHERE state IN (${marks(req.states.length)}) AND created_at < ?${byTopic} RETURNING id`, params: [...req.states, req.before, ...topic] });
  }
  return out;
}
