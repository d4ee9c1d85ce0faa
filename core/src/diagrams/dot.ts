import type { GraphEdge, GraphState, StateGraph } from './graph.js';

// One look per role, the same in every graph, so the semantics differ on the page exactly where their machines do.
const WARNING = '#b42318';
const STATE_LOOK = {
  state: 'shape=box, style=rounded',
  final: 'shape=box, style=rounded, peripheries=2',
  dead: `shape=box, style="rounded,filled", color="${WARNING}", fillcolor="#fee4e2", fontcolor="${WARNING}"`,
} as const;
const EDGE_LOOK = {
  step: '',
  dedup: 'color="#175cd3", fontcolor="#175cd3", penwidth=2.5',
  redrive: 'color="#6941c6", fontcolor="#6941c6", style=dashed, penwidth=1.5',
  failure: `color="${WARNING}", fontcolor="${WARNING}"`,
  timer: 'style=dotted',
} as const;

/** A Graphviz DOT digraph of one graph, or of several side by side, one cluster each (the `all` picture). */
export function dotDiagram(graphs: StateGraph | readonly StateGraph[]): string {
  const many = Array.isArray(graphs);
  const list: readonly StateGraph[] = many ? graphs : [graphs as StateGraph];
  const name = many ? 'tidings' : list[0]!.name;
  const lines = [
    `digraph ${quote(name)} {`,
    '  fontname="Helvetica"; labelloc=t; fontsize=16; nodesep=0.6; pad=0.2;',
    '  node [fontname="Helvetica", fontsize=12];',
    '  edge [fontname="Helvetica", fontsize=10];',
  ];
  if (!many) lines.push(`  label=${quote(name)};`, ...body(list[0]!, '', '  '));
  // Node ids are prefixed per cluster, since the lifecycles share state names.
  else for (const [i, graph] of list.entries()) lines.push(`  subgraph "cluster_${i}" {`, `    label=${quote(graph.name)}; color="#d0d5dd";`, ...body(graph, `${graph.name}/`, '    '), '  }');
  lines.push('}');
  return lines.join('\n');
}

/** The statements of one graph, node ids prefixed so several can share a digraph; labels stay the state ids. */
function body(graph: StateGraph, prefix: string, indent: string): string[] {
  const id = (state: string) => quote(`${prefix}${state}`);
  return [
    `${indent}${id('[*]')} [shape=point, width=0.15, label=""];`,
    ...graph.states.map((s) => `${indent}${id(s.id)} [label=${quote(s.id)}, ${STATE_LOOK[stateRole(s)]}];`),
    `${indent}${id('[*]')} -> ${id(graph.initial)};`,
    ...graph.edges.map((e) => {
      const look = EDGE_LOOK[edgeRole(e)];
      return `${indent}${id(e.from)} -> ${id(e.to)} [label=${quote(edgeLabel(e))}${look ? `, ${look}` : ''}];`;
    }),
  ];
}

/** `EVENT`, or `EVENT [guard]` when a guard decides. */
function edgeLabel(edge: GraphEdge): string {
  return edge.guard ? `${edge.event} [${edge.guard}]` : edge.event;
}

function stateRole(state: GraphState): keyof typeof STATE_LOOK {
  if (state.final) return 'final';
  return state.id === 'dead' ? 'dead' : 'state';
}

function edgeRole(edge: GraphEdge): keyof typeof EDGE_LOOK {
  // STORE refused inside the dedup window is what sets end-to-end apart from the other lifecycles.
  if (edge.guard === 'notDuplicate') return 'dedup';
  // An operator's act, not a step of the message's own run.
  if (edge.event === 'REDRIVE') return 'redrive';
  if (edge.event === 'DEAD' || edge.event.endsWith(' error')) return 'failure';
  return edge.event.startsWith('after ') ? 'timer' : 'step';
}

/** A DOT string literal. */
function quote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
