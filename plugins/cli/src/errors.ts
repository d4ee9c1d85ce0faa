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

/** A subscription its topic neither records nor holds copies for, most often a typo. */
export class UnknownSubscriptionError extends TidingsError {
  constructor(
    readonly subscription: string,
    /** The topic it was looked for in; undefined when it was looked for in every topic. */
    readonly topic: string | undefined,
    /** The subscriptions there are (of the topic, or of every topic), so the message can offer them. */
    readonly known: string[],
    target: string,
  ) {
    super('UNKNOWN_SUBSCRIPTION', unknownSubscription(subscription, topic, known, target));
  }
}

function unknownSubscription(subscription: string, topic: string | undefined, known: string[], target: string): string {
  if (known.length === 0)
    return `Subscription "${subscription}" is unknown: ${topic === undefined ? `${target} records no subscriptions yet` : `topic "${topic}" has no subscriptions in ${target}`}.`;
  const scope = topic === undefined ? `any topic of ${target}` : `topic "${topic}" in ${target}`;
  return `Subscription "${subscription}" is unknown to ${scope}: no process declared it and it holds no messages. Known subscriptions: ${listed(known)}.`;
}

/** A command that reads one subscription was given none, and the topic has no `default` one to fall back on. */
export class SubscriptionRequiredError extends TidingsError {
  constructor(
    readonly topic: string,
    /** The topic's subscriptions, one of which to name. */
    readonly known: string[],
  ) {
    super(
      'SUBSCRIPTION_REQUIRED',
      `Topic "${topic}" has no default subscription, so name one with --subscription: ${listed(known)} (e.g. --subscription ${known[0]}).`,
    );
  }
}

/** `subscriptions remove` of a subscription whose messages are leased: consumers are working on it right now. */
export class SubscriptionLeasedError extends TidingsError {
  constructor(
    readonly topic: string,
    readonly subscription: string,
    /** Its copies leased when the command looked. */
    readonly leased: number,
  ) {
    super(
      'SUBSCRIPTION_IN_USE',
      `Subscription "${subscription}" of topic "${topic}" has ${leased} leased message${leased === 1 ? '' : 's'}: consumers are handling them. ` +
        `Stop its consumers and let their leases settle, then remove it; or pass --force to drop it anyway (those consumers then lose their leases).`,
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

/** `messages list --state` names a state the command does not show. */
export class UnknownStateError extends TidingsError {
  constructor(
    readonly state: string,
    readonly valid: readonly string[],
  ) {
    super('UNKNOWN_STATE', `--state ${JSON.stringify(state)} is not a state tidings messages list shows: pick one of ${valid.join(', ')}.`);
  }
}

/** `messages show` of an id the subscription does not hold (mistyped, or consumed and gone). */
export class MessageNotFoundError extends TidingsError {
  constructor(
    readonly topic: string,
    readonly subscription: string,
    readonly id: string,
    /** The command that lists what the subscription does hold. */
    listing: string,
    target: string,
  ) {
    super(
      'MESSAGE_NOT_FOUND',
      `No message "${id}" in subscription "${subscription}" of topic "${topic}" (${target}): the id is mistyped, or the message was consumed and is gone. ` +
        `\`${listing}\` lists the messages it holds.`,
    );
  }
}

/** A command that drops messages for good was run without `--yes`; nothing was dropped. */
export class ConfirmationRequiredError extends TidingsError {
  constructor(
    /** What would be dropped, e.g. `the 12 waiting or delayed messages of topic "orders"`. */
    readonly what: string,
    /** How many would be dropped, as counted when the command looked. */
    readonly count: number,
    /** The command as run, to repeat with --yes. */
    command: string,
  ) {
    super('CONFIRMATION_REQUIRED', `This would drop ${what} for good; nothing was dropped. To drop them, run it again with --yes: ${command} --yes`);
  }
}

/** `tidings viz all --format mermaid --out` a file that is not Markdown: a Mermaid file holds one diagram, and `all` is four. */
export class MermaidFileOfOneDiagramError extends TidingsError {
  constructor(readonly out: string) {
    const markdown = out.replace(/\.[^./\\]*$/, '') + '.md';
    super(
      'VIZ_MERMAID_ONE_DIAGRAM',
      `--out ${out}: a Mermaid file holds one diagram, and \`all\` is four lifecycles. ` +
        `Write Markdown with a diagram each (--out ${markdown}), or draw one lifecycle to this file (tidings viz at-least-once --out ${out}).`,
    );
  }
}
