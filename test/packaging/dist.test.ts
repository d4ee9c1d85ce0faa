import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appDir, publishedPackages, root, runProgram, runScenario, tidingsImportsOf, typesDir } from './support.js';

const dirOf = new Map(publishedPackages().map((p) => [p.manifest.name, p.dir]));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** The declaration files `tsc --listFiles` read with the given project. */
async function typeCheck(project: string): Promise<string[]> {
  const stdout = await runProgram(process.execPath, [tsc, '-p', join(typesDir, project), '--listFiles'], typesDir, 120_000);
  return stdout.trim().split('\n');
}

describe('the built packages in the workspace, loaded as an application loads them (no @tidings/source condition)', () => {
  it.each([
    ['require()', 'main.cjs', 'index.cjs'],
    ['import', 'main.mjs', 'index.js'],
  ])('deliver a message on memory storage through %s, every package from its dist/, core/adapter and core/diagrams too', async (_how, main, file) => {
    const report = await runScenario(appDir, main, ['memory']);
    for (const [name, resolved] of Object.entries(report.resolved)) expect(resolved).toBe(join(dirOf.get(name)!, 'dist', file));
    for (const [name, resolved] of Object.entries(report.entries))
      expect(resolved).toBe(join(dirOf.get('@tidings/core')!, 'dist', file.replace('index', name.split('/')[2]!)));
    expect([report.shared, report.diagram]).toEqual([true, 'title: at-most-once']);
    expect(report.acks).toEqual([
      { id: 'order-1', duplicate: false },
      { id: 'order-1', duplicate: true },
    ]);
    expect(report.consumed).toEqual([{ n: 1 }]);
  });

  it('type-check under module commonjs and moduleResolution node (what Nest sets up), through main and types', { timeout: 130_000 }, async () => {
    const files = await typeCheck('tsconfig.commonjs.json');
    for (const specifier of tidingsImportsOf(join(typesDir, 'commonjs.ts'))) {
      // A subpath (@tidings/nest/microservices) comes through the package's typesVersions.
      const [scope, name, subpath] = specifier.split('/');
      expect(files).toContain(join(dirOf.get(`${scope}/${name}`)!, 'dist', `${subpath ?? 'index'}.d.cts`));
    }
    expect(files.filter((f) => [...dirOf.values()].some((dir) => f.startsWith(join(dir, 'src'))))).toEqual([]);
  });

  it('type-check under module nodenext: an .mts through the import types, a .cts through the require types', { timeout: 130_000 }, async () => {
    const files = await typeCheck('tsconfig.nodenext.json');
    for (const [fixture, extension] of [
      ['esm.mts', 'd.ts'],
      ['cjs.cts', 'd.cts'],
    ]) {
      for (const specifier of tidingsImportsOf(join(typesDir, fixture!))) {
        const [scope, name, subpath] = specifier.split('/');
        expect(files).toContain(join(dirOf.get(`${scope}/${name}`)!, 'dist', `${subpath ?? 'index'}.${extension}`));
      }
    }
    expect(files.filter((f) => [...dirOf.values()].some((dir) => f.startsWith(join(dir, 'src'))))).toEqual([]);
  });
});
