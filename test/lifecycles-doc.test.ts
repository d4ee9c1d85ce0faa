import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lifecyclesPage, pictures, writePictures } from '../docs/lifecycles.js';

const scratch = mkdtempSync(join(tmpdir(), 'tidings-pictures-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('docs/lifecycles.md', () => {
  it('shows exactly the transitions of the machines (run npm run docs:lifecycles after changing one)', () => {
    expect(readFileSync(new URL('../docs/lifecycles.md', import.meta.url), 'utf8')).toBe(lifecyclesPage());
  });

  it('draws every transition of the design, guards included, and the consumer', () => {
    const page = lifecyclesPage();
    expect(page).toContain('leased --> dead: DEAD if deliveriesExhausted');
    expect(page).toContain('sent --> stored: STORE if notDuplicate');
    expect(page).toContain('idle --> leasing: after poll');
    expect(page.match(/```mermaid/g)).toHaveLength(5);
    for (const { file } of pictures) expect(page).toContain(`](${file})`);
  });
});

describe('docs/img/', () => {
  beforeAll(() => writePictures(scratch, () => {}));

  it.each(pictures.map((p) => [p.file, p.target]))('%s is what `tidings viz %s --format svg` draws now (run npm run docs:lifecycles)', (file) => {
    expect(readFileSync(new URL(`../docs/${file}`, import.meta.url), 'utf8')).toBe(readFileSync(join(scratch, file), 'utf8'));
  });

  it('are shown in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const { file } of pictures) expect(readme).toContain(`src="docs/${file}"`);
  });
});
