import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lifecyclesPage } from '../docs/lifecycles.js';

describe('docs/lifecycles.md', () => {
  it('shows exactly the transitions of the machines (run npm run docs:lifecycles after changing one)', () => {
    expect(readFileSync(new URL('../docs/lifecycles.md', import.meta.url), 'utf8')).toBe(lifecyclesPage());
  });

  it('draws every transition of the design, guards included', () => {
    const page = lifecyclesPage();
    expect(page).toContain('leased --> dead: DEAD if deliveriesExhausted');
    expect(page).toContain('sent --> stored: STORE if notDuplicate');
    expect(page.match(/```mermaid/g)).toHaveLength(4);
  });
});
