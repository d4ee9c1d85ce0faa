// npm run docs:lifecycles — writes docs/lifecycles.md from the machines; a test fails when it is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LIFECYCLES, lifecycleDiagram, lifecycleTables } from '@tidings/core';

/** The Markdown page of every lifecycle's diagram. */
export function lifecyclesPage(): string {
  const sections = LIFECYCLES.map((l) => `## ${l}\n\n\`\`\`mermaid\n${lifecycleDiagram(lifecycleTables[l])}\n\`\`\`\n`);
  return `# Message lifecycles\n\nDrawn from the XState machines in \`core/src/machines/\` (\`npm run docs:lifecycles\`);\na guard is written after \`if\`. Every other (state, event) pair is refused with \`ILLEGAL_TRANSITION\`.\n\n${sections.join('\n')}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(fileURLToPath(new URL('./lifecycles.md', import.meta.url)), lifecyclesPage());
}
