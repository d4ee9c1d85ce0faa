import { DEFAULT_SUBSCRIPTION, InvalidOptionsError } from '@tidings/core';
import { lifecyclePlans } from '@tidings/core/adapter';
import { subscriptionLedger, tidingsCommand, whereIs, type DbOptions, type Output } from './commands.js';
import { withDatabase } from './database.js';
import { ConfirmationRequiredError } from './errors.js';

/** Options of `tidings pause` and `tidings resume`. */
export interface PauseOptions extends DbOptions {
  topic: string;
  /** The subscription to pause or resume (default `default`). */
  subscription?: string;
  json?: boolean;
  now?: number;
}

/** Whether the subscription is paused after the command, since when, and whether the command changed that. */
export interface PauseResult {
  subscription: string;
  paused: boolean;
  /** Epoch ms; undefined once resumed. */
  pausedAt?: number;
  /** False when it already was as asked, so nothing was written. */
  changed: boolean;
}

/** Options of `tidings empty`. */
export interface EmptyOptions extends DbOptions {
  topic: string;
  /** The subscription to empty (default `default`). */
  subscription?: string;
  /** Drop them; without it the command only says how many it would drop, and fails. */
  yes?: boolean;
  json?: boolean;
}

/** What `tidings empty` dropped, and the leased messages it left to their consumers. */
export interface EmptyResult {
  subscription: string;
  dropped: number;
  leased: number;
}

/** Options of `tidings dlq discard`. */
export interface DlqDiscardOptions extends DbOptions {
  topic: string;
  /** The subscription whose dead letters to discard (default `default`). */
  subscription?: string;
  /** Only these dead letters (default: all of the subscription's). */
  ids?: string[];
  /** Drop them; without it the command only says how many it would drop, and fails. */
  yes?: boolean;
  json?: boolean;
}

/** What `tidings dlq discard` dropped, and the asked-for ids that were not dead letters. */
export interface DlqDiscardResult {
  subscription: string;
  discarded: number;
  missing: string[];
}

/** Options of `tidings retry-now`. */
export interface RetryNowOptions extends DbOptions {
  topic: string;
  /** The subscription whose delayed messages to make due (default `default`). */
  subscription?: string;
  /** Only these messages (default: every delayed one). */
  ids?: string[];
  json?: boolean;
  now?: number;
}

/** What `tidings retry-now` moved, and the asked-for ids that were not delayed. */
export interface RetryNowResult {
  subscription: string;
  retried: string[];
  missing: string[];
}

/** Pauses a subscription for every process, durably: its consumers lease nothing more and finish what they hold. */
export async function pauseSubscription(options: PauseOptions, output: Output): Promise<PauseResult> {
  return setPaused(options, output, true);
}

/** Lets a paused subscription's consumers lease again, in every process. */
export async function resumeSubscription(options: PauseOptions, output: Output): Promise<PauseResult> {
  return setPaused(options, output, false);
}

async function setPaused(options: PauseOptions, output: Output, pause: boolean): Promise<PauseResult> {
  const { topic } = options;
  return withDatabase(options.db, async (database) => {
    const { subscription, recorded, ledger } = await subscriptionLedger(database, topic, options.subscription, options.now);
    const was = recorded?.pausedAt;
    // Pausing again would move the recorded time, which says how long consumers have been held.
    const changed = pause !== (was !== undefined);
    if (changed) await (pause ? ledger.pause() : ledger.resume());
    const pausedAt = pause ? await ledger.pausedAt() : undefined;
    const name = `${topic}/${subscription}`;
    const other = tidingsCommand(
      [pause ? 'resume' : 'pause', topic, ...(subscription === DEFAULT_SUBSCRIPTION ? [] : ['--subscription', subscription])],
      database,
      options.db,
    );
    const since = (at: number | undefined) => (at === undefined ? '' : ` since ${new Date(at).toISOString()}`);
    if (options.json) {
      output.out(
        JSON.stringify(
          { db: database.name, topic, subscription, paused: pause, pausedAt: pausedAt === undefined ? null : new Date(pausedAt).toISOString(), changed },
          null,
          2,
        ),
      );
    } else if (pause) {
      output.out(
        changed
          ? `Paused ${name}: consumers in every process stop leasing within a second and finish what they hold; sends still store. \`${other}\` lets them go on.`
          : `${name} was already paused${since(was)}; left as it was. \`${other}\` lets its consumers go on.`,
      );
    } else {
      output.out(
        changed
          ? `Resumed ${name} (paused${since(was)}): consumers in every process lease again within a second.`
          : `${name} is not paused; nothing to resume.`,
      );
    }
    return { subscription, paused: pause, ...(pausedAt === undefined ? {} : { pausedAt }), changed };
  });
}

/**
 * Drops a subscription's waiting and delayed messages, not the leased ones (their handlers finish them). Refused
 * with `ConfirmationRequiredError`, saying how many it would drop, unless `yes`.
 */
export async function emptySubscription(options: EmptyOptions, output: Output): Promise<EmptyResult> {
  const { topic } = options;
  return withDatabase(options.db, async (database) => {
    const { record, subscription, ledger } = await subscriptionLedger(database, topic, options.subscription);
    const plan = lifecyclePlans[record.lifecycle];
    const counts = (await database.storage.counts(topic))[topic]?.[subscription] ?? {};
    const waiting = counts[plan.ready] ?? 0;
    // Only at-most-once removes a message as it leases it, so there is nothing leased to leave.
    const leased = plan.removeOnLease ? 0 : (counts[plan.leased] ?? 0);
    const where = whereIs(topic, subscription);
    const messages = (n: number) => `${n} waiting or delayed message${n === 1 ? '' : 's'}`;
    if (waiting > 0 && !options.yes) {
      const command = tidingsCommand(['empty', topic, ...subscriptionArgs(subscription)], database, options.db);
      throw new ConfirmationRequiredError(`the ${messages(waiting)} of ${where} in ${database.target}`, waiting, command);
    }
    const dropped = waiting === 0 && !options.yes ? 0 : await ledger.empty();
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic, subscription, dropped, leased }, null, 2));
    } else if (dropped === 0) {
      output.out(`No waiting or delayed messages in ${where} to drop (${database.target})${leftLeased(leased)}.`);
    } else {
      output.out(`Dropped ${messages(dropped)} of ${where} (${database.target})${leftLeased(leased)}.`);
    }
    return { subscription, dropped, leased };
  });
}

/** Drops dead letters of a subscription for good, all or the given ids; refused with `ConfirmationRequiredError` unless `yes`. */
export async function dlqDiscard(options: DlqDiscardOptions, output: Output): Promise<DlqDiscardResult> {
  const { topic } = options;
  const ids = uniqueIds(options.ids);
  return withDatabase(options.db, async (database) => {
    const { record, subscription, ledger } = await subscriptionLedger(database, topic, options.subscription);
    const plan = lifecyclePlans[record.lifecycle];
    const where = whereIs(topic, subscription);
    let targets: string[] | undefined;
    const missing: string[] = [];
    if (ids) {
      // Looked up one by one, so the answer can name each id that was not a dead letter.
      targets = [];
      for (const id of ids) {
        const m = await ledger.message(id);
        if (plan.dead !== undefined && m?.state === plan.dead) targets.push(id);
        else missing.push(id);
      }
    }
    const count = targets?.length ?? (plan.dead === undefined ? 0 : ((await database.storage.counts(topic))[topic]?.[subscription]?.[plan.dead] ?? 0));
    const letters = (n: number) => `${n} dead letter${n === 1 ? '' : 's'}`;
    if (count > 0 && !options.yes) {
      const command = tidingsCommand(
        ['dlq', 'discard', topic, ...subscriptionArgs(subscription), ...(ids ?? []).flatMap((id) => ['--id', id])],
        database,
        options.db,
      );
      throw new ConfirmationRequiredError(`${ids || count === 1 ? 'the' : 'all'} ${letters(count)} of ${where} in ${database.target}`, count, command);
    }
    const discarded = count === 0 ? 0 : await ledger.discard(targets);
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic, subscription, discarded, missing }, null, 2));
    } else if (plan.dead === undefined) {
      output.out(`Topic "${topic}" is ${record.lifecycle}: its messages are never dead-lettered, so there is nothing to discard.`);
    } else {
      output.out(
        discarded === 0 && !ids
          ? `No dead letters in ${where} to discard (${database.target}).`
          : `Discarded ${letters(discarded)} of ${where} (${database.target}).`,
      );
    }
    if (missing.length > 0 && !options.json) output.err(`tidings: not dead letters of ${where}, left as they are: ${missing.join(', ')}.`);
    return { subscription, discarded, missing };
  });
}

/** Makes a subscription's delayed messages (a retry's backoff, a send's `delayMs`), all or the given ids, due now. */
export async function retryNow(options: RetryNowOptions, output: Output): Promise<RetryNowResult> {
  const { topic } = options;
  const ids = uniqueIds(options.ids);
  return withDatabase(options.db, async (database) => {
    const { subscription, ledger } = await subscriptionLedger(database, topic, options.subscription, options.now);
    const retried = await ledger.retryNow(ids);
    const moved = new Set(retried);
    const missing = (ids ?? []).filter((id) => !moved.has(id));
    const where = whereIs(topic, subscription);
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic, subscription, retried, missing }, null, 2));
    } else if (retried.length === 0 && !ids) {
      output.out(`No delayed messages in ${where} (${database.target}).`);
    } else {
      const n = retried.length;
      output.out(`Made ${n} delayed message${n === 1 ? '' : 's'} of ${where} due now: consumers lease ${n === 1 ? 'it' : 'them'} on their next poll.`);
    }
    if (missing.length > 0 && !options.json) output.err(`tidings: not delayed messages of ${where}, left as they are: ${missing.join(', ')}.`);
    return { subscription, retried, missing };
  });
}

function subscriptionArgs(subscription: string): string[] {
  return subscription === DEFAULT_SUBSCRIPTION ? [] : ['--subscription', subscription];
}

function leftLeased(leased: number): string {
  return leased === 0
    ? ''
    : `; ${leased} leased message${leased === 1 ? '' : 's'} stay${leased === 1 ? 's' : ''} with ${leased === 1 ? 'its consumer' : 'their consumers'}`;
}

/** `--id` values without repeats; each must be a message id. */
function uniqueIds(ids: string[] | undefined): string[] | undefined {
  if (ids === undefined) return undefined;
  if (ids.some((id) => typeof id !== 'string' || id === '')) throw new InvalidOptionsError('--id needs a message id, e.g. --id order-42.');
  return [...new Set(ids)];
}
