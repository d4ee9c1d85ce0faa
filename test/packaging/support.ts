import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** The repository root. */
export const root = fileURLToPath(new URL('../..', import.meta.url));

/** The application scenario: scenario.cjs, run by main.cjs (require) and main.mjs (import). */
export const appDir = fileURLToPath(new URL('./app', import.meta.url));

/** The type-check fixtures and their tsconfigs. */
export const typesDir = fileURLToPath(new URL('./types', import.meta.url));

/** The package.json fields these tests read. */
export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  main?: string;
  types?: string;
  bin?: Record<string, string>;
  exports?: unknown;
  files?: string[];
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

/** A workspace package the repository publishes. */
export interface PublishedPackage {
  dir: string;
  manifest: Manifest;
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

/** Every workspace package not marked private (core, adapters, plugins), found from the root's `workspaces`. */
export function publishedPackages(): PublishedPackage[] {
  const { workspaces } = readJson<{ workspaces: string[] }>(join(root, 'package.json'));
  const dirs = workspaces.flatMap((pattern) => {
    if (!pattern.endsWith('/*')) return [join(root, pattern)];
    const parent = join(root, pattern.slice(0, -2));
    return readdirSync(parent, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => join(parent, entry.name));
  });
  return dirs
    .filter((dir) => existsSync(join(dir, 'package.json')))
    .map((dir) => ({ dir, manifest: readJson<Manifest>(join(dir, 'package.json')) }))
    .filter((p) => !p.manifest.private);
}

/** The environment of a child that must see the packages as an application does: no source condition, no npm run's settings. */
export function appEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key === 'NODE_OPTIONS' || key.toLowerCase().startsWith('npm_')) delete env[key];
  return env;
}

/** Runs a program to its end and resolves to its stdout; a failure rejects with its output in the message. */
export async function runProgram(file: string, args: string[], cwd: string, timeout = 60_000): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(file, args, { cwd, env: appEnv(), encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** What scenario.cjs prints. */
export interface ScenarioReport {
  /** The file each package resolved to. */
  resolved: Record<string, string>;
  /** The file each of core's subpaths (`@tidings/core/adapter`, `@tidings/core/diagrams`) resolved to. */
  entries: Record<string, string>;
  /** Whether a ledger from `@tidings/core/adapter` emits on an instance of the main entry's `TidingsEventBus`. */
  shared: boolean;
  /** A line of a Mermaid diagram drawn through `@tidings/core/diagrams`. */
  diagram: string;
  acks: Array<{ id: string; duplicate: boolean }>;
  consumed: unknown[];
  /** Rows the handler wrote through `ctx.em`, with the application's own MikroORM. */
  receipts?: string[];
}

/** Runs the scenario with `main` (main.cjs or main.mjs) in `cwd` on the storage `args` name. */
export async function runScenario(cwd: string, main: string, args: string[]): Promise<ScenarioReport> {
  const stdout = await runProgram(process.execPath, [main, ...args], cwd);
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ScenarioReport;
}

/** The @tidings packages a source file imports. */
export function tidingsImportsOf(file: string): string[] {
  return [...new Set([...readFileSync(file, 'utf8').matchAll(/from '(@tidings\/[^']+)'/g)].map((m) => m[1]!))];
}
