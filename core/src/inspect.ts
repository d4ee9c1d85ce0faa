import type { TransitionEvent } from './events.js';
import { LIFECYCLE_EVENTS, type LifecycleEventType, type MessageState } from './lifecycle/names.js';
import { lifecycleTables } from './lifecycle/table.js';

/**
 * One message transition in the shape of XState's inspection events (`@xstate.snapshot`): the topic is the root, each
 * message an actor, so tools that read XState's `inspect` stream can read Tidings' too. `transition` is Tidings' own event.
 */
export interface InspectionEvent {
  readonly type: '@xstate.snapshot';
  readonly rootId: string;
  readonly actorRef: { readonly id: string; readonly sessionId: string };
  readonly event: { readonly type: LifecycleEventType };
  readonly snapshot: {
    readonly status: 'active' | 'done';
    readonly value: MessageState;
    readonly context: { readonly topic: string; readonly lifecycle: string };
  };
  readonly transition: TransitionEvent;
}

/** The states each lifecycle's messages end in: no event leaves them. */
const finals = new Map(
  Object.entries(lifecycleTables).map(([lifecycle, table]) => [
    lifecycle,
    new Set(table.states.filter((s) => LIFECYCLE_EVENTS.every((e) => !table.allows(s, e)))),
  ]),
);

/** A transition as an inspection event. */
export function toInspectionEvent(t: TransitionEvent): InspectionEvent {
  return {
    type: '@xstate.snapshot',
    rootId: t.topic,
    actorRef: { id: t.id, sessionId: `${t.topic}/${t.id}` },
    event: { type: t.event },
    snapshot: { status: finals.get(t.lifecycle)?.has(t.to) ? 'done' : 'active', value: t.to, context: { topic: t.topic, lifecycle: t.lifecycle } },
    transition: t,
  };
}
