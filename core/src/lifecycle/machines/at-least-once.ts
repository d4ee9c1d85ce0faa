import { setup } from 'xstate';
import type { LifecycleEvent } from '../names.js';
import { lifecycleGuards } from './guards.js';

/** At-least-once: acked after durable storage, leased, deleted only after the consumer's ack. */
export const atLeastOnceMachine = setup({
  types: { events: {} as LifecycleEvent },
  guards: lifecycleGuards,
}).createMachine({
  id: 'at-least-once',
  initial: 'sent',
  states: {
    sent: { on: { STORE: 'stored' } },
    stored: { on: { ACK: 'acked' } },
    acked: { on: { LEASE: 'leased' } },
    leased: {
      on: {
        CONSUME: 'consumed',
        EXPIRE: { target: 'acked', guard: 'deliveriesLeft' },
        NACK: { target: 'acked', guard: 'deliveriesLeft' },
        DEAD: { target: 'dead', guard: 'deliveriesExhausted' },
      },
    },
    consumed: { on: { DELETE: 'deleted' } },
    deleted: { type: 'final' },
    // A redrive (by an operator) starts the message over as a new lifecycle.
    dead: { on: { REDRIVE: 'acked' } },
  },
});
