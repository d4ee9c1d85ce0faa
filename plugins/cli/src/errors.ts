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

/** A topic the database neither records nor holds messages of, most often a typo. */
export class UnknownTopicError extends TidingsError {
  constructor(
    readonly topic: string,
    /** The topics the database does know, so the message can offer them. */
    readonly known: string[],
    target: string,
  ) {
    super(
      'UNKNOWN_TOPIC',
      known.length === 0
        ? `Topic "${topic}" is unknown: ${target} holds no topics yet.`
        : `Topic "${topic}" is unknown to ${target}: no process declared it and it has no messages. Known topics: ${listed(known)}.`,
    );
  }
}

/** A topic with messages but no record in the topic registry (last declared by a Tidings from before the registry). */
export class TopicNotRecordedError extends TidingsError {
  constructor(
    readonly topic: string,
    target: string,
  ) {
    super(
      'TOPIC_NOT_RECORDED',
      `Topic "${topic}" has messages in ${target} but no record in its topic registry, so its semantic is not known. ` +
        `Start the application that declares it once (any process declaring the topic records it), then run this again.`,
    );
  }
}

/** A long list cut short: the point is to spot the intended name, not to dump thousands. */
function listed(names: string[], max = 20): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** `tidings viz` was asked for a machine it does not draw. */
export class UnknownVizTargetError extends TidingsError {
  constructor(
    readonly target: string,
    readonly valid: readonly string[],
  ) {
    super('UNKNOWN_VIZ_TARGET', `tidings viz cannot draw ${JSON.stringify(target)}: pick one of ${valid.join(', ')}.`);
  }
}

/** `tidings viz --format` names a format it does not write. */
export class UnknownVizFormatError extends TidingsError {
  constructor(
    readonly format: string,
    readonly valid: readonly string[],
  ) {
    super('UNKNOWN_VIZ_FORMAT', `--format ${JSON.stringify(format)} is not one tidings viz writes: pick one of ${valid.join(', ')}.`);
  }
}

/** `--out` points into a folder that does not exist; the CLI writes a file but never makes folders for it. */
export class OutFolderNotFoundError extends TidingsError {
  constructor(
    readonly out: string,
    readonly folder: string,
  ) {
    super('OUT_FOLDER_NOT_FOUND', `--out ${out}: the folder ${folder} does not exist (or is not a folder). Create it first, or write somewhere else.`);
  }
}
