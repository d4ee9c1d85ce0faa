import type { GraphEdge, GraphState, StateGraph } from './graph.js';

// One look per role, the same in every graph, so the semantics differ on the page exactly where their machines do.
const WARNING = '#b42318';
const DEDUP = '#175cd3';
const OPERATOR = '#6941c6';
const FRAME = '#d0d5dd';
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

const TITLE_FONT = 16;
const EDGE_FONT = 10;
const LEGEND_FONT = 10;
// A legend sample is a table cell drawn in the look it explains: a box like the state's, or a line like the edge's.
const CELL = 'WIDTH="30" HEIGHT="12"';
/** What each look means, in the legend's order. */
const LEGEND: ReadonlyArray<{ role: StateRole | EdgeRole | 'guard'; sample: string; text: string; color?: string }> = [
  {
    role: 'final',
    sample: `<TD><TABLE BORDER="1" COLOR="black" STYLE="rounded" CELLPADDING="0" CELLSPACING="2"><TR><TD BORDER="1" COLOR="black" STYLE="rounded" WIDTH="20" HEIGHT="6"></TD></TR></TABLE></TD>`,
    text: 'final state',
  },
  { role: 'dead', sample: `<TD BORDER="1" STYLE="rounded" COLOR="${WARNING}" BGCOLOR="#fee4e2" ${CELL}></TD>`, text: 'dead letters', color: WARNING },
  { role: 'guard', sample: `<TD ${CELL}>${small('[g]')}</TD>`, text: 'only if guard g holds' },
  { role: 'failure', sample: line(WARNING, 1), text: 'a failure', color: WARNING },
  { role: 'dedup', sample: line(DEDUP, 3), text: 'refused in the dedup window', color: DEDUP },
  { role: 'redrive', sample: line(OPERATOR, 2, 5), text: "an operator's redrive", color: OPERATOR },
  { role: 'timer', sample: line('black', 2, 2), text: 'a timer fires' },
];

/**
 * A Graphviz DOT digraph of one graph, or of several side by side (the `all` picture): a titled cluster each, and
 * below them a legend of the looks they use. Transitions between the same two states in the same look share an arrow.
 */
export function dotDiagram(graphs: StateGraph | readonly StateGraph[]): string {
  const many = Array.isArray(graphs);
  const list: readonly StateGraph[] = many ? graphs : [graphs as StateGraph];
  const key = legend(list);
  const lines = [
    `digraph ${quote(many ? 'tidings' : list[0]!.name)} {`,
    `  fontname="Helvetica"; fontsize=${TITLE_FONT}; nodesep=0.6; ranksep=0.5; pad=0.2;`,
    '  node [fontname="Helvetica", fontsize=12];',
    `  edge [fontname="Helvetica", fontsize=${EDGE_FONT}];`,
    // The graph's own label is laid out apart from the clusters, so the legend can never land on a state or a label.
    ...(key ? [`  labelloc=b; labeljust=l; label=<${key}>;`] : []),
  ];
  for (const [i, graph] of list.entries()) {
    // No frame: dot leaves a back edge's label out of its cluster's box, so a frame can run through the label.
    const title = `<TABLE BORDER="0" CELLPADDING="2"><TR><TD WIDTH="${room(graph.name, TITLE_FONT)}">${html(graph.name)}</TD></TR></TABLE>`;
    // Node ids are prefixed per cluster in `all`, since the lifecycles share state names; one graph alone keeps its own.
    lines.push(
      `  subgraph "cluster_${i}" {`,
      `    label=<${title}>; labelloc=t; labeljust=c; peripheries=0;`,
      ...body(graph, many ? `${graph.name}/` : '', '    '),
      '  }',
    );
  }
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
    ...arrows(graph.edges).map(({ from, to, role, labels }) => {
      const look = [EDGE_LOOK[role], ...(from === to ? [SELF_LOOP] : [])].filter(Boolean).join(', ');
      return `${indent}${id(from)} -> ${id(to)} [label=<${labelTable(labels)}>${look ? `, ${look}` : ''}];`;
    }),
  ];
}

// Graphviz draws a self-loop and its label on a state's right, where the state's other edges leave; above it, the loop
// and its label sit in the space the rank above leaves free.
const SELF_LOOP = 'tailport=n, headport=n';

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

/**
 * An arrow's label as an HTML-like table, a row per transition: two labels side by side crowd each other, stacked on
 * one arrow they cannot. A cell keeps `room` for its text, so Graphviz spaces labels for a font wider than its own
 * estimate.
 */
function labelTable(labels: readonly string[]): string {
  const rows = labels.map((l) => `<TR><TD ALIGN="LEFT" WIDTH="${room(l, EDGE_FONT)}">${html(l)}</TD></TR>`);
  return `<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">${rows.join('')}</TABLE>`;
}

/**
 * Points a text takes at a font size if every character is as wide as DejaVu Sans draws it, rounded up by kind. Graphviz
 * lays text out by Helvetica's metrics, but a browser without Helvetica (most Linux ones) draws it in DejaVu Sans, up
 * to a fifth wider; text given this much room stays clear of its neighbours there too.
 */
function room(text: string, size: number): number {
  const ems = (c: string) => (/[mwMW@%]/.test(c) ? 1 : /[A-Z]/.test(c) ? 0.8 : /[ijlrtf .,:;'|!()[\]/-]/.test(c) ? 0.45 : 0.65);
  return Math.ceil([...text].reduce((sum, c) => sum + ems(c), 0) * size);
}

/** A table of the looks the graphs use and what each means, two entries a row; undefined when they use none. */
function legend(graphs: readonly StateGraph[]): string | undefined {
  const used = new Set<string>(
    graphs.flatMap((g) => [...g.states.map(stateRole), ...g.edges.map(edgeRole), ...(g.edges.some((e) => e.guard) ? ['guard'] : [])]),
  );
  const cells = LEGEND.filter((entry) => used.has(entry.role)).map(
    ({ sample, text, color }) => `${sample}<TD ALIGN="LEFT" WIDTH="${room(text, LEGEND_FONT)}">${small(text, color)}</TD>`,
  );
  if (cells.length === 0) return undefined;
  const rows: string[] = [];
  // Two entries a row keep the legend about as wide as a lifecycle, so it adds little to the picture's height.
  for (let i = 0; i < cells.length; i += 2) rows.push(`<TR>${cells.slice(i, i + 2).join('')}</TR>`);
  return `<TABLE BORDER="1" COLOR="${FRAME}" CELLBORDER="0" CELLSPACING="3" CELLPADDING="1">${rows.join('')}</TABLE>`;
}

/**
 * A legend cell drawn as a line, solid or dashed: a dashed one is a row of short solid segments, since a cell's
 * `STYLE="dashed"` makes Graphviz write broken JSON (`-Tjson`) for the whole graph.
 */
function line(color: string, width: number, dash?: number): string {
  if (dash === undefined) return `<TD SIDES="B" BORDER="${width}" COLOR="${color}" ${CELL}></TD>`;
  const segment = `<TD SIDES="B" BORDER="${width}" COLOR="${color}" WIDTH="${dash}" HEIGHT="12"></TD><TD WIDTH="${dash === 2 ? 2 : 3}"></TD>`;
  return `<TD><TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>${segment.repeat(Math.floor(30 / (dash + (dash === 2 ? 2 : 3))))}</TR></TABLE></TD>`;
}

/** Legend text: the graph's own label size is the title's. */
function small(text: string, color?: string): string {
  return `<FONT POINT-SIZE="${LEGEND_FONT}"${color ? ` COLOR="${color}"` : ''}>${html(text)}</FONT>`;
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
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Text inside an HTML-like label. */
function html(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
