import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { publishedPackages } from './packaging/support.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['core/src', ...['adapters', 'plugins'].flatMap((dir) => readdirSync(join(root, dir)).map((p) => `${dir}/${p}/src`))];

/** Every `.ts` file under the packages' `src` directories. */
function sourceFiles(): string[] {
  return SOURCE_DIRS.flatMap((dir) =>
    readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
      .map((f) => join(root, dir, f)),
  );
}

/** The specifiers a file imports or re-exports, type-only imports included. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/g)].map((m) => m[1]!);
}

describe('source rules', () => {
  it('adapters decide no state: no state or lifecycle name in their code (comments aside)', () => {
    const adapterFiles = [
      ...SOURCE_DIRS.filter((d) => d.startsWith('adapters/')).flatMap((dir) => readdirSync(join(root, dir)).map((f) => join(root, dir, f))),
      // The example adapter is what a third party writes: every file of it but its runnable demo.
      ...readdirSync(join(root, 'examples/custom-adapter/src'))
        .filter((f) => f !== 'main.ts')
        .map((f) => join(root, 'examples/custom-adapter/src', f)),
    ].filter((f) => f.endsWith('.ts'));
    const naming = adapterFiles.flatMap((file) =>
      readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .split('\n')
        .map((line, i) => [line.replace(/\/\/.*$/, '').replace(/--.*$/, ''), i + 1] as const)
        .filter(([line]) => /'(sent|stored|acked|leased|consumed|deleted|dead)'|(at-most|at-least|exactly)-once/.test(line))
        .map(([line, n]) => `${relative(root, file)}:${n}: ${line.trim()}`),
    );
    expect(adapterFiles.length).toBeGreaterThan(8);
    expect(naming).toEqual([]);
  });

  it('has no import cycle inside any package, type-only imports included', () => {
    const graph = new Map<string, string[]>();
    for (const file of sourceFiles()) {
      const local = specifiers(file)
        .filter((s) => s.startsWith('.'))
        .map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
      graph.set(file, local);
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it("imports other packages only through their public entry points, never a deep path into one's files", () => {
    const deep = sourceFiles().flatMap((file) =>
      specifiers(file)
        .filter(
          (s) => /^@tidings\/[^/]+\/(src|dist)\//.test(s) || (s.startsWith('.') && resolve(dirname(file), s).split('/src/')[0] !== file.split('/src/')[0]),
        )
        .map((s) => `${relative(root, file)}: ${s}`),
    );
    expect(deep).toEqual([]);
  });
});

describe('entry points', () => {
  it('are each exported alike: its source for the workspace, import and require() each with types, built from the command line, typed for moduleResolution node', () => {
    for (const { dir, manifest } of publishedPackages()) {
      const exports = manifest.exports as Record<string, unknown>;
      const build = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { scripts: { build: string } }).scripts.build;
      const typesVersions = (manifest as { typesVersions?: Record<string, Record<string, string[]>> }).typesVersions?.['*'] ?? {};
      const subpaths = Object.keys(exports).filter((key) => key !== '.' && key !== './package.json');
      for (const key of ['.', ...subpaths]) {
        const name = key === '.' ? 'index' : key.slice(2);
        const where = `${manifest.name} ${key}`;
        expect(exports[key], where).toEqual({
          '@tidings/source': `./src/${name}.ts`,
          import: { types: `./dist/${name}.d.ts`, default: `./dist/${name}.js` },
          require: { types: `./dist/${name}.d.cts`, default: `./dist/${name}.cjs` },
        });
        expect(existsSync(join(dir, 'src', `${name}.ts`)), where).toBe(true);
        if (key !== '.') expect(build.split(' '), where).toContain(`src/${name}.ts`);
      }
      expect(Object.keys(typesVersions).sort(), manifest.name).toEqual(subpaths.map((key) => key.slice(2)).sort());
      for (const [name, paths] of Object.entries(typesVersions)) expect(paths, `${manifest.name} ${name}`).toEqual([`./dist/${name}.d.cts`]);
    }
  });

  it("core's entry points (@tidings/core, /adapter, /diagrams) give each value one home", async () => {
    const entries = [
      ['index', Object.keys(await import('@tidings/core'))],
      ['adapter', Object.keys(await import('@tidings/core/adapter'))],
      ['diagrams', Object.keys(await import('@tidings/core/diagrams'))],
    ] as const;
    const homes = new Map<string, string[]>();
    for (const [entry, names] of entries) for (const name of names) homes.set(name, [...(homes.get(name) ?? []), entry]);
    expect([...homes].filter(([, where]) => where.length > 1)).toEqual([]);
    expect(entries.map(([entry, names]) => [entry, names.length > 0])).toEqual([
      ['index', true],
      ['adapter', true],
      ['diagrams', true],
    ]);
  });
});
