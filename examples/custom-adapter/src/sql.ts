/**
 * The tables. A message is stored as one row per subscription (a copy), each moving through its own states; `seq`
 * is store order, which leases, peeks and ordering keys all follow.
 */
export const SCHEMA = `
  CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY,  -- store order, so leases hand out the oldest first and a key's messages go in turn
    topic        TEXT    NOT NULL,
    subscription TEXT    NOT NULL,     -- whose copy this is: every move names it
    id           TEXT    NOT NULL,
    ordering_key TEXT,                 -- the message's key, on every copy; NULL when sent without one
    body         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    lease_until  INTEGER,
    lease_token  TEXT,
    last_error   TEXT,                 -- why the last delivery failed, shown with dead letters
    headers      TEXT,                 -- the message's headers as JSON text, handed back as they were
    UNIQUE (topic, subscription, id)   -- a subscription holding an id gets no second copy of it
  );
  -- A lease's candidates: one subscription's copies in one state, due first, in store order.
  CREATE INDEX IF NOT EXISTS messages_ready ON messages (topic, subscription, state, available_at, seq);
  -- What a key-holding lease asks of each candidate: is an earlier copy of its key still held? Only keyed rows.
  CREATE INDEX IF NOT EXISTS messages_key ON messages (topic, subscription, ordering_key, seq) WHERE ordering_key IS NOT NULL;
  -- Dedup windows outlive their messages (and belong to the topic, not to a subscription), so they get a table of their own.
  CREATE TABLE IF NOT EXISTS dedup (topic TEXT NOT NULL, id TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (topic, id));
  -- The idempotency store: ids exactly-once consumers have consumed.
  CREATE TABLE IF NOT EXISTS consumed (topic TEXT NOT NULL, id TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (topic, id));
  -- The topic registry: each declared topic's lifecycle and ordering, as first declared.
  CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, lifecycle TEXT NOT NULL, ordering TEXT, dead_letter TEXT, max_deliveries INTEGER NOT NULL, declared_at INTEGER NOT NULL
  );
  -- The subscription registry: which subscriptions a store copies into, read by the store itself.
  CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL, name TEXT NOT NULL, dead_letter TEXT, max_deliveries INTEGER NOT NULL, declared_at INTEGER NOT NULL, PRIMARY KEY (topic, name)
  );
`;

/** The copies a move may touch: one subscription's, in the state the request says they are in. */
const COPIES = `topic = @topic AND subscription = @subscription AND state = @from`;

/** The compare-and-set every settle and release makes: the copy is still in `from` and, when a token is given, still under that lease. */
const STILL_HELD = `${COPIES} AND id = @id AND (@leaseToken IS NULL OR lease_token = @leaseToken)`;

/** Keeps a candidate only if no copy of its key stored before it (same topic and subscription) is in one of `@held`. */
const KEY_FREE = `(m.ordering_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM messages e
    WHERE e.topic = m.topic AND e.subscription = m.subscription AND e.ordering_key = m.ordering_key
      AND e.seq < m.seq AND e.state IN (SELECT value FROM json_each(@held))))`;

/** The statements, by storage verb; parameters are named (`@topic`), bound from plain objects. */
export const SQL = {
  /** Whether the id's dedup window still holds at `now`. */
  inWindow: `SELECT 1 FROM dedup WHERE topic = @topic AND id = @id AND expires_at > @now`,
  /** Whether the topic has any subscription: a store into none keeps nothing, and refuses nothing. */
  anySubscription: `SELECT 1 FROM subscriptions WHERE topic = @topic LIMIT 1`,
  /**
   * One copy of a message per subscription recorded for the topic, read from the registry by this very statement, so
   * a subscription is either recorded before the store (and gets its copy) or after it (and never sees the message).
   */
  insertCopies: `INSERT INTO messages (topic, subscription, id, ordering_key, body, state, available_at, created_at, last_error, headers)
    SELECT @topic, name, @id, @key, @body, @state, @availableAt, @now, @lastError, @headers FROM subscriptions WHERE topic = @topic
    ON CONFLICT (topic, subscription, id) DO NOTHING`,
  /** Opens the id's window; a record whose window passed (not purged yet) is reused for the new one. */
  recordDedup: `INSERT INTO dedup (topic, id, expires_at) VALUES (@topic, @id, @until) ON CONFLICT (topic, id) DO UPDATE SET expires_at = excluded.expires_at`,

  /**
   * The lease: pick and claim in one statement, so no other broker claims a row in between. With `holdKeys`, only a
   * key's first waiting copy is a candidate, checked in the same statement: no round trip per key, and a key with a
   * deep backlog offers one candidate, never a batch full of messages that would have to wait.
   */
  lease(o: { remove: boolean; holdKeys: boolean }): string {
    const pick = `SELECT m.seq FROM messages m
      WHERE m.topic = @topic AND m.subscription = @subscription AND m.state = @from AND m.available_at <= @now${o.holdKeys ? ` AND ${KEY_FREE}` : ''}
      ORDER BY m.available_at, m.seq LIMIT @limit`;
    return o.remove
      ? `DELETE FROM messages WHERE seq IN (${pick}) RETURNING *`
      : `UPDATE messages SET state = @to, deliveries = deliveries + 1, lease_until = @leaseUntil, lease_token = @leaseToken WHERE seq IN (${pick}) RETURNING *`;
  },
  /** Pushes one lease's deadline out while its token still matches. */
  extendLease: `UPDATE messages SET lease_until = @leaseUntil WHERE ${COPIES} AND id = @id AND lease_token = @leaseToken`,
  /** A settle that ends the message's life. */
  settleRemove: `DELETE FROM messages WHERE ${STILL_HELD}`,
  /** A settle that keeps the copy, unleased, in `to`. */
  settleMove: `UPDATE messages SET state = @to, lease_until = NULL, lease_token = NULL WHERE ${STILL_HELD}`,
  /** A nack or a death: unleased, in `to`, available at its own time, with the handler's error kept. */
  release: `UPDATE messages SET state = @to, available_at = @availableAt, lease_until = NULL, lease_token = NULL, last_error = @error WHERE ${STILL_HELD}`,
  /** Leases past their deadline whose deliveries lie in the range, back unleased and available at `now`. */
  expire: `UPDATE messages SET state = @to, available_at = @now, lease_until = NULL, lease_token = NULL
    WHERE ${COPIES} AND lease_until <= @now AND (@atLeast IS NULL OR deliveries >= @atLeast) AND (@below IS NULL OR deliveries < @below) RETURNING *`,
  /** Dead copies back as new lifecycles (no deliveries, fresh timestamps), keeping `seq`: their place in store order, and so their key's turn. */
  redrive: `UPDATE messages SET state = @to, deliveries = 0, available_at = @now, created_at = @now, lease_until = NULL, lease_token = NULL, last_error = NULL
    WHERE ${COPIES} AND (@ids IS NULL OR id IN (SELECT value FROM json_each(@ids))) RETURNING seq, id`,

  /** Copies by topic, subscription and state. */
  counts: `SELECT topic, subscription, state, COUNT(*) AS n FROM messages WHERE @topic IS NULL OR topic = @topic GROUP BY topic, subscription, state`,
  /** One subscription's copies in one state, in store order. */
  peek: `SELECT * FROM messages WHERE topic = @topic AND subscription = @subscription AND state = @state ORDER BY seq LIMIT @limit`,

  /** Records a topic unless one of its name is: the first declaration wins. */
  declareTopic: `INSERT INTO topics (name, lifecycle, ordering, dead_letter, max_deliveries, declared_at)
    VALUES (@name, @lifecycle, @ordering, @deadLetter, @maxDeliveries, @declaredAt) ON CONFLICT (name) DO NOTHING`,
  /** One recorded topic. */
  topic: `SELECT * FROM topics WHERE name = @name`,
  /** Every recorded topic, by name. */
  topics: `SELECT * FROM topics ORDER BY name`,
  /** Records a subscription unless it is: the first declaration wins. */
  declareSubscription: `INSERT INTO subscriptions (topic, name, dead_letter, max_deliveries, declared_at)
    VALUES (@topic, @name, @deadLetter, @maxDeliveries, @declaredAt) ON CONFLICT (topic, name) DO NOTHING`,
  /** One recorded subscription. */
  subscription: `SELECT * FROM subscriptions WHERE topic = @topic AND name = @name`,
  /** The recorded subscriptions of a topic (or of all), by topic and name. */
  subscriptions: `SELECT * FROM subscriptions WHERE @topic IS NULL OR topic = @topic ORDER BY topic, name`,
  /** Forgets a subscription, so no later store copies into it. */
  forgetSubscription: `DELETE FROM subscriptions WHERE topic = @topic AND name = @name`,
  /** Every copy a subscription holds, in every state. */
  dropCopies: `DELETE FROM messages WHERE topic = @topic AND subscription = @name`,

  /** Dedup records whose window has passed. */
  purgeDedup: `DELETE FROM dedup WHERE expires_at <= @now AND (@topic IS NULL OR topic = @topic)`,
  /** Copies in `@states` created before `@before`; none without `@before`. */
  purgeMessages: `DELETE FROM messages WHERE @before IS NOT NULL AND created_at < @before AND state IN (SELECT value FROM json_each(@states))
    AND (@topic IS NULL OR topic = @topic)`,

  /** Which of the ids an exactly-once consumer has consumed. */
  seen: `SELECT id FROM consumed WHERE topic = @topic AND id IN (SELECT value FROM json_each(@ids))`,
  /** Records one consumed id; a change of 0 rows means another record won. */
  record: `INSERT INTO consumed (topic, id, expires_at) VALUES (@topic, @id, @expiresAt) ON CONFLICT DO NOTHING`,
  /** Consumed ids whose record expired. */
  purgeConsumed: `DELETE FROM consumed WHERE expires_at <= @now`,
};
