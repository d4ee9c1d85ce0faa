import { builtinModules } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appDir, publishedPackages, root, runProgram, runScenario, type Manifest } from './support.js';

/**
 * Packs every publishable package with `npm pack` and installs the tarballs in a scratch application outside the
 * workspace, next to the application's own MikroORM and reflect-metadata, then runs it as a user would.
 */

/** MikroORM and what shares global state: a second copy breaks an application, so a package takes the application's. */
const SHARED = [/^@mikro-orm\//, /^@nestjs\//, /^reflect-metadata$/, /^rxjs$/];
/** What the scratch application depends on itself, as an application on Tidings' SQLite storage would. */
const APP_DEPENDENCIES = {
  '@mikro-orm/core': '6.6.16',
  '@mikro-orm/sqlite': '6.6.16',
  '@mikro-orm/postgresql': '6.6.16',
  '@mikro-orm/nestjs': '6.1.2',
  '@nestjs/common': '11.2.10',
  '@nestjs/core': '11.2.10',
  'reflect-metadata': '0.2.2',
  rxjs: '7.8.2',
};

/** The conformance suite's vitest peer: the repository runs it on vitest 4, the test below on vitest 5. */
const CONFORMANCE_VITEST = '^4.1 || ^5';
const VITEST_5 = '5.1.2';

const work = mkdtempSync(join(tmpdir(), 'tidings-tarballs-'));
const tarballs = join(work, 'tarballs');
const app = join(work, 'app');
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Packed {
  manifest: Manifest;
  dir: string;
  tarball: string;
  files: string[];
}
let packed: Packed[] = [];
/** The packages installed: each whose peers the application provides (the conformance suite wants vitest: packed only). */
let installed: Packed[] = [];

/** The package a bare import specifier names, or undefined for a relative path or a Node builtin. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0]!)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** The packages a built file imports or requires (code and declarations). */
function importsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8');
  // A specifier has no spaces: `'id' | 'from' | 'to'` in a declaration file is a union type, not an import.
  const names = [...text.matchAll(/(?:\bfrom|\bimport|\brequire\()\s*\(?\s*["']([^"'\s]+)["']/g)].map((m) => packageOf(m[1]!));
  return new Set(names.filter((n): n is string => n !== undefined));
}

/** Every file a manifest points at: exports (but the source condition, which is the workspace's), main, types, bin. */
function entryFiles(manifest: Manifest): string[] {
  const targets: string[] = [];
  const walk = (node: unknown, condition?: string) => {
    if (condition === '@tidings/source') return;
    if (typeof node === 'string') targets.push(node);
    else if (node && typeof node === 'object') for (const [key, value] of Object.entries(node)) walk(value, key);
  };
  walk(manifest.exports);
  walk(manifest.main);
  walk(manifest.types);
  walk(manifest.bin);
  return targets.map((t) => t.replace(/^\.\//, ''));
}

/** Paths of every installed copy of a package in a node_modules tree, nested ones included. */
function copiesOf(name: string, nodeModules: string): string[] {
  const found: string[] = [];
  const visit = (dir: string) => {
    if (!existsSync(dir)) return;
    if (existsSync(join(dir, name, 'package.json'))) found.push(join(dir, name));
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const packages = entry.name.startsWith('@') ? readdirSync(join(dir, entry.name)).map((n) => join(dir, entry.name, n)) : [join(dir, entry.name)];
      for (const pkg of packages) visit(join(pkg, 'node_modules'));
    }
  };
  visit(nodeModules);
  return found;
}

/**
 * sqlite3 fetches a prebuilt binary at install, which this network cannot reach, and would compile for minutes
 * instead. The workspace's binary of the same version, offered as a local prebuild, stands in for the download;
 * without one, the install compiles.
 */
async function offerSqlitePrebuild(): Promise<void> {
  const sqlite3 = join(root, 'node_modules', 'sqlite3');
  if (!existsSync(join(sqlite3, 'build', 'Release', 'node_sqlite3.node'))) return;
  const { version, binary } = JSON.parse(readFileSync(join(sqlite3, 'package.json'), 'utf8')) as { version: string; binary: { napi_versions: number[] } };
  const prebuilds = join(work, 'prebuilds');
  mkdirSync(prebuilds);
  const names = binary.napi_versions.map((napi) => join(prebuilds, `sqlite3-v${version}-napi-v${napi}-${process.platform}-${process.arch}.tar.gz`));
  await runProgram('tar', ['-czf', names[0]!, 'build/Release/node_sqlite3.node'], sqlite3);
  for (const name of names.slice(1)) copyFileSync(names[0]!, name);
  writeFileSync(join(app, '.prebuild-installrc'), `local-prebuilds=${prebuilds}\n`);
}

beforeAll(async () => {
  const published = publishedPackages();
  mkdirSync(tarballs);
  const stdout = await runProgram(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', tarballs, ...published.flatMap((p) => ['-w', p.manifest.name])],
    root,
  );
  const report = JSON.parse(stdout) as Array<{ name: string; filename: string; files: Array<{ path: string }> }>;
  packed = published.map((p) => {
    const r = report.find((x) => x.name === p.manifest.name)!;
    return { ...p, tarball: join(tarballs, r.filename), files: r.files.map((f) => f.path) };
  });
  // MikroORM's packages come with the application's driver (@mikro-orm/knex with @mikro-orm/sqlite).
  const provided = (peer: string) => peer.startsWith('@mikro-orm/') || peer in APP_DEPENDENCIES;
  const required = (p: Packed) => Object.keys(p.manifest.peerDependencies ?? {}).filter((peer) => !p.manifest.peerDependenciesMeta?.[peer]?.optional);
  installed = packed.filter((p) => required(p).every(provided));

  mkdirSync(app);
  for (const file of ['scenario.cjs', 'main.cjs', 'main.mjs', 'nest.cjs']) copyFileSync(join(appDir, file), join(app, file));
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify(
      {
        name: 'tidings-scratch-app',
        version: '0.0.0',
        private: true,
        dependencies: { ...APP_DEPENDENCIES, ...Object.fromEntries(installed.map((p) => [p.manifest.name, `file:${p.tarball}`])) },
        allowScripts: { sqlite3: true },
      },
      null,
      2,
    ),
  );
  await offerSqlitePrebuild();
  await runProgram('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 280_000);
}, 300_000);

describe('the packed tarballs, installed in an application outside the workspace', () => {
  it('hold every file their exports, main, types and bin name, and no sources', () => {
    for (const p of packed) {
      for (const file of entryFiles(p.manifest)) expect(p.files, `${p.manifest.name} ships ${file}`).toContain(file);
      expect(
        p.files.filter((f) => f.startsWith('src/')),
        p.manifest.name,
      ).toEqual([]);
      for (const file of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts']) expect(p.files, p.manifest.name).toContain(file);
    }
  });

  it('ship a README and a LICENSE, declare the Node versions they run on, and carry maps without copies of the sources', () => {
    for (const p of packed) {
      expect(p.files, p.manifest.name).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'package.json']));
      expect(readFileSync(join(p.dir, 'LICENSE'), 'utf8'), p.manifest.name).toMatch(/^MIT License/);
      expect(p.manifest.engines?.node, p.manifest.name).toBe('>=20.19');
      for (const map of p.files.filter((f) => f.endsWith('.map'))) {
        expect(JSON.parse(readFileSync(join(p.dir, map), 'utf8')).sourcesContent, `${p.manifest.name} ${map}`).toBeUndefined();
      }
    }
  });

  it('install the version set the README\'s "Tested with" table states', () => {
    const table = readFileSync(join(root, 'README.md'), 'utf8').split('### Tested with')[1]!.split('\n\n')[2]!;
    const stated = Object.fromEntries([...table.matchAll(/^\| `([^`]+)` \| ([^ |]+) \|$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(stated).toEqual(APP_DEPENDENCIES);
    for (const [name, version] of Object.entries(APP_DEPENDENCIES)) {
      expect((JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version, name).toBe(version);
    }
  });

  it('declare every package their built files import, MikroORM, Nest, rxjs and reflect-metadata only as peers', () => {
    for (const p of packed) {
      const dependencies = Object.keys(p.manifest.dependencies ?? {});
      const peers = Object.keys(p.manifest.peerDependencies ?? {});
      const imported = new Set(p.files.filter((f) => /^dist\/.*\.(c?js|d\.c?ts)$/.test(f)).flatMap((f) => [...importsOf(join(p.dir, f))]));
      for (const name of imported) expect([...dependencies, ...peers], `${p.manifest.name} imports ${name}`).toContain(name);
      expect(
        dependencies.filter((d) => SHARED.some((re) => re.test(d))),
        `${p.manifest.name} dependencies`,
      ).toEqual([]);
    }
  });

  it('install one copy of @mikro-orm/core and of reflect-metadata: the application’s', () => {
    expect(installed.map((p) => p.manifest.name)).toEqual(
      expect.arrayContaining(['@tidings/core', '@tidings/adapter-sqlite', '@tidings/cli', '@tidings/nest']),
    );
    for (const name of ['@mikro-orm/core', 'reflect-metadata', '@nestjs/core', 'rxjs'])
      expect(copiesOf(name, join(app, 'node_modules'))).toEqual([join(app, 'node_modules', name)]);
  });

  it.each([
    ['import', 'main.mjs', 'index.js'],
    ['require()', 'main.cjs', 'index.cjs'],
  ])(
    'send and consume on an exactly-once topic in a SQLite file, through %s, core/adapter and core/diagrams from their own files',
    { timeout: 60_000 },
    async (_how, main, file) => {
      const report = await runScenario(app, main, ['sqlite', join(work, `${main}.db`)]);
      for (const [name, resolved] of Object.entries(report.resolved)) expect(resolved).toBe(join(app, 'node_modules', name, 'dist', file));
      for (const [name, resolved] of Object.entries(report.entries))
        expect(resolved).toBe(join(app, 'node_modules', '@tidings/core', 'dist', file.replace('index', name.split('/')[2]!)));
      expect([report.shared, report.diagram]).toEqual([true, 'title: at-most-once']);
      expect(report.acks).toEqual([
        { id: 'order-1', duplicate: false },
        { id: 'order-1', duplicate: true },
      ]);
      expect(report.consumed).toEqual([{ n: 1 }]);
    },
  );

  it.each([
    ['import', 'main.mjs'],
    ['require()', 'main.cjs'],
  ])(
    'run on the application’s own MikroORM, sqliteStorage({ orm }), the handler’s write committed with the consumption, through %s',
    { timeout: 60_000 },
    async (_how, main) => {
      const report = await runScenario(app, main, ['sqlite-orm', join(work, `${main}-orm.db`)]);
      expect(report.consumed).toEqual([{ n: 1 }]);
      expect(report.receipts).toEqual(['order-1']);
    },
  );

  it('boot a CommonJS NestJS application with @mikro-orm/nestjs: outbox send, duplicate refused, inbox write committed', { timeout: 60_000 }, async () => {
    const report = await runScenario(app, 'nest.cjs', [join(work, 'nest.db')]);
    for (const [name, resolved] of Object.entries(report.resolved)) expect(resolved).toBe(join(app, 'node_modules', name, 'dist', 'index.cjs'));
    expect(report.acks).toEqual([
      { id: 'order-1', duplicate: false },
      { id: 'order-1', duplicate: true },
    ]);
    expect(report.receipts).toEqual(['order-1']);
  });

  it(
    'load @tidings/otel without its optional peer @opentelemetry/api: otelPlugin() throws OTEL_API_MISSING, through import and require()',
    { timeout: 120_000 },
    async () => {
      // An application of its own with only core and otel: another package's dependency (prom-client's) would bring the API.
      const alone = join(work, 'otel-alone');
      mkdirSync(alone);
      const tarballOf = (name: string) => `file:${packed.find((p) => p.manifest.name === name)!.tarball}`;
      const dependencies = {
        '@tidings/core': tarballOf('@tidings/core'),
        '@tidings/otel': tarballOf('@tidings/otel'),
        'reflect-metadata': APP_DEPENDENCIES['reflect-metadata'],
      };
      writeFileSync(join(alone, 'package.json'), JSON.stringify({ name: 'tidings-otel-alone', version: '0.0.0', private: true, dependencies }, null, 2));
      await runProgram('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], alone, 100_000);
      expect(copiesOf('@opentelemetry/api', join(alone, 'node_modules'))).toEqual([]);
      const check = 'try { otelPlugin(); console.log("created"); } catch (e) { console.log(e instanceof OtelApiMissingError, e.code); }';
      const esm = await runProgram(
        process.execPath,
        ['--input-type=module', '-e', `const { otelPlugin, OtelApiMissingError } = await import('@tidings/otel'); ${check}`],
        alone,
      );
      const cjs = await runProgram(process.execPath, ['-e', `const { otelPlugin, OtelApiMissingError } = require('@tidings/otel'); ${check}`], alone);
      expect([esm.trim(), cjs.trim()]).toEqual(['true OTEL_API_MISSING', 'true OTEL_API_MISSING']);
    },
  );

  it('run the tidings bin: its version, and the demo with every guarantee held', { timeout: 60_000 }, async () => {
    const bin = join(app, 'node_modules', '.bin', 'tidings');
    const cli = packed.find((p) => p.manifest.name === '@tidings/cli')!;
    expect((await runProgram(bin, ['--version'], app)).trim()).toBe(cli.manifest.version);
    const results = JSON.parse(await runProgram(bin, ['demo', '--messages', '20', '--seed', '7', '--dir', join(work, 'demo'), '--json'], app)) as Array<{
      semantic: string;
      held: boolean;
    }>;
    expect(results.map((r) => [r.semantic, r.held])).toEqual(results.map((r) => [r.semantic, true]));
    expect(results.length).toBeGreaterThanOrEqual(4);
  });

  it(
    "run tidings prove from the bin on a SQLite file, its workers from the package's own dist, on the application's sqlite3 driver",
    { timeout: 120_000 },
    async () => {
      const bin = join(app, 'node_modules', '.bin', 'tidings');
      const args = [
        'prove',
        '--db',
        join(work, 'prove', 'app.db'),
        '--messages',
        '20',
        '--kills',
        '1',
        '--seed',
        '5',
        '--only',
        'exactly-once/end-to-end',
        '--json',
      ];
      mkdirSync(join(work, 'prove'));
      const result = JSON.parse(await runProgram(bin, args, app, 110_000)) as {
        held: boolean;
        rows: Array<{ run: string; kills: number; lost: number; duplicated: number }>;
      };
      expect(result.held).toBe(true);
      expect(result.rows).toEqual([expect.objectContaining({ run: 'exactly-once/end-to-end', lost: 0, duplicated: 0 })]);
      expect(result.rows[0]!.kills).toBeGreaterThanOrEqual(1);
    },
  );

  it('run the conformance suite from its tarball on vitest 5, which its peer range admits beside vitest 4', { timeout: 200_000 }, async () => {
    const conformance = packed.find((p) => p.manifest.name === '@tidings/conformance')!;
    expect(conformance.manifest.peerDependencies?.vitest).toBe(CONFORMANCE_VITEST);
    const suite = join(work, 'vitest-5');
    mkdirSync(join(suite, 'test'), { recursive: true });
    const tarballOf = (name: string) => `file:${packed.find((p) => p.manifest.name === name)!.tarball}`;
    const names = ['@tidings/core', '@tidings/adapter-memory', '@tidings/idempotency', '@tidings/conformance'];
    const dependencies = {
      ...Object.fromEntries(names.map((n) => [n, tarballOf(n)])),
      'reflect-metadata': APP_DEPENDENCIES['reflect-metadata'],
      vitest: VITEST_5,
    };
    writeFileSync(
      join(suite, 'package.json'),
      JSON.stringify({ name: 'tidings-vitest-5', version: '0.0.0', private: true, type: 'module', dependencies }, null, 2),
    );
    // vitest 5 declares Node 22 and runs on 20: npm only warns, and the suite is what says whether it works.
    await runProgram('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], suite, 150_000);
    copyFileSync(join(root, 'plugins', 'conformance', 'test', 'memory.test.ts'), join(suite, 'test', 'memory.test.ts'));
    await runProgram(join(suite, 'node_modules', '.bin', 'vitest'), ['run', '--reporter=json', '--outputFile=report.json'], suite, 120_000);
    const report = JSON.parse(readFileSync(join(suite, 'report.json'), 'utf8')) as { numPassedTests: number; numFailedTests: number; success: boolean };
    expect((JSON.parse(readFileSync(join(suite, 'node_modules', 'vitest', 'package.json'), 'utf8')) as { version: string }).version).toBe(VITEST_5);
    expect({ success: report.success, failed: report.numFailedTests }).toEqual({ success: true, failed: 0 });
    expect(report.numPassedTests).toBeGreaterThan(150);
  });
});
