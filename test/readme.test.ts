import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const scratch = join(root, 'test', '.samples');

/** Every ```ts block of a Markdown file, unless the line before it is `<!-- not run -->`. */
function samples(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/(<!-- not run -->\n)?```ts\n([\s\S]*?)```/g)].filter((m) => !m[1]).map((m) => m[2]!);
}

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe.each(['README.md', 'docs/writing-an-adapter.md'])('code samples in %s', (file) => {
  it.each(samples(file).map((code, i) => [i + 1, code] as const))('sample %i runs and exits 0', (i, code) => {
    mkdirSync(scratch, { recursive: true });
    const path = join(scratch, `${file.replace(/\W/g, '_')}-${i}.ts`);
    writeFileSync(path, code);
    const out = execFileSync(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', path], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    expect(out.length).toBeGreaterThan(0);
  });
});
