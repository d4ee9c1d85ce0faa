// A bench script as one plain JavaScript file, for a child whose memory is measured: run without tsx (whose loader
// thread adds about 30 MB of RSS), from the current sources rather than a dist/ that may be stale.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Inside the repository, so the bundle's imports resolve from its node_modules as the sources' do. */
const outDir = join(root, 'node_modules', '.cache', 'tidings-bench');

/**
 * Bundles `bench/<script>` with the @tidings/* sources it imports (the `@tidings/source` condition); every other
 * package stays an import. Returns the path of the ES module written.
 */
export async function bundle(script: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, script.replace(/\.ts$/, '.mjs'));
  await build({
    entryPoints: [join(root, 'bench', script)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['@tidings/source'],
    logLevel: 'error',
    plugins: [
      {
        name: 'packages-outside',
        setup(b) {
          // Bare imports other than @tidings/* stay imports, resolved by Node at run time.
          b.onResolve({ filter: /^[^./]/ }, (a) => (a.path.startsWith('@tidings/') ? undefined : { path: a.path, external: true }));
        },
      },
    ],
  });
  return outfile;
}
