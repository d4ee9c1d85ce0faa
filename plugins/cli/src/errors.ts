import { TidingsError } from '@tidings/core';

/** `--db` names a SQLite file that does not exist; the CLI never creates one just to look inside. */
export class DatabaseNotFoundError extends TidingsError {
  constructor(message: string) {
    super('DB_NOT_FOUND', message);
  }
}

/** `--db` names a file that is not a SQLite database (or a folder). */
export class NotADatabaseError extends TidingsError {
  constructor(message: string) {
    super('NOT_A_DATABASE', message);
  }
}

/** A topic that has no rows at all in the database, most often a typo. */
export class UnknownTopicError extends TidingsError {
  constructor(
    readonly topic: string,
    /** The topics the database does hold, so the message can offer them. */
    readonly known: string[],
    target: string,
  ) {
    super(
      'UNKNOWN_TOPIC',
      known.length === 0
        ? `Topic "${topic}" has no messages: ${target} holds no messages at all yet.`
        : `Topic "${topic}" has no messages in ${target}. Topics with messages: ${listed(known)}.`,
    );
  }
}

/** A long list cut short: the point is to spot the intended name, not to dump thousands. */
function listed(names: string[], max = 20): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}
