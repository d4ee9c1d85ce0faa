import { transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { LIFECYCLE_EVENTS, LIFECYCLES, lifecycleMachines, lifecycleTables } from '../src/index.js';
import { consumerGraph, dotDiagram, lifecycleDiagram, lifecycleGraph, machineGraph, mermaidDiagram, type GraphEdge, type StateGraph } from '../src/diagrams.js';
import { consumerMachine, type ConsumerWork } from '../src/delivery/consumer-machine.js';

/** A lifecycle's transitions as its table answers them: `from EVENT to [guard]`, in no particular order. */
function tableAdjacency(lifecycle: (typeof LIFECYCLES)[number]): string[] {
  const table = lifecycleTables[lifecycle];
  return table.states
    .flatMap((from) => LIFECYCLE_EVENTS.flatMap((event) => table.rulesFor(from, event).map((r) => line({ from, to: r.target, event, guard: r.guard }))))
    .sort();
}

function line(e: GraphEdge): string {
  return `${e.from} ${e.event} ${e.to}${e.guard ? ` [${e.guard}]` : ''}`;
}

const adjacency = (graph: StateGraph) => graph.edges.map(line).sort();

/** Reads a Mermaid `stateDiagram-v2` back: its title, start, final states, transitions and classes. */
function parseMermaid(text: string) {
  const [open, title, close, head, ...lines] = text.split('\n');
  expect([open, close, head]).toEqual(['---', '---', 'stateDiagram-v2']);
  const initial = lines.map((l) => /^ {2}\[\*\] --> (\S+)$/.exec(l)?.[1]).filter(Boolean);
  const finals = lines.map((l) => /^ {2}(\S+) --> \[\*\]$/.exec(l)?.[1]).filter(Boolean);
  const edges = lines
    .map((l) => /^ {2}(\S+) --> (\S+): (.+?)(?: if (\S+))?$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => line({ from: m[1]!, to: m[2]!, event: m[3]!, guard: m[4] }));
  const classDefs = lines.map((l) => /^ {2}classDef (\S+) (\S+)$/.exec(l)).filter((m) => m !== null);
  const classes = Object.fromEntries(
    lines
      .map((l) => /^ {2}class (\S+) (\S+)$/.exec(l))
      .filter((m) => m !== null)
      .map((m) => [m[2]!, m[1]!.split(',')]),
  );
  expect(initial.length + finals.length + edges.length + classDefs.length + Object.keys(classes).length).toBe(lines.length);
  return { title: /^title: (.+)$/.exec(title!)?.[1], initial, finals, edges: edges.sort(), classes };
}

/**
 * Reads the statements of a DOT digraph back: node ids with their attributes, and a labelled edge per transition (an
 * arrow's HTML-like label holds a table row each), with the arrow's other attributes as its look.
 */
function parseDot(text: string) {
  const nodes = new Map([...text.matchAll(/^ +"([^"]+)" \[(.*)\];$/gm)].map((m) => [m[1]!, m[2]!]));
  const edges = [...text.matchAll(/^ +"([^"]+)" -> "([^"]+)"(?: \[label=<(<TABLE.*<\/TABLE>)>(?:, )?(.*)\])?;$/gm)].flatMap(
    (m): Array<{ from: string; to: string; label: string | undefined; look: string }> => {
      const from = m[1]!;
      const to = m[2]!;
      if (m[3] === undefined) return [{ from, to, label: undefined, look: '' }];
      return [...m[3].matchAll(/<TD[^>]*>([^<]*)<\/TD>/g)].map((row) => ({ from, to, label: row[1], look: m[4]! }));
    },
  );
  return { nodes, edges };
}

describe.each(LIFECYCLES)('the %s diagrams', (lifecycle) => {
  const table = lifecycleTables[lifecycle];
  const graph = lifecycleGraph(table);

  it('hold exactly the transitions of the table, guards included, as JSON', () => {
    expect(adjacency(graph)).toEqual(tableAdjacency(lifecycle));
    expect(JSON.parse(JSON.stringify(graph))).toEqual(graph);
    expect(graph).toMatchObject({ name: lifecycle, kind: 'lifecycle', initial: 'sent' });
    expect(graph.states.map((s) => s.id)).toEqual(table.states);
  });

  it('end where the machine has its final states', () => {
    const finals = Object.entries(lifecycleMachines[lifecycle].root.states)
      .filter(([, node]) => node.type === 'final')
      .map(([id]) => id);
    expect(graph.states.filter((s) => s.final).map((s) => s.id)).toEqual(finals);
  });

  it('read the same from the XState definition as from the table', () => {
    const fromMachine = machineGraph(lifecycleMachines[lifecycle], 'lifecycle');
    expect(adjacency(fromMachine)).toEqual(adjacency(graph));
    expect({ ...fromMachine, edges: [] }).toEqual({ ...graph, edges: [] });
  });

  it('draw in Mermaid every transition as `from --> to: EVENT if guard`, from [*] to [*]', () => {
    const text = mermaidDiagram(graph);
    expect(lifecycleDiagram(table)).toBe(text);
    const parsed = parseMermaid(text);
    expect(parsed.edges).toEqual(tableAdjacency(lifecycle));
    expect(parsed.initial).toEqual(['sent']);
    expect(parsed.finals).toEqual(graph.states.filter((s) => s.final).map((s) => s.id));
    expect(parsed.title).toBe(lifecycle);
  });

  it('style final states with a heavy border and `dead` in the warning colour, in Mermaid too', () => {
    const { classes } = parseMermaid(mermaidDiagram(graph));
    expect(classes.finalState).toEqual(graph.states.filter((s) => s.final).map((s) => s.id));
    expect(classes.deadLetters).toEqual(table.states.includes('dead') ? ['dead'] : undefined);
    if (table.states.includes('dead')) expect(mermaidDiagram(graph)).toContain('classDef deadLetters fill:#fee4e2,stroke:#b42318,color:#b42318');
  });

  it('draw in DOT every state once and every transition labelled `EVENT` or `EVENT [guard]`', () => {
    const { nodes, edges } = parseDot(dotDiagram(graph));
    expect([...nodes.keys()].sort()).toEqual(['[*]', ...table.states].sort());
    const labelled = edges.filter((e) => e.label !== undefined);
    expect(labelled).toHaveLength(graph.edges.length);
    expect(labelled.map((e) => line({ from: e.from, to: e.to, ...splitLabel(e.label!) })).sort()).toEqual(tableAdjacency(lifecycle));
    expect(edges.filter((e) => e.label === undefined)).toEqual([{ from: '[*]', to: 'sent', label: undefined, look: '' }]);
  });
});

function splitLabel(label: string): { event: string; guard?: string } {
  const m = /^(.+?)(?: \[(\S+)\])?$/.exec(label)!;
  return m[2] ? { event: m[1]!, guard: m[2] } : { event: m[1]! };
}

describe('DOT styles by role, the same in every lifecycle', () => {
  const dots = Object.fromEntries(LIFECYCLES.map((l) => [l, parseDot(dotDiagram(lifecycleGraph(lifecycleTables[l])))]));

  it('double-borders final states and fills `dead` in the warning colour', () => {
    for (const l of LIFECYCLES) {
      const { nodes } = dots[l]!;
      for (const s of lifecycleGraph(lifecycleTables[l]).states) expect(nodes.get(s.id)!.includes('peripheries=2'), `${l} ${s.id}`).toBe(s.final === true);
      if (nodes.has('dead')) expect(nodes.get('dead')).toContain('fillcolor="#fee4e2"');
    }
    expect(dots['at-most-once']!.nodes.has('dead')).toBe(false);
  });

  it('marks the dedup-guarded STORE (end-to-end only) and the operator REDRIVE', () => {
    const store = (l: string) => dots[l]!.edges.find((e) => e.label?.startsWith('STORE'))!;
    expect(store('exactly-once/end-to-end')).toMatchObject({ label: 'STORE [notDuplicate]', look: expect.stringContaining('penwidth=2.5') });
    for (const l of ['at-most-once', 'at-least-once', 'exactly-once/broker']) expect(store(l)).toMatchObject({ label: 'STORE', look: '' });
    for (const l of ['at-least-once', 'exactly-once/broker', 'exactly-once/end-to-end']) {
      expect(dots[l]!.edges.find((e) => e.label === 'REDRIVE')!.look).toContain('style=dashed');
    }
  });

  it('draws several graphs side by side, one cluster each, with ids that cannot collide', () => {
    const text = dotDiagram(LIFECYCLES.map((l) => lifecycleGraph(lifecycleTables[l])));
    expect(text.match(/subgraph "cluster_\d"/g)).toHaveLength(4);
    const { nodes, edges } = parseDot(text);
    expect(nodes.get('exactly-once/broker/dead')).toContain('label="dead"');
    expect(edges).toContainEqual(expect.objectContaining({ from: 'at-least-once/dead', to: 'at-least-once/acked', label: 'REDRIVE' }));
  });

  it('stacks the transitions between two states in one look on one arrow, a label row each', () => {
    const text = dotDiagram(lifecycleGraph(lifecycleTables['at-least-once']));
    expect(text.match(/^ +"leased" -> "acked" .*$/gm)).toHaveLength(1);
    expect(
      parseDot(text)
        .edges.filter((e) => e.from === 'leased' && e.to === 'acked')
        .map((e) => e.label),
    ).toEqual(['EXPIRE [deliveriesLeft]', 'NACK [deliveriesLeft]']);
  });

  it('keeps each label room for a font wider than the Helvetica Graphviz measures by', () => {
    const text = dotDiagram(lifecycleGraph(lifecycleTables['at-least-once']));
    // DejaVu Sans draws DEAD [deliveriesExhausted] at 10pt about 141pt wide.
    const width = Number(/WIDTH="(\d+)">DEAD \[deliveriesExhausted\]</.exec(text)![1]);
    expect(width).toBeGreaterThanOrEqual(141);
  });

  it('explains in a legend exactly the looks a picture uses', () => {
    const legend = (graphs: StateGraph | StateGraph[]) => /label=<(<TABLE BORDER="1".*<\/TABLE>)>;/.exec(dotDiagram(graphs))?.[1] ?? '';
    const words = (l: string) => [...l.matchAll(/<FONT[^>]*>([^<]+)<\/FONT><\/TD>/g)].map((m) => m[1]).filter((w) => w !== '[g]');
    expect(words(legend(lifecycleGraph(lifecycleTables['at-most-once'])))).toEqual(['final state']);
    expect(words(legend(lifecycleGraph(lifecycleTables['at-least-once'])))).toEqual([
      'final state',
      'dead letters',
      'only if guard g holds',
      'a failure',
      "an operator's redrive",
    ]);
    expect(words(legend(lifecycleGraph(lifecycleTables['exactly-once/end-to-end'])))).toContain('refused in the dedup window');
    expect(words(legend(consumerGraph()))).toEqual(expect.arrayContaining(['final state', 'a failure', 'a timer fires']));
    expect(words(legend(consumerGraph()))).not.toContain('dead letters');
    expect(words(legend(LIFECYCLES.map((l) => lifecycleGraph(lifecycleTables[l]))))).toHaveLength(6);
  });
});

/** The consumer's life as designed: `from EVENT to [guard]`. */
const CONSUMER_DESIGN = [
  'starting start done leasing',
  'starting start done paused [paused]',
  'starting start error stopped',
  'starting STOP draining',
  'leasing lease done handling [gotBatch]',
  'leasing lease done leasing [woken]',
  'leasing lease done idle',
  'leasing lease done paused [paused]',
  'leasing lease error idle',
  'leasing STOP draining',
  'handling handle done leasing',
  'handling handle done paused [paused]',
  'handling handle error idle',
  'handling STOP draining',
  'idle WAKE leasing',
  'idle after poll leasing',
  'idle STOP draining',
  'idle PAUSE paused',
  'paused RESUME leasing',
  'paused STOP draining',
  'draining drain done stopped',
  'draining after grace stopped',
].sort();

describe('the consumer diagram', () => {
  const graph = consumerGraph();

  it('is read from consumerMachine: its states, events, delays and invoked actors', () => {
    expect(graph).toMatchObject({ name: 'consumer', kind: 'consumer', initial: 'starting' });
    expect(graph.states).toEqual([
      { id: 'starting' },
      { id: 'leasing' },
      { id: 'handling' },
      { id: 'idle' },
      { id: 'paused' },
      { id: 'draining' },
      { id: 'stopped', final: true },
    ]);
    expect(adjacency(graph)).toEqual(CONSUMER_DESIGN);
    const delays = Object.keys(consumerMachine.implementations.delays);
    const actors = Object.keys(consumerMachine.implementations.actors);
    for (const e of graph.edges) {
      const named = /^after (\S+)$/.exec(e.event)?.[1] ?? /^(\S+) (done|error)$/.exec(e.event)?.[1];
      if (e.event.startsWith('after ')) expect(delays).toContain(named);
      else if (named) expect(actors).toContain(named);
    }
  });

  it('draws STOP, WAKE, PAUSE and RESUME where XState takes them, and leaves out what changes no state', () => {
    const work = {} as ConsumerWork;
    for (const { id } of graph.states.filter((s) => !s.final)) {
      for (const event of [{ type: 'WAKE' as const }, { type: 'PAUSE' as const }, { type: 'RESUME' as const }, { type: 'STOP' as const, graceMs: 0 }]) {
        const snapshot = consumerMachine.resolveState({ value: id, context: { work, pollMs: 1, woken: false, batch: [], graceMs: 0 } });
        const [next] = transition(consumerMachine, snapshot, event);
        const drawn = graph.edges.filter((e) => e.from === id && e.event === event.type).map((e) => e.to);
        expect(drawn, `${id} ${event.type}`).toEqual(next.value === id ? [] : [next.value]);
      }
    }
  });

  it('draws in Mermaid and DOT what the graph holds', () => {
    expect(parseMermaid(mermaidDiagram(graph))).toMatchObject({ title: 'consumer', initial: ['starting'], finals: ['stopped'], edges: CONSUMER_DESIGN });
    const { edges } = parseDot(dotDiagram(graph));
    expect(
      edges
        .filter((e) => e.label)
        .map((e) => line({ from: e.from, to: e.to, ...splitLabel(e.label!) }))
        .sort(),
    ).toEqual(CONSUMER_DESIGN);
    expect(edges.find((e) => e.label === 'after poll')!.look).toContain('style=dotted');
  });

  it('draws a self-loop above its state, where no other edge leaves', () => {
    const { edges } = parseDot(dotDiagram(graph));
    expect(edges.find((e) => e.label === 'lease done [woken]')).toMatchObject({ from: 'leasing', to: 'leasing', look: 'tailport=n, headport=n' });
  });
});
