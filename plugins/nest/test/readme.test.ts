import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
// Inside the repository, so the samples resolve @tidings/* and get decorator metadata like an application's build.
const scratch = join(here, '.samples');

/** Every ```ts block of the README, unless the line before it is `<!-- not run -->`. */
function samples(): string[] {
  const text = readFileSync(join(here, '..', 'README.md'), 'utf8');
  return [...text.matchAll(/(<!-- not run -->\n)?```ts\n([\s\S]*?)```/g)].filter((m) => !m[1]).map((m) => m[2]!);
}

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('code samples in plugins/nest/README.md', () => {
  it.each(samples().map((code, i) => [i + 1, code] as const))('sample %i runs', async (i, code) => {
    mkdirSync(scratch, { recursive: true });
    const path = join(scratch, `readme-${i}.ts`);
    writeFileSync(path, code);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await import(pathToFileURL(path).href);
      expect(log).toHaveBeenCalled();
    } finally {
      log.mockRestore();
    }
  });
});
