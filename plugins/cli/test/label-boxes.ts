// Where the text of a Graphviz SVG lands, and which of it collides: a reader's check of a picture, not Graphviz's own.

/** A rectangle in SVG user units, y growing downwards. */
export interface Box {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

/** A run of text as drawn: its words, the element it belongs to (`node1`, `edge3`, `graph0`), and its estimated box. */
export interface TextBox extends Box {
  readonly text: string;
  readonly owner: string;
}

/** A node's outline: the union of the shapes that draw it (a state's box, the start point, the legend's table). */
export interface NodeBox extends Box {
  readonly name: string;
  readonly owner: string;
}

/** Two things drawn on top of each other, named as a reader would point at them. */
export interface Collision {
  readonly a: string;
  readonly b: string;
}

// DejaVu Sans's advance widths in ems, rounded up to a twentieth: the sans-serif a browser without Helvetica (Linux,
// most often) draws the SVG's `Helvetica,sans-Serif` in. It is wider than the Helvetica metrics Graphviz lays text out
// by, so a picture that passes here holds up there too. Measured with canvas `measureText` in Chromium.
const ADVANCE: ReadonlyArray<readonly [number, string]> = [
  [0.3, "'IJijl"],
  [0.35, ' ,./:;\\f|'],
  [0.4, '!()-[]t'],
  [0.45, 'r'],
  [0.5, '"*_`'],
  [0.55, '?csz'],
  [0.6, 'FLPkvxy'],
  [0.65, '0123456789$ESTYabdeghnopqu{}'],
  [0.7, 'ABCKRVXZ'],
  [0.75, 'HNU'],
  [0.8, '&DGOQ'],
  [0.85, '#+<=>^w~'],
  [0.9, 'M'],
  [0.95, '%'],
  [1, '@Wm'],
];
const EMS = new Map(ADVANCE.flatMap(([ems, chars]) => [...chars].map((c) => [c, ems] as const)));

/** A text's width at a font size, by DejaVu Sans (a character it does not list counts as wide as `m`). */
export function textWidth(text: string, fontSize: number): number {
  let ems = 0;
  for (const c of text) ems += EMS.get(c) ?? 1;
  return ems * fontSize;
}

// Ascent and descent of a line, in ems, measured from the baseline the SVG gives.
const ASCENT = 0.94;
const DESCENT = 0.25;

const unescape = (text: string) =>
  text
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');

const attr = (tag: string, name: string) => {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return m ? m[1]! : undefined;
};

/** The element groups of a Graphviz SVG in order: the graph itself, clusters, nodes and edges, each with its markup. */
function groups(svg: string): Array<{ id: string; kind: string; title: string; markup: string }> {
  const out: Array<{ id: string; kind: string; title: string; markup: string }> = [];
  // Graphviz writes its groups flat (no group inside a node or edge group), so each runs to the next one's start.
  const starts = [...svg.matchAll(/<g id="([^"]+)" class="(graph|cluster|node|edge)"[^>]*>/g)];
  for (const [i, m] of starts.entries()) {
    const markup = svg.slice(m.index, starts[i + 1]?.index ?? svg.length);
    out.push({ id: m[1]!, kind: m[2]!, title: unescape(/<title>([\s\S]*?)<\/title>/.exec(markup)?.[1] ?? ''), markup });
  }
  return out;
}

/** Every `<text>` of the SVG with a box from its anchor, baseline, font size and length. */
export function textBoxes(svg: string): TextBox[] {
  return groups(svg).flatMap((g) =>
    [...g.markup.matchAll(/<text([^>]*)>([\s\S]*?)<\/text>/g)].map((m): TextBox => {
      const text = unescape(m[2]!);
      const size = Number(attr(m[1]!, 'font-size') ?? 14);
      const x = Number(attr(m[1]!, 'x'));
      const y = Number(attr(m[1]!, 'y'));
      const width = textWidth(text, size);
      const anchor = attr(m[1]!, 'text-anchor') ?? 'start';
      const left = anchor === 'middle' ? x - width / 2 : anchor === 'end' ? x - width : x;
      return {
        text,
        owner: g.kind === 'edge' ? `edge ${g.title}#${g.id}` : `${g.kind} ${g.title}`,
        left,
        right: left + width,
        top: y - ASCENT * size,
        bottom: y + DESCENT * size,
      };
    }),
  );
}

/** The picture's own area: Graphviz paints it white first, as the graph group's first polygon. */
export function canvas(svg: string): Box {
  const g = groups(svg).find((x) => x.kind === 'graph');
  const n = (/<polygon[^>]*\spoints="([^"]*)"/.exec(g?.markup ?? '')?.[1]?.match(/-?\d+(?:\.\d+)?/g) ?? []).map(Number);
  const xs = n.filter((_, i) => i % 2 === 0);
  const ys = n.filter((_, i) => i % 2 === 1);
  return { left: Math.min(...xs), right: Math.max(...xs), top: Math.min(...ys), bottom: Math.max(...ys) };
}

/** Every cluster's frame, which its title must stay inside. */
export function clusterBoxes(svg: string): NodeBox[] {
  return groups(svg)
    .filter((g) => g.kind === 'cluster')
    .flatMap((g) => {
      const n = (/<(?:polygon[^>]*\spoints|path[^>]*\sd)="([^"]*)"/.exec(g.markup)?.[1]?.match(/-?\d+(?:\.\d+)?/g) ?? []).map(Number);
      if (n.length === 0) return [];
      const xs = n.filter((_, i) => i % 2 === 0);
      const ys = n.filter((_, i) => i % 2 === 1);
      return [{ name: g.title, owner: `cluster ${g.title}`, left: Math.min(...xs), right: Math.max(...xs), top: Math.min(...ys), bottom: Math.max(...ys) }];
    });
}

/** Every node's outline, from the points of its paths, polygons and ellipses. */
export function nodeBoxes(svg: string): NodeBox[] {
  return groups(svg)
    .filter((g) => g.kind === 'node')
    .flatMap((g) => {
      const xs: number[] = [];
      const ys: number[] = [];
      const add = (points: string) => {
        const n = (points.match(/-?\d+(?:\.\d+)?(?:e-?\d+)?/g) ?? []).map(Number);
        for (let i = 0; i + 1 < n.length; i += 2) {
          xs.push(n[i]!);
          ys.push(n[i + 1]!);
        }
      };
      for (const m of g.markup.matchAll(/<path[^>]*\sd="([^"]*)"/g)) add(m[1]!);
      for (const m of g.markup.matchAll(/<polygon[^>]*\spoints="([^"]*)"/g)) add(m[1]!);
      for (const m of g.markup.matchAll(/<ellipse([^>]*)>/g)) {
        const [cx, cy, rx, ry] = ['cx', 'cy', 'rx', 'ry'].map((a) => Number(attr(m[1]!, a)));
        add(`${cx! - rx!},${cy! - ry!} ${cx! + rx!},${cy! + ry!}`);
      }
      if (xs.length === 0) return [];
      return [{ name: g.title, owner: `node ${g.title}`, left: Math.min(...xs), right: Math.max(...xs), top: Math.min(...ys), bottom: Math.max(...ys) }];
    });
}

/** Points along every edge as drawn (its Bézier curves and its arrowhead), to find the texts it runs through. */
export function edgePoints(svg: string): Array<{ owner: string; points: Array<[number, number]> }> {
  return groups(svg)
    .filter((g) => g.kind === 'edge')
    .map((g) => {
      const points: Array<[number, number]> = [];
      // Graphviz draws an edge as `M p0 C c1 c2 p1 c1 c2 p2 …`, absolute coordinates throughout.
      for (const m of g.markup.matchAll(/<path[^>]*\sd="([^"]*)"/g)) {
        const n = (m[1]!.match(/-?\d+(?:\.\d+)?(?:e-?\d+)?/g) ?? []).map(Number);
        const xy: Array<[number, number]> = [];
        for (let i = 0; i + 1 < n.length; i += 2) xy.push([n[i]!, n[i + 1]!]);
        for (let i = 0; i + 3 < xy.length; i += 3) {
          const [p0, p1, p2, p3] = [xy[i]!, xy[i + 1]!, xy[i + 2]!, xy[i + 3]!];
          for (let k = 0; k <= 24; k++) {
            const t = k / 24;
            const u = 1 - t;
            const at = (j: 0 | 1) => u * u * u * p0[j] + 3 * u * u * t * p1[j] + 3 * u * t * t * p2[j] + t * t * t * p3[j];
            points.push([at(0), at(1)]);
          }
        }
      }
      for (const m of g.markup.matchAll(/<polygon[^>]*\spoints="([^"]*)"/g)) {
        const n = (m[1]!.match(/-?\d+(?:\.\d+)?(?:e-?\d+)?/g) ?? []).map(Number);
        for (let i = 0; i + 1 < n.length; i += 2) points.push([n[i]!, n[i + 1]!]);
      }
      return { owner: `edge ${g.title}#${g.id}`, points };
    });
}

const overlap = (a: Box, b: Box) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
const within = (a: Box, b: Box) => b.left <= a.left && a.right <= b.right && b.top <= a.top && a.bottom <= b.bottom;
const inside = ([x, y]: [number, number], b: Box) => b.left < x && x < b.right && b.top < y && y < b.bottom;

/**
 * Every pair of texts drawn over each other, every text over a node it does not belong to, every text another edge
 * runs through (its own edge passes beside it, and may touch it), and every text that runs off the picture or out of
 * its cluster's frame.
 */
export function collisions(svg: string): Collision[] {
  const texts = textBoxes(svg);
  const nodes = nodeBoxes(svg);
  const edges = edgePoints(svg);
  const area = canvas(svg);
  const frames = clusterBoxes(svg);
  const found: Collision[] = [];
  const name = (t: TextBox) => `"${t.text}" (${t.owner})`;
  for (const [i, a] of texts.entries()) {
    if (a.left < area.left || a.right > area.right || a.top < area.top || a.bottom > area.bottom) found.push({ a: name(a), b: 'the edge of the picture' });
    const frame = frames.find((f) => f.owner === a.owner);
    if (frame && !within(a, frame)) found.push({ a: name(a), b: `the frame of ${a.owner}` });
    for (const f of frames) if (f !== frame && overlap(a, f) && !within(a, f)) found.push({ a: name(a), b: `the frame of ${f.owner}` });
    for (const b of texts.slice(i + 1)) if (overlap(a, b)) found.push({ a: name(a), b: name(b) });
    for (const n of nodes) if (n.owner !== a.owner && overlap(a, n)) found.push({ a: name(a), b: n.owner });
    for (const e of edges) if (e.owner !== a.owner && e.points.some((p) => inside(p, a))) found.push({ a: name(a), b: e.owner });
  }
  return found;
}
