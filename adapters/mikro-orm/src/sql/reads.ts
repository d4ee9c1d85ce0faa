import { InvalidOptionsError } from '@tidings/core';
import type { BrowseRequest, PeekRequest, PurgeRequest } from '@tidings/core/adapter';
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
    out.push({
      sql: `DELETE FROM tidings_message WHERE state IN (${marks(req.states.length)}) AND created_at < ?${byTopic} RETURNING id`,
      params: [...req.states, req.before, ...topic],
    });
  }
  return out;
}

/**
 * A page of a subscription's copies in delivery order, continuing after the cursor (`availableAt:seq`); one row more
 * than the page, to tell whether another follows. By state it walks `tidings_message_ready`, by id the unique copy
 * index, by key `tidings_message_key`: never the whole topic.
 */
export function browseStatement(req: BrowseRequest): Statement {
  const where = ['topic = ?', 'subscription = ?'];
  const params: unknown[] = [req.topic, req.subscription];
  const add = (condition: string, ...values: unknown[]) => {
    where.push(condition);
    params.push(...values);
  };
  if (req.state !== undefined) add('state = ?', req.state);
  if (req.id !== undefined) add('id = ?', req.id);
  if (req.key !== undefined) add('ordering_key = ?', req.key);
  if (req.due) add(req.due.later ? 'available_at > ?' : 'available_at <= ?', req.due.now);
  if (req.after !== undefined) {
    const [at, seq] = req.after.split(':').map(Number);
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(seq))
      throw new InvalidOptionsError(
        `"${req.after}" is not a cursor this storage made: pass the \`next\` of the page before, or leave it out to start from the first page.`,
      );
    add('(available_at > ? OR (available_at = ? AND seq > ?))', at, at, seq);
  }
  return {
    sql: `SELECT ${MESSAGE_COLUMNS} FROM tidings_message WHERE ${where.join(' AND ')} ORDER BY available_at, seq LIMIT ?`,
    params: [...params, req.limit + 1],
  };
}
