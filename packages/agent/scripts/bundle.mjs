#!/usr/bin/env node
/**
 * The agent's single-bundle build (issue 15, docs/agent-memory.md): dist/cli.js and everything it
 * imports from the workspace and node_modules, as one minified ES module (plus one chunk per
 * `await import()` that only some configs reach) in packages/agent/dist/bundle/. An idle agent
 * loaded from it holds less: ~200 module records, their source texts and scopes become a few.
 * Run after `tsc -b` (scripts/setup.sh does; bench/agent-rss.ts does before it measures).
 *
 * packages/agent/bin/agent.js runs the bundle only while it is fresh: `inputs.json` lists every
 * file bundled, and an input newer than the bundle (a later `tsc -b`, a new node_modules) makes the
 * bin run dist/cli.js instead. Behaviour is the same code's: what each file reads relative to
 * itself (`import.meta.url`: the .proto descriptors, the native addon, the worker entry) still
 * points at that file in dist/, and packages with native addons (sodium-native, raw-socket) and
 * those loaded on demand by name (ajv, prom-client, pino-pretty) stay outside the bundle.
 *
 * esbuild is a devDependency of the workspace root (the same version tsx uses); an install
 * without it (production-only) prints why and exits 0, and the bin runs dist/cli.js.
 *
 *   node packages/agent/scripts/bundle.mjs [--out DIR] [--check]   (--check: exit 1 when the bundle is stale or absent)
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = resolve(PKG, '../..');
/** Where the bundle goes: dist/bundle (what the bin runs), or `--out DIR` (tests). */
const DEFAULT_OUT = join(PKG, 'dist/bundle');
const ENTRY = join(PKG, 'dist/cli.js');
/** Packages that load a native addon from their own directory: imported from where they are installed. */
const NATIVE = /^(sodium-native|raw-socket)$/;
/**
 * Loaded by name on first use (`createRequire(import.meta.url)(name)` in config-schema.ts,
 * metrics.ts, log.ts). ajv and prom-client are bundled (as CommonJS that runs on its first
 * require); pino-pretty, only for `log.format: pretty`, is resolved at run time.
 */
const BUNDLED_ON_DEMAND = ['ajv', 'prom-client'];
const ON_DEMAND = ['pino-pretty'];

/** True when `dir` holds a bundle no older than every file it was built from. */
export function bundleFresh(dir = DEFAULT_OUT) {
  let built;
  let inputs;
  try {
    built = statSync(join(dir, 'cli.js')).mtimeMs;
    inputs = JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8'));
  } catch {
    return false;
  }
  return inputs.every((f) => {
    try {
      return statSync(resolve(dir, f)).mtimeMs <= built;
    } catch {
      return false;
    }
  });
}

function findEsbuild() {
  try {
    return createRequire(join(ROOT, 'package.json')).resolve('esbuild');
  } catch {
    return undefined; // an install without devDependencies
  }
}

async function bundle(OUT) {
  if (!existsSync(ENTRY)) throw new Error(`${relative(ROOT, ENTRY)} is missing: run tsc -b first`);
  const where = findEsbuild();
  if (!where) {
    console.log('agent bundle: esbuild not found (a devDependency); the agent runs dist/cli.js');
    return;
  }
  const { build } = await import(pathToFileURL(where).href);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const rel = (file) => {
    const r = relative(OUT, file).split('\\').join('/');
    return r.startsWith('.') ? r : `./${r}`;
  };
  const keepPaths = {
    name: 'keep-paths',
    setup(b) {
      // A file's own URL, not the bundle's: new URL('../proto/x.json', import.meta.url) and friends.
      b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/].*\.js$/ }, (a) => {
        let text = readFileSync(a.path, 'utf8');
        // Loaded on first use by name: bundled too (esbuild runs a bundled CommonJS module on its first require).
        for (const name of BUNDLED_ON_DEMAND) text = text.replaceAll(`createRequire(import.meta.url)('${name}')`, `require('${name}')`);
        if (!text.includes('import.meta.url')) return { contents: text, loader: 'js' };
        const self = `new URL(${JSON.stringify(rel(a.path))}, import.meta.url).href`;
        return { contents: text.replaceAll('import.meta.url', self), loader: 'js' };
      });
      b.onResolve({ filter: NATIVE }, (a) => ({ path: rel(createRequire(a.importer).resolve(a.path)), external: true }));
    },
  };
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [ENTRY],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    splitting: true,
    outdir: OUT,
    minify: true,
    keepNames: true,
    legalComments: 'none',
    metafile: true,
    external: ON_DEMAND,
    plugins: [keepPaths],
    // CommonJS packages inside an ES module bundle still call require() for node's built-ins.
    banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  const inputs = Object.keys(result.metafile.inputs).map((f) => rel(resolve(ROOT, f)));
  writeFileSync(join(OUT, 'inputs.json'), JSON.stringify(inputs));
  const bytes = Object.values(result.metafile.outputs).reduce((s, o) => s + o.bytes, 0);
  console.log(`agent bundle: ${inputs.length} files → ${Object.keys(result.metafile.outputs).length} in ${relative(ROOT, OUT)} (${(bytes / 1024).toFixed(0)} KiB)`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const out = at > 0 ? resolve(process.argv[at + 1]) : DEFAULT_OUT;
  if (process.argv.includes('--check')) {
    const fresh = bundleFresh(out);
    console.log(`agent bundle: ${fresh ? 'fresh' : 'stale or absent'}`);
    process.exitCode = fresh ? 0 : 1;
  } else {
    await bundle(out);
  }
}
