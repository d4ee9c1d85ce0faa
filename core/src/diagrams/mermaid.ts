import { lifecycleGraph, type StateGraph } from './graph.js';
import type { TransitionTable } from '../lifecycle/table.js';

/** A Mermaid `stateDiagram-v2` of a graph: one line per transition, `from --> to: EVENT if guard`. */
export function mermaidDiagram(graph: StateGraph): string {
  const lines = ['stateDiagram-v2', `  [*] --> ${graph.initial}`];
  for (const state of graph.states) {
    for (const e of graph.edges) if (e.from === state.id) lines.push(`  ${e.from} --> ${e.to}: ${e.event}${e.guard ? ` if ${e.guard}` : ''}`);
    if (state.final) lines.push(`  ${state.id} --> [*]`);
  }
  return lines.join('\n');
}

/** A Mermaid state diagram of a lifecycle, drawn from its transition table (so it cannot drift from the machine). */
export function lifecycleDiagram(table: TransitionTable): string {
  return mermaidDiagram(lifecycleGraph(table));
}
