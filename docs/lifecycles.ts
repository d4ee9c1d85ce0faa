// npm run docs:lifecycles — writes docs/lifecycles.md and the pictures in docs/img/ from the machines, the pictures
// with `tidings viz`; a test fails when either is stale.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LIFECYCLES, lifecycleTables } from '@tidings/core';
import { consumerGraph, lifecycleDiagram, mermaidDiagram } from '@tidings/core/diagrams';
import { run } from '@tidings/cli';

/** Every picture in docs/img/: what `tidings viz` draws, and the file it goes to (relative to docs/). */
export const pictures = [...LIFECYCLES, 'consumer'].map((target) => ({ target, file: `img/${target.replace('/', '-')}.svg` }));

const picture = (target: string) => `![${target}](${pictures.find((p) => p.target === target)!.file})`;

/** The Markdown page of every lifecycle's diagram, and the consumer's. */
export function lifecyclesPage(): string {
  const section = (title: string, text: string, target: string, mermaid: string) =>
    `## ${title}\n\n${text}${picture(target)}\n\n\`\`\`mermaid\n${mermaid}\n\`\`\`\n`;
  return [
    '# Message lifecycles\n',
    'Drawn from the XState machines in `core/src/lifecycle/machines/` (`npm run docs:lifecycles`, which draws the pictures with',
    '`tidings viz`); a guard is written after `if`, or in brackets. Every other (state, event) pair is refused with',
    '`ILLEGAL_TRANSITION`. Each picture has a legend of the looks it uses: a double border is a final state, `dead` and',
    'the DEAD transition are red, the thick blue STORE is refused inside the dedup window, and the dashed REDRIVE is an',
    "operator's; transitions between the same two states share one arrow, a label line each. The Mermaid has the same",
    'state looks (`classDef`); Mermaid draws its edges plain.\n',
    ...LIFECYCLES.map((l) => section(l, '', l, lifecycleDiagram(lifecycleTables[l]))),
    section(
      'The consumer',
      "Each consumer's own life (`consumerMachine`): `after` is a delayed transition (dotted), `done` and `error` are the\n" +
        'outcomes of the work a state invokes (an error in red), and STOP leads from every state to `draining`.\n\n',
      'consumer',
      mermaidDiagram(consumerGraph()),
    ),
  ].join('\n');
}

/** Draws every picture with the `tidings viz` command, into `folder` (docs/ by default), telling `log` where each went. */
export async function writePictures(folder = fileURLToPath(new URL('.', import.meta.url)), log: (line: string) => void = console.log): Promise<void> {
  mkdirSync(join(folder, 'img'), { recursive: true });
  for (const { target, file } of pictures) {
    const errors: string[] = [];
    const code = await run(['node', 'tidings', 'viz', target, '--format', 'svg', '--out', join(folder, file)], {
      out: log,
      err: (line) => void errors.push(line),
    });
    if (code !== 0) throw new Error(`tidings viz ${target} exited ${code}: ${errors.join('\n')}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(fileURLToPath(new URL('./lifecycles.md', import.meta.url)), lifecyclesPage());
  await writePictures();
}
