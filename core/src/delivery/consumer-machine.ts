import { assign, fromPromise, setup } from 'xstate';
import type { StoredMessage } from '../storage/contract.js';

/** What a consumer does in each state of its life; its machine decides when. */
export interface ConsumerWork {
  /** Resolves once the topic is recorded in storage; rejects when the consumer cannot start. */
  start(): Promise<void>;
  /** Sweeps expired leases and leases the next batch. */
  lease(): Promise<StoredMessage[]>;
  /** Runs a batch's handlers (settling may go on in the background). */
  handle(batch: StoredMessage[]): Promise<void>;
  /** Resolves once every handler in flight has returned and every outcome is settled. */
  drain(): Promise<void>;
  /** Aborts `ctx.signal`: stopping has begun. */
  abort(): void;
  /** The grace period ran out: outcomes still to come are discarded. */
  abandon(graceMs: number): void;
  /** A step failed (the consumer idles, then tries again), or the consumer could not start. */
  failed(error: unknown, starting: boolean): void;
  /** The consumer stopped: release what it holds. */
  stopped(): void;
  /** Whether an operator paused its subscription (as last seen): it leases nothing until resumed. */
  paused(): boolean;
}

/** What a consumer machine is told. */
export type ConsumerEvent = { type: 'WAKE' } | { type: 'PAUSE' } | { type: 'RESUME' } | { type: 'STOP'; graceMs: number };

interface ConsumerContext {
  readonly work: ConsumerWork;
  readonly pollMs: number;
  /** A wake-up came while a lease was in flight: lease again at once instead of idling. */
  woken: boolean;
  batch: StoredMessage[];
  graceMs: number;
}

/**
 * A consumer's own life as an actor, one transition per batch and never per message: it starts once its topic is
 * recorded, leases, handles, idles until woken or its poll is due, and on STOP drains for at most the grace period.
 * While its subscription is paused it leases nothing: a batch in hand is finished first, then it waits for RESUME.
 */
export const consumerMachine = setup({
  types: {
    context: {} as ConsumerContext,
    events: {} as ConsumerEvent,
    input: {} as { work: ConsumerWork; pollMs: number },
  },
  actors: {
    start: fromPromise<void, ConsumerWork>(({ input }) => input.start()),
    lease: fromPromise<StoredMessage[], ConsumerWork>(({ input }) => input.lease()),
    handle: fromPromise<void, { work: ConsumerWork; batch: StoredMessage[] }>(({ input }) => input.work.handle(input.batch)),
    drain: fromPromise<void, ConsumerWork>(({ input }) => input.drain()),
  },
  delays: {
    poll: ({ context }) => context.pollMs,
    grace: ({ context }) => context.graceMs,
  },
  guards: {
    gotBatch: (_, batch: StoredMessage[]) => batch.length > 0,
    woken: ({ context }) => context.woken,
    paused: ({ context }) => context.work.paused(),
  },
}).createMachine({
  id: 'consumer',
  context: ({ input }) => ({ work: input.work, pollMs: input.pollMs, woken: false, batch: [], graceMs: 0 }),
  initial: 'starting',
  on: {
    STOP: { target: '.draining', actions: assign({ graceMs: ({ event }) => event.graceMs }) },
    WAKE: { actions: assign({ woken: true }) },
  },
  states: {
    starting: {
      invoke: {
        src: 'start',
        input: ({ context }) => context.work,
        onDone: [{ guard: 'paused', target: 'paused' }, { target: 'leasing' }],
        onError: { target: 'stopped', actions: ({ context, event }) => context.work.failed(event.error, true) },
      },
    },
    leasing: {
      entry: assign({ woken: false }),
      invoke: {
        src: 'lease',
        input: ({ context }) => context.work,
        onDone: [
          { guard: { type: 'gotBatch', params: ({ event }) => event.output }, target: 'handling', actions: assign({ batch: ({ event }) => event.output }) },
          { guard: 'paused', target: 'paused' },
          { guard: 'woken', target: 'leasing', reenter: true },
          { target: 'idle' },
        ],
        onError: { target: 'idle', actions: ({ context, event }) => context.work.failed(event.error, false) },
      },
    },
    handling: {
      invoke: {
        src: 'handle',
        input: ({ context }) => ({ work: context.work, batch: context.batch }),
        onDone: [
          { guard: 'paused', target: 'paused', actions: assign({ batch: [] }) },
          { target: 'leasing', actions: assign({ batch: [] }) },
        ],
        onError: { target: 'idle', actions: [assign({ batch: [] }), ({ context, event }) => context.work.failed(event.error, false)] },
      },
    },
    idle: {
      after: { poll: 'leasing' },
      on: { WAKE: 'leasing', PAUSE: 'paused' },
    },
    paused: {
      on: { RESUME: 'leasing' },
    },
    draining: {
      entry: ({ context }) => context.work.abort(),
      on: { STOP: {}, WAKE: {} },
      invoke: { src: 'drain', input: ({ context }) => context.work, onDone: 'stopped' },
      after: { grace: { target: 'stopped', actions: ({ context }) => context.work.abandon(context.graceMs) } },
    },
    stopped: {
      type: 'final',
      entry: ({ context }) => context.work.stopped(),
    },
  },
});
