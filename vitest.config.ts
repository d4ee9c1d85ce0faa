import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

/** Every suite of the repo; TIDINGS_TEST_INCLUDE replaces it (the suite's own test of a failing run uses that). */
const include = process.env.TIDINGS_TEST_INCLUDE?.split(',') ?? [
  'core/test/**/*.test.ts',
  'adapters/*/test/**/*.test.ts',
  'plugins/*/test/**/*.test.ts',
  'test/**/*.test.ts',
  'examples/*/test/**/*.test.ts',
];

export default defineConfig({
  plugins: [
    swc.vite({ jsc: { parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true }, target: 'es2022' } }),
  ],
  oxc: false,
  resolve: { conditions: ['@tidings/source'] },
  ssr: { resolve: { conditions: ['@tidings/source'] } },
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    include,
    reporters: ['default', './test/support/summary-reporter.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
