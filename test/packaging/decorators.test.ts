import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { root, runProgram } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-decorated-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A package whose class is built only from its constructor's parameter types, as tsyringe and Nest build theirs. */
const source = `import 'reflect-metadata';
import { injectable } from 'tsyringe';

export class Clock {}

@injectable()
export class Service {
  constructor(readonly clock: Clock) {}
}
`;

describe('the shared build (tsup.config.ts)', () => {
  it('emits decorator metadata in ESM and CommonJS, so a container injects by parameter type', { timeout: 120_000 }, async () => {
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src', 'index.ts'), source);
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'decorated', version: '0.0.0', type: 'module', dependencies: { 'reflect-metadata': '*', tsyringe: '*' } }),
    );
    // The workspace's tools and packages (tsup finds @swc/core from the folder it builds).
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
    await runProgram(join(root, 'node_modules', '.bin', 'tsup'), ['--config', join(root, 'tsup.config.ts')], dir, 110_000);

    // The package first: it loads reflect-metadata, which tsyringe needs before it loads.
    const check = 'String(container.resolve(Service).clock instanceof Clock)';
    const esm = await runProgram(
      process.execPath,
      ['--input-type=module', '-e', `import { Clock, Service } from './dist/index.js'; import { container } from 'tsyringe'; console.log(${check});`],
      dir,
    );
    const cjs = await runProgram(
      process.execPath,
      ['-e', `const { Clock, Service } = require('./dist/index.cjs'); const { container } = require('tsyringe'); console.log(${check});`],
      dir,
    );
    expect([esm.trim(), cjs.trim()]).toEqual(['true', 'true']);
  });
});
