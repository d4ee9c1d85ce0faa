import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';

/**
 * The one build of every publishable package (`tsup --config <root>/tsup.config.ts [entries]`, run in the
 * package's folder): ESM `dist/*.js` and CommonJS `dist/*.cjs`, with `.d.ts` and `.d.cts` types for each.
 * Entries default to `src/index.ts`; a package with more (a bin) names them all on the command line.
 */
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  // Entries share chunks in CommonJS too (esbuild splits ESM only by default): a package with several entry points
  // (@tidings/core/adapter, @tidings/nest/microservices) must have one copy of each class, or instanceof fails across them.
  splitting: true,
  dts: true,
  // Not tsconfig.json: it resolves @tidings/* to sources, and types must come from dist/; and the types build adds
  // every .d.ts a config includes to each package, so this one includes the packages' sources only.
  // emitDecoratorMetadata (from the base) makes tsup compile through @swc/core, keeping design:* metadata.
  tsconfig: fileURLToPath(new URL('./tsconfig.build.json', import.meta.url)),
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Maps point into the package's own sources by line, without carrying them: a copy of every source file doubled
  // what a user downloads.
  esbuildOptions(options) {
    options.sourcesContent = false;
  },
  clean: true,
  // Never bundle a package: dependencies and peers (one MikroORM, one reflect-metadata) stay the application's to resolve.
  skipNodeModulesBundle: true,
  // Keep `node:` specifiers; builtins such as node:sqlite exist only under that prefix.
  removeNodeProtocol: false,
  // `import.meta.url` becomes the file's URL in CommonJS output.
  shims: true,
});
