import type { GraphEdge, GraphState, StateGraph } from './graph.js';

// One look per role, the same in every graph, so the semantics differ on the page exactly where their machines do.
const WARNING = '#b42318';
const DEDUP = '#175cd3';
const OPERATOR = '#6941c6';
const STATE_LOOK = {
  state: 'shape=box, style=rounded',
  final: 'shape=box, style=rounded, peripheries=2',
  dead: `shape=box, style="rounded,filled", color="${WARNING}", fillcolor="#fee4e2", fontcolor="${WARNING}"`,
} as const;
const EDGE_LOOK = {
  step: '',
  dedup: `color="${DEDUP}", fontcolor="${DEDUP}", penwidth=2.5`,
  redrive: `color="${OPERATOR}", fontcolor="${OPERATOR}", style=dashed, penwidth=1.5`,
  failure: `color="${WARNING}", fontcolor="${WARNING}"`,
  timer: 'style=dotted',
} as const;
type StateRole = keyof typeof STATE_LOOK;
type EdgeRole = keyof typeof EDGE_LOOK;

// What each look means, in the legend's order; a sample is an HTML-like table cell drawn in that look.
const SAMPLE = 'WIDTH="30" HEIGHT="12"';
const LEGEND: ReadonlyArray<{ role: StateRole | EdgeRole | 'guard'; sample: string; text: string; color?: string }> = [
  { role: 'final', sample: `<TD><TABLE BORDER="1" STYLE="rounded" CELLPADDING="0" CELLSPACING="2"><TR><TD BORDER="1" STYLE="rounded" WIDTH="22" HEIGHT="6"></TD></TR></TABLE></TD>`, text: 'final state: nothing leaves it' },
  { role: 'dead', sample: `<TD BORDER="1" STYLE="rounded" COLOR="${WARNING}" BGCOLOR="#fee4e2" ${SAMPLE}></TD>`, text: 'dead letter', color: WARNING },
  { role: 'guard', sample: `<TD ${SAMPLE}>[g]</TD>`, text: 'taken only if guard g holds' },
  { role: 'failure', sample: `<TD SIDES="B" BORDER="1" COLOR="${WARNING}" ${SAMPLE}></TD>`, text: 'failure: DEAD, or an error', color: WARNING },
  { role: 'dedup', sample: `<TD SIDES="B" BORDER="3" COLOR="${DEDUP}" ${SAMPLE}></TD>`, text: 'STORE refused in the dedup window', color: DEDUP },
  { role: 'redrive', sample: `<TD SIDES="B" BORDER="2" STYLE="dashed" COLOR="${OPERATOR}" ${SAMPLE}></TD>`, text: "REDRIVE: an operator's act", color: OPERATOR },
  { role: 'timer', sample: `<TD SIDES="B" BORDER="2" STYLE="dotted" ${SAMPLE}></TD>`, text: 'after: a timer fires' },
];
const LEGEND_FONT = 10;

/**
 * A Graphviz DOT digraph of one graph, or of several side by side, one cluster each (the `all` picture), with a legend
 * of the looks it uses. Transitions between the same two states in the same look share one arrow, a label line each.
 */
export function dotDiagram(graphs: StateGraph | readonly StateGraph[]): string {
  const many = Array.isArray(graphs);
  const list: readonly StateGraph[] = many ? graphs : [graphs as StateGraph];
  const name = many ? 'tidings' : list[0]!.name;
  const lines = [
    `digraph ${quote(name)} {`,
    '  fontname="Helvetica"; labelloc=t; fontsize=16; nodesep=0.6; ranksep=0.5; pad=0.2;',
    '  node [fontname="Helvetica", fontsize=12];',
    '  edge [fontname="Helvetica", fontsize=10];',
  ];
  if (!many) lines.push(`  label=${quote(name)};`, ...body(list[0]!, '', '  '));
  // Node ids are prefixed per cluster, since the lifecycles share state names.
  else for (const [i, graph] of list.entries()) lines.push(`  subgraph "cluster_${i}" {`, `    label=${quote(graph.name)}; color="#d0d5dd";`, ...body(graph, `${graph.name}/`, '    '), '  }');
  lines.push(...legend(list), '}');
  return lines.join('\n');
}

/** The statements of one graph, node ids prefixed so several can share a digraph; labels stay the state ids. */
function body(graph: StateGraph, prefix: string, indent: string): string[] {
  const id = (state: string) => quote(`${prefix}${state}`);
  return [
    `${indent}${id('[*]')} [shape=point, width=0.15, label=""];`,
    ...graph.states.map((s) => `${indent}${id(s.id)} [label=${quote(s.id)}, ${STATE_LOOK[stateRole(s)]}];`),
    `${indent}${id('[*]')} -> ${id(graph.initial)};`,
    ...arrows(graph.edges).map(({ from, to, role, labels }) => {
      const look = EDGE_LOOK[role];
      // Side by side, two labels of one pair of states crowd each other; stacked on one arrow they cannot.
      const label = labels.length === 1 ? quote(labels[0]!) : `"${labels.map((l) => `${escape(l)}\\l`).join('')}"`;
      return `${indent}${id(from)} -> ${id(to)} [label=${label}${look ? `, ${look}` : ''}];`;
    }),
  ];
}

/** The edges grouped by the arrow that draws them: one per source, target and look, in the order first met. */
function arrows(edges: readonly GraphEdge[]): Array<{ from: string; to: string; role: EdgeRole; labels: string[] }> {
  const byKey = new Map<string, { from: string; to: string; role: EdgeRole; labels: string[] }>();
  for (const e of edges) {
    const role = edgeRole(e);
    const key = JSON.stringify([e.from, e.to, role]);
    const arrow = byKey.get(key) ?? { from: e.from, to: e.to, role, labels: [] };
    arrow.labels.push(edgeLabel(e));
    byKey.set(key, arrow);
  }
  return [...byKey.values()];
}

/** A table of the looks the graphs use and what each means, as one node below them. */
function legend(graphs: readonly StateGraph[]): string[] {
  const used = new Set<string>(graphs.flatMap((g) => [...g.states.map(stateRole), ...g.edges.map(edgeRole), ...(g.edges.some((e) => e.guard) ? ['guard'] : [])]));
  const rows = LEGEND.filter((entry) => used.has(entry.role)).map(({ sample, text, color }) => {
    // Graphviz measures text by Helvetica; the extra width keeps a wider fallback font inside the table.
    const width = Math.ceil(text.length * LEGEND_FONT * 0.7);
    const words = color ? `<FONT COLOR="${color}">${html(text)}</FONT>` : html(text);
    return `<TR>${sample}<TD ALIGN="LEFT" WIDTH="${width}">${words}</TD></TR>`;
  });
  if (rows.length === 0) return [];
  const table = `<TABLE BORDER="1" COLOR="#d0d5dd" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2">${rows.join('')}</TABLE>`;
  return [`  "[legend]" [shape=plain, fontsize=${LEGEND_FONT}, label=<${table}>];`, '  { rank=sink; "[legend]"; }'];
}

/** `EVENT`, or `EVENT [guard]` when a guard decides. */
function edgeLabel(edge: GraphEdge): string {
  return edge.guard ? `${edge.event} [${edge.guard}]` : edge.event;
}

function stateRole(state: GraphState): StateRole {
  if (state.final) return 'final';
  return state.id === 'dead' ? 'dead' : 'state';
}

function edgeRole(edge: GraphEdge): EdgeRole {
  // STORE refused inside the dedup window is what sets end-to-end apart from the other lifecycles.
  if (edge.guard === 'notDuplicate') return 'dedup';
  // An operator's act, not a step of the message's own run.
  if (edge.event === 'REDRIVE') return 'redrive';
  if (edge.event === 'DEAD' || edge.event.endsWith(' error')) return 'failure';
  return edge.event.startsWith('after ') ? 'timer' : 'step';
}

/** A DOT string literal. */
function quote(text: string): string {
  return `"${escape(text)}"`;
}

function escape(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/** Text inside an HTML-like label. */
function html(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
