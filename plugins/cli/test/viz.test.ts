import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { instance, type Viz } from '@viz-js/viz';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIFECYCLE_EVENTS, LIFECYCLES, lifecycleTables } from '@tidings/core';
import { consumerGraph, type StateGraph } from '@tidings/core/diagrams';
import { VIZ_FORMATS, VIZ_TARGETS, renderViz, run, viz, type Output } from '@tidings/cli';
import { collisions } from './label-boxes.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const pkg = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tidings-viz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let graphviz: Viz;
beforeAll(async () => {
  graphviz = await instance();
});

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t) };
}

const argv = (...args: string[]) => ['node', 'tidings', ...args];

/** What a diagram must show, from the machines themselves: its states, which are final, and `from EVENT to [guard]`. */
interface Adjacency {
  name: string;
  initial: string;
  states: string[];
  finals: string[];
  edges: string[];
}

const edge = (from: string, event: string, to: string, guard?: string) => `${from} ${event} ${to}${guard ? ` [${guard}]` : ''}`;

/** A lifecycle's adjacency as its transition table answers `rulesFor`; a state no event leaves is final. */
function lifecycleAdjacency(lifecycle: (typeof LIFECYCLES)[number]): Adjacency {
  const table = lifecycleTables[lifecycle];
  const edges = table.states.flatMap((from) =>
    LIFECYCLE_EVENTS.flatMap((event) => table.rulesFor(from, event).map((r) => edge(from, event, r.target, r.guard))),
  );
  const finals = table.states.filter((s) => !LIFECYCLE_EVENTS.some((e) => table.allows(s, e)));
  return { name: lifecycle, initial: 'sent', states: table.states, finals, edges: edges.sort() };
}

/** The consumer's adjacency, from the graph core reads off consumerMachine (core/test/diagrams.test.ts checks that against XState). */
function consumerAdjacency(): Adjacency {
  const g = consumerGraph();
  return {
    name: g.name,
    initial: g.initial,
    states: g.states.map((s) => s.id),
    finals: g.states.filter((s) => s.final).map((s) => s.id),
    edges: g.edges.map((e) => edge(e.from, e.event, e.to, e.guard)).sort(),
  };
}

const EXPECTED: Record<string, Adjacency> = {
  ...Object.fromEntries(LIFECYCLES.map((l) => [l, lifecycleAdjacency(l)])),
  'exactly-once': lifecycleAdjacency('exactly-once/end-to-end'),
  consumer: consumerAdjacency(),
};

function fromLabel(from: string, to: string, label: string): string {
  const m = /^(.+?)(?: \[(\S+)\])?$/.exec(label)!;
  return edge(from, m[1]!, to, m[2]);
}

/**
 * Reads Mermaid back: the front-matter title, `[*] --> initial`, `final --> [*]`, `from --> to: EVENT [if guard]`, and
 * `classDef`/`class` lines; any other line fails.
 */
function readMermaid(text: string): Omit<Adjacency, 'name' | 'states'> & { title: string } {
  const [open, title, close, head, ...lines] = text.split('\n');
  expect([open, close, head]).toEqual(['---', '---', 'stateDiagram-v2']);
  const out = { title: title!.replace(/^title: /, ''), initial: '', finals: [] as string[], edges: [] as string[] };
  for (const l of lines) {
    if (/^ {2}classDef \w+ \S+$|^ {2}class [\w,]+ \w+$/.test(l)) continue;
    const m = /^ {2}(\S+) --> (\S+)(?:: (.+?)(?: if (\S+))?)?$/.exec(l);
    expect(m, l).not.toBeNull();
    if (m![1] === '[*]') out.initial = m![2]!;
    else if (m![2] === '[*]') out.finals.push(m![1]!);
    else out.edges.push(edge(m![1]!, m![3]!, m![2]!, m![4]));
  }
  return { ...out, edges: out.edges.sort() };
}

/** The texts of an HTML-like label's cells (an arrow's label has a row per transition), or a plain label itself. */
const cells = (label: string) => (label.startsWith('<TABLE') ? [...label.matchAll(/<TD[^>]*>([^<]*)<\/TD>/g)].map((m) => m[1]!) : [label]);

interface GraphvizJson {
  objects: Array<{ _gvid: number; name: string; label?: string; shape?: string; peripheries?: string; nodes?: number[] }>;
  edges?: Array<{ tail: number; head: number; label?: string }>;
}

/** Lays DOT out with Graphviz and reads back the nodes and edges it drew (the start point aside). */
function readDot(dot: string, prefix = ''): Omit<Adjacency, 'name'> {
  const json = graphviz.renderJSON(dot) as GraphvizJson;
  const byId = new Map(json.objects.map((o) => [o._gvid, o]));
  const nodes = json.objects.filter((o) => !o.nodes && o.name.startsWith(prefix));
  const name = (id: number) => byId.get(id)!.name.slice(prefix.length);
  const edges = (json.edges ?? []).filter((e) => byId.get(e.tail)!.name.startsWith(prefix));
  const start = edges.filter((e) => name(e.tail) === '[*]');
  expect(start).toHaveLength(1);
  expect(nodes.find((n) => n.name === `${prefix}[*]`)!.shape).toBe('point');
  const states = nodes.filter((n) => n.shape !== 'point');
  for (const n of states) expect(n.label).toBe(n.name.slice(prefix.length));
  return {
    initial: name(start[0]!.head),
    states: states.map((n) => n.name.slice(prefix.length)),
    finals: states.filter((n) => n.peripheries === '2').map((n) => n.name.slice(prefix.length)),
    edges: edges
      .filter((e) => name(e.tail) !== '[*]')
      .flatMap((e) => cells(e.label!).map((label) => fromLabel(name(e.tail), name(e.head), label)))
      .sort(),
  };
}

/** Whether every tag the SVG opens it closes, in order (comments, the prolog and the doctype aside). */
function balanced(svg: string): boolean {
  const stack: string[] = [];
  for (const [, close, name, self] of svg.replace(/<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!DOCTYPE[^>]*>/g, '').matchAll(/<(\/?)([\w:-]+)[^>]*?(\/?)>/g)) {
    if (self) continue;
    if (!close) stack.push(name!);
    else if (stack.pop() !== name) return false;
  }
  return stack.length === 0;
}

const unescape = (text: string) =>
  text
    .replace(/&#45;/g, '-')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');

describe.each(Object.keys(EXPECTED))('tidings viz %s', (target) => {
  const expected = EXPECTED[target]!;

  it('prints Mermaid by default: from [*] through every transition of the machine, guards after `if`, to [*]', async () => {
    const io = capture();
    expect(await run(argv('viz', target), io)).toBe(0);
    expect(io.stderr).toEqual([]);
    expect(readMermaid(io.stdout.join('\n'))).toEqual({ title: expected.name, initial: expected.initial, finals: expected.finals, edges: expected.edges });
  });

  it('writes DOT that Graphviz lays out with exactly the states and transitions of the machine', async () => {
    const dot = await renderViz(target, 'dot');
    expect(readDot(dot)).toEqual({ initial: expected.initial, states: expected.states, finals: expected.finals, edges: expected.edges });
  });

  it('writes a well-formed SVG naming every state and every transition, rendered without a warning', async () => {
    const svg = await renderViz(target, 'svg');
    expect(svg.slice(svg.indexOf('<svg'))).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    expect(svg.slice(0, svg.indexOf('<svg'))).toMatch(/^<\?xml [^>]*\?>\n<!DOCTYPE svg[\s\S]*-->\n$/);
    expect(balanced(svg)).toBe(true);
    const text = unescape(svg);
    for (const state of expected.states) expect(text).toContain(`<title>${state}</title>`);
    for (const e of expected.edges) {
      const [, from, event, to, guard] = /^(\S+) (.+?) (\S+)(?: \[(\S+)\])?$/.exec(e)!;
      // A self-loop names the ports it is drawn between (`leasing:n->leasing:n`).
      expect(text).toMatch(new RegExp(`<title>${from}(:\\w+)?->${to}(:\\w+)?</title>`));
      expect(text).toContain(`>${guard ? `${event} [${guard}]` : event}</text>`);
    }
    expect(graphviz.render(await renderViz(target, 'dot'), { format: 'svg' }).errors).toEqual([]);
  });

  it('writes JSON that is the adjacency of the machine, exactly', async () => {
    const graph = JSON.parse(await renderViz(target, 'json')) as StateGraph;
    expect(Object.keys(graph)).toEqual(['name', 'kind', 'initial', 'states', 'edges']);
    expect(graph.name).toBe(expected.name);
    expect(graph.initial).toBe(expected.initial);
    expect(graph.states).toEqual(expected.states.map((id) => (expected.finals.includes(id) ? { id, final: true } : { id })));
    expect(graph.edges.map((e) => edge(e.from, e.event, e.to, e.guard)).sort()).toEqual(expected.edges);
    for (const e of graph.edges) expect(Object.keys(e)).toEqual(e.guard ? ['from', 'to', 'event', 'guard'] : ['from', 'to', 'event']);
  });
});

describe('tidings viz all', () => {
  it('prints one Markdown section of Mermaid per lifecycle', async () => {
    const text = await renderViz('all');
    const sections = [...text.matchAll(/^## (\S+)\n\n```mermaid\n([\s\S]*?)\n```$/gm)];
    expect(sections.map((m) => m[1])).toEqual([...LIFECYCLES]);
    for (const [, name, body] of sections) expect(readMermaid(body!).edges).toEqual(EXPECTED[name!]!.edges);
  });

  it('draws one digraph (DOT, SVG) with a cluster per lifecycle, and JSON as an array', async () => {
    const dot = await renderViz('all', 'dot');
    const json = graphviz.renderJSON(dot) as GraphvizJson;
    expect(json.objects.filter((o) => o.nodes).flatMap((o) => cells(o.label!))).toEqual([...LIFECYCLES]);
    for (const l of LIFECYCLES) {
      const { edges, finals, states } = readDot(dot, `${l}/`);
      expect({ edges, finals, states }).toEqual({ edges: EXPECTED[l]!.edges, finals: EXPECTED[l]!.finals, states: EXPECTED[l]!.states });
    }
    const svg = unescape(await renderViz('all', 'svg'));
    expect(balanced(svg)).toBe(true);
    for (const l of LIFECYCLES) for (const state of EXPECTED[l]!.states) expect(svg).toContain(`<title>${l}/${state}</title>`);
    expect((JSON.parse(await renderViz('all', 'json')) as StateGraph[]).map((g) => g.name)).toEqual([...LIFECYCLES]);
  });
});

/** at-least-once as the DOT generation drew it before labels were stacked and given room: EXPIRE and NACK side by side. */
const COLLIDING_DOT = `digraph "at-least-once" {
    fontname="Helvetica"; labelloc=t; fontsize=16; nodesep=0.6; pad=0.2;
    node [fontname="Helvetica", fontsize=12];
    edge [fontname="Helvetica", fontsize=10];
    label="at-least-once";
    "[*]" [shape=point, width=0.15, label=""];
    "sent" [label="sent", shape=box, style=rounded];
    "stored" [label="stored", shape=box, style=rounded];
    "acked" [label="acked", shape=box, style=rounded];
    "leased" [label="leased", shape=box, style=rounded];
    "consumed" [label="consumed", shape=box, style=rounded];
    "deleted" [label="deleted", shape=box, style=rounded, peripheries=2];
    "dead" [label="dead", shape=box, style="rounded,filled", color="#b42318", fillcolor="#fee4e2", fontcolor="#b42318"];
    "[*]" -> "sent";
    "sent" -> "stored" [label="STORE"];
    "stored" -> "acked" [label="ACK"];
    "acked" -> "leased" [label="LEASE"];
    "leased" -> "consumed" [label="CONSUME"];
    "leased" -> "acked" [label="EXPIRE [deliveriesLeft]"];
    "leased" -> "acked" [label="NACK [deliveriesLeft]"];
    "leased" -> "dead" [label="DEAD [deliveriesExhausted]", color="#b42318", fontcolor="#b42318"];
    "consumed" -> "deleted" [label="DELETE"];
    "dead" -> "acked" [label="REDRIVE", color="#6941c6", fontcolor="#6941c6", style=dashed, penwidth=1.5];
}`;

describe('every picture tidings viz draws', () => {
  it.each(VIZ_TARGETS.map((t) => [t]))('%s: no label over another label, a state, the legend, another edge or the edge of the picture', async (target) => {
    expect(collisions(await renderViz(target, 'svg'))).toEqual([]);
  });

  it('is checked by a test that finds the collisions of a picture that has them', () => {
    const found = collisions(graphviz.renderString(COLLIDING_DOT, { format: 'svg' }));
    expect(found).toContainEqual({ a: expect.stringContaining('"EXPIRE [deliveriesLeft]"'), b: expect.stringContaining('"NACK [deliveriesLeft]"') });
  });

  it('is checked for a label on a state, and for text off the picture', () => {
    // Nodes pinned by hand (neato keeps `pos!`): the edge label lands on the state in its way, and the long one runs off.
    const dot = `digraph { layout=neato; a [pos="0,0!", shape=box]; b [pos="3,0!", shape=box]; c [pos="1.5,0!", shape=box, label="in the way"]; a -> b [label="a label as long as a sentence"]; }`;
    const found = collisions(graphviz.renderString(dot, { format: 'svg' }));
    expect(found).toContainEqual({ a: expect.stringContaining('"a label as long as a sentence"'), b: 'node c' });
  });
});

describe('tidings viz --format mermaid --out', () => {
  it('writes a .mmd file as the plain diagram a Mermaid renderer reads, title and styles included', async () => {
    const out = join(dir, 'at-least-once.mmd');
    expect(await run(argv('viz', 'at-least-once', '--out', out), capture())).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toBe(`${await renderViz('at-least-once')}\n`);
    expect(text).toMatch(/^---\ntitle: at-least-once\n---\nstateDiagram-v2\n/);
    expect(text).toContain('  class dead deadLetters\n');
    expect(text).not.toContain('```');
  });

  it('writes a .md file as Markdown, a section and a fenced diagram each, for one target or all', async () => {
    const one = join(dir, 'consumer.md');
    await viz({ target: 'consumer', out: one }, capture());
    expect(readFileSync(one, 'utf8')).toBe(`## consumer\n\n\`\`\`mermaid\n${await renderViz('consumer')}\n\`\`\`\n`);
    const all = join(dir, 'all.md');
    await viz({ target: 'all', out: all }, capture());
    expect(readFileSync(all, 'utf8')).toBe(`${await renderViz('all')}\n`);
  });

  it('refuses all to a file that is not Markdown, saying what to write instead, and writes nothing', async () => {
    const out = join(dir, 'all.mmd');
    await expect(viz({ target: 'all', format: 'mermaid', out }, capture())).rejects.toMatchObject({
      name: 'MermaidFileOfOneDiagramError',
      code: 'VIZ_MERMAID_ONE_DIAGRAM',
      message: `--out ${out}: a Mermaid file holds one diagram, and \`all\` is four lifecycles. Write Markdown with a diagram each (--out ${join(dir, 'all.md')}), or draw one lifecycle to this file (tidings viz at-least-once --out ${out}).`,
    });
    expect(existsSync(out)).toBe(false);
  });
});

describe('tidings viz --out', () => {
  it('writes the file and says where, printing nothing else', async () => {
    const io = capture();
    const out = join(dir, 'at-least-once.svg');
    expect(await run(argv('viz', 'at-least-once', '--format', 'svg', '--out', out), io)).toBe(0);
    expect(io.stdout).toEqual([`Wrote the svg diagram of at-least-once to ${out}.`]);
    expect(readFileSync(out, 'utf8')).toBe(await renderViz('at-least-once', 'svg'));
  });

  it('draws the same bytes every time, so committed pictures can be compared', async () => {
    expect(await renderViz('all', 'svg')).toBe(await renderViz('all', 'svg'));
  });

  it('refuses a folder that does not exist, and does not create it', async () => {
    const out = join(dir, 'nowhere', 'x.svg');
    await expect(viz({ target: 'consumer', out }, capture())).rejects.toMatchObject({
      code: 'OUT_FOLDER_NOT_FOUND',
      message: `--out ${out}: the folder ${join(dir, 'nowhere')} does not exist (or is not a folder). Create it first, or write somewhere else.`,
    });
    expect(existsSync(join(dir, 'nowhere'))).toBe(false);
  });
});

describe('tidings viz refuses', () => {
  it('an --out that is a folder, suggesting a file in it', async () => {
    await expect(viz({ target: 'exactly-once/broker', format: 'svg', out: dir }, capture())).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
      message: `--out ${dir} is a folder: name a file in it, e.g. --out ${dir}/exactly-once-broker.svg.`,
    });
  });

  it('a target it does not draw, naming every one it does', async () => {
    await expect(renderViz('exactly-twice')).rejects.toMatchObject({
      name: 'UnknownVizTargetError',
      code: 'UNKNOWN_VIZ_TARGET',
      message: `tidings viz cannot draw "exactly-twice": pick one of ${VIZ_TARGETS.join(', ')}.`,
    });
  });

  it('a format it does not write, naming every one it does', async () => {
    await expect(renderViz('consumer', 'png')).rejects.toMatchObject({
      name: 'UnknownVizFormatError',
      code: 'UNKNOWN_VIZ_FORMAT',
      message: `--format "png" is not one tidings viz writes: pick one of ${VIZ_FORMATS.join(', ')}.`,
    });
  });

  it.each([
    [
      ['viz', 'exactly-twice'],
      'tidings: tidings viz cannot draw "exactly-twice": pick one of at-most-once, at-least-once, exactly-once, exactly-once/broker, exactly-once/end-to-end, consumer, all.',
    ],
    [['viz', 'consumer', '--format', 'png'], 'tidings: --format "png" is not one tidings viz writes: pick one of mermaid, dot, svg, json.'],
  ])('%j with one line on stderr and exit code 1, as every other error of the command', async (args, line) => {
    const io = capture();
    expect(await run(argv(...args), io)).toBe(1);
    expect(io).toMatchObject({ stdout: [], stderr: [line] });
  });
});

describe('tidings viz, spawned', () => {
  beforeAll(() => {
    // The bin runs dist/; rebuild it only when the sources are newer, so the test checks this code.
    const built = join(pkg, 'dist', 'cli.js');
    const newest = Math.max(...readdirSync(join(pkg, 'src')).map((f) => statSync(join(pkg, 'src', f)).mtimeMs));
    if (!existsSync(built) || statSync(built).mtimeMs < newest) execFileSync('npm', ['run', 'build', '-w', '@tidings/cli'], { cwd: root, stdio: 'ignore' });
  });

  const npx = (...args: string[]) => promisify(execFile)('npx', ['--no-install', 'tidings', ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 });

  it('prints the at-least-once state diagram with `npx tidings viz at-least-once --format mermaid`', async () => {
    const { stdout, stderr } = await npx('viz', 'at-least-once', '--format', 'mermaid');
    expect(stderr).toBe('');
    expect(stdout.endsWith('\n')).toBe(true);
    const expected = EXPECTED['at-least-once']!;
    expect(readMermaid(stdout.trimEnd())).toEqual({ title: 'at-least-once', initial: 'sent', finals: expected.finals, edges: expected.edges });
    for (const state of expected.states) expect(stdout).toMatch(new RegExp(`^  (${state} -->|.* --> ${state}:)`, 'm'));
  });

  it('writes a valid SVG with `--format svg --out file.svg`', async () => {
    const out = join(dir, 'spawned.svg');
    const { stdout } = await npx('viz', 'at-least-once', '--format', 'svg', '--out', out);
    expect(stdout).toBe(`Wrote the svg diagram of at-least-once to ${out}.\n`);
    const svg = readFileSync(out, 'utf8');
    expect(balanced(svg)).toBe(true);
    expect(svg).toBe(await renderViz('at-least-once', 'svg'));
  });
});
