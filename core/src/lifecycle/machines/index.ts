import type { Lifecycle } from '../names.js';
import { atLeastOnceMachine } from './at-least-once.js';
import { atMostOnceMachine } from './at-most-once.js';
import { exactlyOnceBrokerMachine } from './exactly-once-broker.js';
import { exactlyOnceEndToEndMachine } from './exactly-once-end-to-end.js';

export { atLeastOnceMachine, atMostOnceMachine, exactlyOnceBrokerMachine, exactlyOnceEndToEndMachine };
export { lifecycleGuards } from './guards.js';

/** Any one of the four lifecycle machines. */
export type LifecycleMachine = typeof atMostOnceMachine | typeof atLeastOnceMachine | typeof exactlyOnceBrokerMachine | typeof exactlyOnceEndToEndMachine;

/** The machine that is the source of truth for each lifecycle. */
export const lifecycleMachines: Record<Lifecycle, LifecycleMachine> = {
  'at-most-once': atMostOnceMachine,
  'at-least-once': atLeastOnceMachine,
  'exactly-once/broker': exactlyOnceBrokerMachine,
  'exactly-once/end-to-end': exactlyOnceEndToEndMachine,
};
