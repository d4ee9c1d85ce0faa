import { lifecycleGraph, type StateGraph } from './graph.js';
import type { TransitionTable } from '../lifecycle/table.js';

// The DOT picture's state looks, as far as Mermaid's CSS goes: it draws no double border, so a final state's is thick.
// A state diagram takes no `linkStyle`, so the edges stay plain and their roles show only in the DOT and SVG pictures.
const CLASSES = {
  finalState: 'stroke:#000,stroke-width:3px',
  deadLetters: 'fill:#fee4e2,stroke:#b42318,color:#b42318',
} as const;

/**
 * A Mermaid `stateDiagram-v2` of a graph: a front-matter title, one line per transition (`from --> to: EVENT if guard`),
 * and `classDef` looks for final and dead states.
 */
export function mermaidDiagram(graph: StateGraph): string {
  const lines = ['---', `title: ${graph.name}`, '---', 'stateDiagram-v2', `  [*] --> ${graph.initial}`];
  for (const state of graph.states) {
    for (const e of graph.edges) if (e.from === state.id) lines.push(`  ${e.from} --> ${e.to}: ${e.event}${e.guard ? ` if ${e.guard}` : ''}`);
    if (state.final) lines.push(`  ${state.id} --> [*]`);
  }
  const members = {
    finalState: graph.states.filter((s) => s.final).map((s) => s.id),
    deadLetters: graph.states.filter((s) => s.id === 'dead' && !s.final).map((s) => s.id),
  };
  for (const [name, look] of Object.entries(CLASSES)) {
    const ids = members[name as keyof typeof CLASSES];
    if (ids.length > 0) lines.push(`  classDef ${name} ${look}`, `  class ${ids.join(',')} ${name}`);
  }
  return lines.join('\n');
}

/** A Mermaid state diagram of a lifecycle, drawn from its transition table (so it cannot drift from the machine). */
export function lifecycleDiagram(table: TransitionTable): string {
  return mermaidDiagram(lifecycleGraph(table));
}
