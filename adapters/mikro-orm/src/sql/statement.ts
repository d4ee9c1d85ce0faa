/** One SQL statement with `?` placeholders and its parameters, in the shared dialect-neutral text. */
export interface Statement {
  readonly sql: string;
  readonly params: unknown[];
}

/** `?, ?, ?` for `n` parameters. */
export const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

/** The columns a message row is read with. */
export const MESSAGE_COLUMNS =
  'id, topic, subscription, ordering_key, body, state, deliveries, available_at, created_at, lease_until, lease_token, last_error, headers, seq';
