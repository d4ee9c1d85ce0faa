import { LIFECYCLE_EVENTS } from '../lifecycle/names.js';
import type { TransitionTable } from '../lifecycle/table.js';

/** What a graph draws: a message's lifecycle, or a consumer's own life. */
export type GraphKind = 'lifecycle' | 'consumer';

/** A state of a graph; `final` when nothing leaves it. */
export interface GraphState {
  readonly id: string;
  readonly final?: true;
}

/** A transition of a graph: the event (or `after poll`, `lease done`) and, if any, the named guard that must pass. */
export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  readonly event: string;
  readonly guard?: string;
}

/** A machine's states and transitions as plain JSON, the one model every diagram format is rendered from. */
export interface StateGraph {
  readonly name: string;
  readonly kind: GraphKind;
  readonly initial: string;
  readonly states: readonly GraphState[];
  readonly edges: readonly GraphEdge[];
}

/** The graph of a lifecycle, read from its transition table (the one the hot path runs), so it cannot drift from the machine. */
export function lifecycleGraph(table: TransitionTable): StateGraph {
  const edges = table.states.flatMap((from) =>
    LIFECYCLE_EVENTS.flatMap((event) =>
      table.rulesFor(from, event).map((r): GraphEdge => (r.guard ? { from, to: r.target, event, guard: r.guard } : { from, to: r.target, event })),
    ),
  );
  // A table keeps no `type: 'final'`; a state that no event leaves is where a message's life ends.
  const states = table.states.map((id): GraphState => (edges.some((e) => e.from === id) ? { id } : { id, final: true }));
  // Every lifecycle starts at `sent`, as the table's own walk to `storedState` does.
  return { name: table.lifecycle, kind: 'lifecycle', initial: 'sent', states, edges };
}
