import { setup } from 'xstate';
import type { LifecycleEvent } from '../names.js';
import { lifecycleGuards } from './guards.js';

/** Exactly-once, end-to-end: producer-made ids, STORE refused inside the dedup window, consumer deduplicates. */
export const exactlyOnceEndToEndMachine = setup({
  types: { events: {} as LifecycleEvent },
  guards: lifecycleGuards,
}).createMachine({
  id: 'exactly-once/end-to-end',
  initial: 'sent',
  meta: { consumer: 'deduplicates' },
  states: {
    sent: { on: { STORE: { target: 'stored', guard: 'notDuplicate' } } },
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
