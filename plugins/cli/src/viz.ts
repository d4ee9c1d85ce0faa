import { statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidOptionsError, LIFECYCLES, lifecycleOf, lifecycleTables } from '@tidings/core';
import { consumerGraph, dotDiagram, lifecycleGraph, mermaidDiagram, type StateGraph } from '@tidings/core/diagrams';
import type { Output } from './commands.js';
import { MermaidFileOfOneDiagramError, OutFolderNotFoundError, UnknownVizFormatError, UnknownVizTargetError } from './errors.js';

/** What `tidings viz` draws: a lifecycle (`exactly-once` is end-to-end, as `tidings.topic` takes it), the consumer, or every lifecycle. */
export const VIZ_TARGETS = ['at-most-once', 'at-least-once', 'exactly-once', 'exactly-once/broker', 'exactly-once/end-to-end', 'consumer', 'all'] as const;
/** A machine `tidings viz` draws. */
export type VizTarget = (typeof VIZ_TARGETS)[number];

/** The formats `tidings viz` writes. */
export const VIZ_FORMATS = ['mermaid', 'dot', 'svg', 'json'] as const;
/** A format `tidings viz` writes. */
export type VizFormat = (typeof VIZ_FORMATS)[number];

const EXTENSIONS: Record<VizFormat, string> = { mermaid: 'mmd', dot: 'dot', svg: 'svg', json: 'json' };

/** Options of `tidings viz`. */
export interface VizOptions {
  target: string;
  /** Default `mermaid`. */
  format?: string;
  /** A file to write instead of printing; its folder must exist. */
  out?: string;
}

/** The graphs a target names, read from the machines: one, or every lifecycle for `all`. */
export function vizGraphs(target: string): StateGraph[] {
  if (!(VIZ_TARGETS as readonly string[]).includes(target)) throw new UnknownVizTargetError(target, VIZ_TARGETS);
  const t = target as VizTarget;
  if (t === 'all') return LIFECYCLES.map((l) => lifecycleGraph(lifecycleTables[l]));
  if (t === 'consumer') return [consumerGraph()];
  return [lifecycleGraph(lifecycleTables[t === 'exactly-once' ? lifecycleOf('exactly-once') : t])];
}

/**
 * A target drawn in a format, as printed: `all` is one Markdown section per lifecycle (Mermaid), one digraph of
 * clusters side by side (DOT, SVG), or an array (JSON).
 */
export async function renderViz(target: string, format = 'mermaid'): Promise<string> {
  if (!(VIZ_FORMATS as readonly string[]).includes(format)) throw new UnknownVizFormatError(format, VIZ_FORMATS);
  const graphs = vizGraphs(target);
  const one = target === 'all' ? undefined : graphs[0]!;
  switch (format as VizFormat) {
    case 'mermaid':
      // Mermaid draws one diagram per block, so `all` is Markdown that GitHub and most editors render.
      return one ? mermaidDiagram(one) : markdown(graphs);
    case 'dot':
      return dotDiagram(one ?? graphs);
    case 'svg':
      return svgOf(dotDiagram(one ?? graphs));
    case 'json':
      return JSON.stringify(one ?? graphs, null, 2);
  }
}

/** Mermaid diagrams as Markdown, a section and a fenced block each, which GitHub and most editors render. */
function markdown(graphs: readonly StateGraph[]): string {
  return graphs.map((g) => `## ${g.name}\n\n\`\`\`mermaid\n${mermaidDiagram(g)}\n\`\`\``).join('\n\n');
}

/**
 * Draws a target and prints it, or writes it to `out` and says where; returns what it drew. Mermaid goes to a `.md`
 * file as Markdown, to any other as the plain diagram a Mermaid renderer reads, which is why `all` needs a `.md`.
 */
export async function viz(options: VizOptions, output: Output): Promise<string> {
  const format = options.format ?? 'mermaid';
  const printed = await renderViz(options.target, format);
  if (options.out === undefined) {
    output.out(printed);
    return printed;
  }
  const folder = dirname(resolve(options.out));
  if (!statSync(folder, { throwIfNoEntry: false })?.isDirectory()) throw new OutFolderNotFoundError(options.out, folder);
  if (statSync(options.out, { throwIfNoEntry: false })?.isDirectory()) {
    throw new InvalidOptionsError(
      `--out ${options.out} is a folder: name a file in it, e.g. --out ${options.out.replace(/[\\/]+$/, '')}/${options.target.replace('/', '-')}.${EXTENSIONS[format as VizFormat]}.`,
    );
  }
  const text = format === 'mermaid' ? mermaidFile(options.target, options.out, printed) : printed;
  writeFileSync(options.out, text.endsWith('\n') ? text : `${text}\n`);
  output.out(`Wrote the ${format} diagram of ${options.target} to ${options.out}.`);
  return text;
}

/** Mermaid as the file `out` names takes it: Markdown for `.md`, else the one diagram a renderer reads. */
function mermaidFile(target: string, out: string, printed: string): string {
  const graphs = vizGraphs(target);
  if (/\.md$/i.test(out)) return markdown(graphs);
  if (target === 'all') throw new MermaidFileOfOneDiagramError(out);
  return printed;
}

/** SVG from DOT by Graphviz compiled to WebAssembly: offline, no browser, the same bytes for the same input. */
async function svgOf(dot: string): Promise<string> {
  // Loaded only when asked for: the WebAssembly module is large, and the other commands never need it.
  const { instance } = await import('@viz-js/viz');
  return (await instance()).renderString(dot, { format: 'svg' });
}
