import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

/**
 * The tests `npm run mutation` runs against each mutant of the memory adapter: its conformance suite, no PostgreSQL.
 * StrykerJS mutates a copy of the repository (its sandbox); the alias makes the suite import that copy's adapter,
 * where the package name would lead to the original through node_modules.
 */
export default defineConfig({
  ...base,
  root: fileURLToPath(new URL('../..', import.meta.url)),
  resolve: {
    ...base.resolve,
    alias: [{ find: /^@tidings\/adapter-memory$/, replacement: fileURLToPath(new URL('../../adapters/memory/src/index.ts', import.meta.url)) }],
  },
  test: { ...base.test, globalSetup: [], reporters: ['default'], include: ['plugins/conformance/test/memory.test.ts'] },
});
