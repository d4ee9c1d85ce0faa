import type { LifecycleEvent } from '../names.js';

type GuardArgs = { event: LifecycleEvent };

/** The guards the lifecycle machines name; the derived table calls the same functions. */
export const lifecycleGuards = {
  /** A redelivery is allowed while deliveries stay under the limit. */
  deliveriesLeft: ({ event }: GuardArgs) => (event.deliveries ?? 0) < (event.maxDeliveries ?? Infinity),
  /** Dead-lettering is allowed only once deliveries reached the limit. */
  deliveriesExhausted: ({ event }: GuardArgs) => (event.deliveries ?? 0) >= (event.maxDeliveries ?? Infinity),
  /** End-to-end STORE is refused for an id already seen inside the dedup window. */
  notDuplicate: ({ event }: GuardArgs) => event.duplicate !== true,
};
