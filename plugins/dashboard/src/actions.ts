import { InvalidOptionsError, type Tidings } from '@tidings/core';
import { lifecyclePlans } from '@tidings/core/adapter';
import { DashboardRequestError } from './errors.js';
import type { Target, Targets } from './target.js';

/** Most ids one request may name. */
export const MAX_IDS = 1000;

/** The operator verbs the dashboard takes, each a POST to `/api/<verb>`. */
export const ACTIONS = ['pause', 'resume', 'empty', 'discard', 'retry-now', 'redrive'] as const;
/** One of `ACTIONS`. */
export type ActionName = (typeof ACTIONS)[number];

type Body = Record<string, unknown>;

function idsOf(body: Body, verb: string): string[] | undefined {
  const { ids } = body;
  if (ids !== undefined && (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS || ids.some((id) => typeof id !== 'string' || id === ''))) {
    throw new DashboardRequestError(
      400,
      'INVALID_REQUEST',
      `"ids", when given, must be a list of 1 to ${MAX_IDS} message ids (strings); leave it out to ${verb} every one of the subscription.`,
    );
  }
  return ids === undefined ? undefined : [...new Set(ids as string[])];
}

/**
 * Refuses a destructive act on a whole subscription unless the body says `"confirm": true`: a script or a stray
 * click must not empty a queue, and the page asks its operator first with the same figure this error gives.
 */
function confirmed(body: Body, what: string, n: number): void {
  if (body.confirm === true) return;
  throw new DashboardRequestError(400, 'CONFIRMATION_REQUIRED', `${what} (${n} now). Send "confirm": true with the request to go ahead.`);
}

/** Acts on each id alone, so that the answer can name each id that was not in the state the act needs. */
async function eachId(ids: string[], act: (ids: string[]) => Promise<number>): Promise<{ n: number; missing: string[] }> {
  let n = 0;
  const missing: string[] = [];
  for (const id of ids) {
    const moved = await act([id]);
    if (moved === 0) missing.push(id);
    n += moved;
  }
  return { n, missing };
}

/** The operator's verbs on one subscription, from a request's JSON body to the JSON answer. */
export class Actions {
  constructor(
    private readonly targets: Targets,
    /** The instance in this process, if any: a redrive of a topic it declared wakes its consumers at once. */
    private readonly tidings?: Tidings<any>,
  ) {}

  /** Runs `verb` as `body` asks; the answer names the subscription acted on and what moved. */
  async run(verb: ActionName, body: Body): Promise<Record<string, unknown>> {
    const target = await this.targets.resolve(body.topic, body.subscription);
    const { record, subscription, ledger } = target;
    const plan = lifecyclePlans[record.lifecycle];
    const where = `${record.name}/${subscription}`;
    const about = { topic: record.name, subscription };
    switch (verb) {
      case 'pause':
        await ledger.pause();
        return { ...about, paused: true, pausedAt: await ledger.pausedAt() };
      case 'resume':
        await ledger.resume();
        return { ...about, paused: false };
      case 'empty': {
        confirmed(body, `Emptying ${where} drops its waiting and delayed messages for good`, await this.targets.count(target, plan.ready));
        return { ...about, emptied: await ledger.empty() };
      }
      case 'discard': {
        const ids = idsOf(body, 'discard');
        this.deadLettering(target);
        if (!ids) confirmed(body, `Discarding every dead letter of ${where} drops them for good`, await this.targets.count(target, plan.dead));
        const { n, missing } = ids ? await eachId(ids, (one) => ledger.discard(one)) : { n: await ledger.discard(), missing: [] };
        return { ...about, discarded: n, missing };
      }
      case 'retry-now': {
        const ids = idsOf(body, 'retry now');
        // One statement for all of them: it answers the ids it moved, so the others are the ones not delayed.
        const moved = await ledger.retryNow(ids);
        const missing = ids ? ids.filter((id) => !moved.includes(id)) : [];
        return { ...about, retried: moved.length, missing };
      }
      case 'redrive': {
        const ids = idsOf(body, 'redrive');
        this.deadLettering(target);
        if (!ids) confirmed(body, `Redriving every dead letter of ${where} delivers them all again`, await this.targets.count(target, plan.dead));
        const { n, missing } = ids ? await eachId(ids, (one) => this.redrive(target, one)) : { n: await this.redrive(target), missing: [] };
        return { ...about, state: plan.ready, redriven: n, missing };
      }
    }
  }

  private deadLettering({ record }: Target): void {
    if (lifecyclePlans[record.lifecycle].steps.redrive.length > 0) return;
    throw new DashboardRequestError(
      409,
      'NOT_REDRIVABLE',
      `Topic "${record.name}" is ${record.lifecycle}: its messages are never dead-lettered, so it has no dead letters.`,
    );
  }

  /** Through the instance when it declared the topic, so that its idle consumers of the subscription wake at once. */
  private async redrive({ record, subscription, ledger }: Target, ids?: string[]): Promise<number> {
    if (this.tidings?.hasTopic(record.name)) {
      try {
        return await this.tidings.redrive(record.name, ids, { subscription });
      } catch (error) {
        // Refused before anything moved: the instance declared the topic but not this subscription.
        if (!(error instanceof InvalidOptionsError)) throw error;
      }
    }
    return (await ledger.redrive(ids)).length;
  }
}
