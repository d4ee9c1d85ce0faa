import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const scratch = join(root, 'test', '.samples');

/** Every ```ts block of a Markdown file, unless the line before it is `<!-- not run -->`. */
function samples(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/(<!-- not run -->\n)?```ts\n([\s\S]*?)```/g)].filter((m) => !m[1]).map((m) => m[2]!);
}

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Every `npx tidings viz …` line of a Markdown file's sh blocks, its comment cut off, as arguments. */
function vizLines(file: string): string[][] {
  const blocks = [...readFileSync(join(root, file), 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .flatMap((b) => b.split('\n'))
    .filter((l) => l.startsWith('npx tidings viz '))
    .map((l) => l.replace(/#.*$/, '').trim().split(/\s+/).slice(2));
}

describe.each(['README.md', 'plugins/cli/README.md'])('tidings viz lines in %s', (file) => {
  it.each(vizLines(file).map((args) => [args.join(' '), args] as const))('`tidings %s` runs and exits 0', (_, args) => {
    // No database is involved, so the bin runs in a scratch folder, where --out files land.
    mkdirSync(scratch, { recursive: true });
    const out = execFileSync(process.execPath, [join(root, 'plugins', 'cli', 'bin', 'tidings.js'), ...args], {
      cwd: scratch,
      encoding: 'utf8',
      timeout: 30_000,
    });
    const written = args.includes('--out') ? args[args.indexOf('--out') + 1]! : undefined;
    if (written === undefined) expect(out.length).toBeGreaterThan(0);
    else expect(readFileSync(join(scratch, written), 'utf8')).toMatch(written.endsWith('.svg') ? /^<\?xml[\s\S]*<\/svg>\n$/ : /./);
  });
});

describe.each([
  'README.md',
  'docs/writing-an-adapter.md',
  'adapters/mikro-orm/README.md',
  'plugins/otel/README.md',
  'core/README.md',
  'adapters/memory/README.md',
  'plugins/faults/README.md',
  'plugins/idempotency/README.md',
  'docs/errors.md',
])('code samples in %s', (file) => {
  it.each(samples(file).map((code, i) => [i + 1, code] as const))('sample %i runs and exits 0', async (i, code) => {
    mkdirSync(scratch, { recursive: true });
    const path = join(scratch, `${file.replace(/\W/g, '_')}-${i}.ts`);
    writeFileSync(path, code);
    if (code.includes("from '@nestjs/")) {
      // Nest injects by constructor types: run it here, where the build (SWC) emits decorator metadata as an app's does.
      const log = vi.spyOn(console, 'log').mockImplementation(() => {});
      try {
        await import(pathToFileURL(path).href);
        // Each `console.log(x); // shown` line prints what its comment shows.
        const shown = [...code.matchAll(/^console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]);
        expect(log.mock.calls.map((args) => inspect(args[0], { breakLength: Infinity }))).toEqual(shown);
      } finally {
        log.mockRestore();
      }
      return;
    }
    const out = execFileSync(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', path], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    expect(out.length).toBeGreaterThan(0);
  });
});
