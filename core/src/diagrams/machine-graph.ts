import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { consumerMachine } from '../delivery/consumer-machine.js';
import type { GraphEdge, GraphKind, GraphState, StateGraph } from './graph.js';

/**
 * The graph of a flat XState machine, read from its definition: `on` events by name, delayed transitions as
 * `after <delay>`, an invoked actor's outcomes as `<src> done` and `<src> error`, and the root's `on` drawn out of
 * every state that does not handle the event itself. Targetless transitions are left out: they change no state.
 */
export function machineGraph(machine: AnyStateMachine, kind: GraphKind): StateGraph {
  const root = machine.root;
  const states: GraphState[] = [];
  const edges: GraphEdge[] = [];
  for (const [id, node] of Object.entries(root.states)) {
    const final = node.type === 'final';
    states.push(final ? { id, final } : { id });
    if (final) continue;
    const own = [...node.transitions];
    // Root transitions apply in every state unless the state names the event itself (even to ignore it).
    const inherited = [...root.transitions].filter(([event]) => !node.transitions.has(event));
    for (const [eventType, defs] of [...own, ...inherited]) {
      const event = eventName(node, eventType);
      for (const d of defs) {
        if (!d.target?.length) continue;
        const guard = guardName(d.guard);
        for (const target of d.target) edges.push(guard ? { from: id, to: target.key, event, guard } : { from: id, to: target.key, event });
      }
    }
  }
  const initial = root.initial?.target[0]?.key;
  if (!initial) throw new Error(`${machine.id}: a graph needs an initial state`);
  return { name: machine.id, kind, initial, states, edges };
}

/** The consumer machine's graph: how one consumer starts, leases, handles, idles and drains. */
export function consumerGraph(): StateGraph {
  return machineGraph(consumerMachine, 'consumer');
}

/** XState's internal event types (`xstate.after.poll.consumer.idle`, `xstate.done.actor.0.consumer.leasing`) in a reader's words. */
function eventName(node: AnyStateNode, eventType: string): string {
  const delayed = node.after.find((a) => a.eventType === eventType);
  if (delayed) return `after ${typeof delayed.delay === 'number' ? `${delayed.delay}ms` : delayed.delay}`;
  for (const invoked of node.invoke) {
    const src = typeof invoked.src === 'string' ? invoked.src : invoked.id;
    if (eventType === `xstate.done.actor.${invoked.id}`) return `${src} done`;
    if (eventType === `xstate.error.actor.${invoked.id}`) return `${src} error`;
  }
  return eventType;
}

/** A named guard's name (`'woken'` or `{ type: 'gotBatch', params }`); an inline guard function has none worth drawing. */
function guardName(guard: unknown): string | undefined {
  if (guard === undefined) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && typeof (guard as { type?: unknown }).type === 'string') return (guard as { type: string }).type;
  return 'guarded';
}
