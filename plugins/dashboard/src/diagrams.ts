import { lifecycleTables, type Lifecycle } from '@tidings/core';
import { dotDiagram, lifecycleGraph } from '@tidings/core/diagrams';

const cache = new Map<Lifecycle, Promise<string>>();

/**
 * A lifecycle's diagram as inline SVG, drawn once per process by Graphviz compiled to WebAssembly (offline), with
 * `data-state` on each state's group so the page can draw live counts on it.
 */
export function lifecycleSvg(lifecycle: Lifecycle): Promise<string> {
  let svg = cache.get(lifecycle);
  if (!svg) {
    svg = render(lifecycle);
    // A failed render is not kept: the next page load tries again.
    svg.catch(() => cache.delete(lifecycle));
    cache.set(lifecycle, svg);
  }
  return svg;
}

async function render(lifecycle: Lifecycle): Promise<string> {
  // Loaded only when a page is first asked for: the WebAssembly module is large.
  const { instance } = await import('@viz-js/viz');
  const svg = (await instance()).renderString(dotDiagram(lifecycleGraph(lifecycleTables[lifecycle])), { format: 'svg' });
  return (
    svg
      // Inline SVG in HTML takes no XML prolog or doctype.
      .replace(/^[\s\S]*?(?=<svg)/, '')
      .replace('<svg ', `<svg class="lifecycle" data-lifecycle="${lifecycle}" role="img" aria-label="${lifecycle} lifecycle" `)
      .replace(/<g id="(node\d+)" class="node">\s*<title>(\w+)<\/title>/g, '<g id="$1" class="node" data-state="$2">\n<title>$2</title>')
  );
}
