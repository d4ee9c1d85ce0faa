import { setup } from 'xstate';
import type { LifecycleEvent } from '../names.js';
import { lifecycleGuards } from './guards.js';

/** At-most-once: deleted when handed out, before the handler runs; never redelivered. */
export const atMostOnceMachine = setup({
  types: { events: {} as LifecycleEvent },
  guards: lifecycleGuards,
}).createMachine({
  id: 'at-most-once',
  initial: 'sent',
  meta: { producer: 'fire-and-forget' },
  states: {
    sent: { on: { STORE: 'stored' } },
    stored: { on: { LEASE: 'leased' } },
    leased: { on: { DELETE: 'deleted' } },
    deleted: { on: { CONSUME: 'consumed' } },
    consumed: { type: 'final' },
  },
});
