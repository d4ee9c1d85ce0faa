import { setup } from 'xstate';
import type { LifecycleEvent } from '../names.js';
import { lifecycleGuards } from './guards.js';

/** Exactly-once, broker scope: no producer ack; consumers skip ids their idempotency store holds. */
export const exactlyOnceBrokerMachine = setup({
  types: { events: {} as LifecycleEvent },
  guards: lifecycleGuards,
}).createMachine({
  id: 'exactly-once/broker',
  initial: 'sent',
  meta: { consumer: 'deduplicates' },
  states: {
    sent: { on: { STORE: 'stored' } },
    stored: { on: { LEASE: 'leased' } },
    leased: {
      on: {
        CONSUME: 'consumed',
        EXPIRE: { target: 'stored', guard: 'deliveriesLeft' },
        NACK: { target: 'stored', guard: 'deliveriesLeft' },
        DEAD: { target: 'dead', guard: 'deliveriesExhausted' },
      },
    },
    consumed: { on: { DELETE: 'deleted' } },
    deleted: { type: 'final' },
    // A redrive (by an operator) starts the message over as a new lifecycle.
    dead: { on: { REDRIVE: 'stored' } },
  },
});
