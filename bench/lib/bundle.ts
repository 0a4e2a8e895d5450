/**
 * One-file ESM bundle of a TypeScript entry, for benches that start many processes
 * (bench/propagation.ts: 50 agents). Under tsx each process compiles and loads the workspace
 * sources itself (about 2 s of CPU per agent start here, so 50 starts on 2 shared cores took more
 * than 10 minutes); the bundle is built once and loaded by plain `node`. It also freezes the code:
 * every process of the run executes the same sources, whatever changes in the tree meanwhile.
 *
 * Workspace packages (`source` condition) are bundled. npm packages stay external, imported by
 * the absolute path they resolve to from the importing file. `import.meta.url` is replaced by each
 * source file's own URL, so what is found relative to it (proto descriptors, the native addon,
 * createRequire'd optional packages) resolves exactly as under tsx.
 */
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const builtins = new Set(builtinModules);
const OWN = Symbol('bundle.resolve');

/** Bundle `entry` (a .ts file) into `outfile` (.mjs); resolves with the time it took. */
export async function bundleEntry(entry: string, outfile: string): Promise<number> {
  const t = performance.now();
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    logLevel: 'error',
    plugins: [
      {
        name: 'bench-bundle',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, async (a) => {
            if (a.pluginData === OWN || a.path.startsWith('@overlay/') || a.path.startsWith('node:') || builtins.has(a.path.split('/')[0])) return undefined;
            const r = await b.resolve(a.path, { kind: a.kind, resolveDir: a.resolveDir, pluginData: OWN });
            return r.errors.length ? { errors: r.errors } : { path: r.path, external: true };
          });
          b.onLoad({ filter: /\.ts$/ }, (a) => ({
            contents: readFileSync(a.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(a.path).href)),
            loader: 'ts',
          }));
        },
      },
    ],
  });
  return performance.now() - t;
}
