// Bundles the compiled CLI (dist/src/cli/main.js and everything it imports, node_modules
// included) into one CommonJS file, dist/kiln.cjs, which bin/kiln.js loads with a V8 code cache.
// One file instead of ~60 ES modules saves most of the start-up time (ESM resolve + load).
// Run by `npm run build` after tsc. Usage: node scripts/bundle.mjs [--metafile FILE]
import { build } from 'esbuild';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.join(root, 'dist', 'src', 'cli', 'main.js');
const outfile = path.join(root, 'dist', 'kiln.cjs');

const metaArg = process.argv.indexOf('--metafile');
const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // main.js lazily import()s each command module: in one CJS file these stay lazy (the module
  // is initialised on first use), only parsing is shared.
  splitting: false,
  // Whitespace and syntax only: names stay as written (error names, class names, stack traces).
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  // import.meta does not exist in CJS: src/oci/schema.ts finds the repo root from its own URL.
  // From dist/kiln.cjs the nearest package.json above is still the repo root.
  define: { 'import.meta.url': '__kilnImportMetaUrl' },
  // ("use strict" first: the sources are ES modules, strict; a banner before esbuild's own
  // directive would otherwise turn the whole bundle into sloppy-mode code)
  banner: { js: '"use strict";var __kilnImportMetaUrl=require("node:url").pathToFileURL(__filename).href;' },
  plugins: [builtinDynamicImport(), lazyCommanderChildProcess()],
  // @cyclonedx/cyclonedx-library's optional plugins (XML output and validation), which it
  // require()s inside try/catch only when asked for them; kiln writes JSON and never asks
  external: ['xmlbuilder2', 'libxmljs2', 'ajv-formats-draft2019'],
  metafile: true,
  logLevel: 'warning',
});

// The bundle runs inside vm.Script (bin/kiln.js), where an import() that esbuild left in place
// (an external module) would fail at run time: refuse to produce such a bundle.
let code = readFileSync(outfile, 'utf8');
const leftover = code.match(/\bimport\s*\([^)]{0,60}/);
if (leftover) {
  rmSync(outfile, { force: true });
  console.error(`bundle: dist/kiln.cjs would keep a dynamic ${leftover[0]}...; not written`);
  process.exit(1);
}
// bin/kiln.js decodes an ASCII bundle faster (latin1). esbuild escapes non-ASCII characters
// except in regular expression literals (e.g. /µs/): escape those as \uXXXX UTF-16 code units,
// which a regex reads as the same characters, with or without the u flag.
if (/[^\x00-\x7f]/.test(code)) {
  code = code.replace(/(\\?)([^\x00-\x7f])/g, (m, backslash, c) => {
    if (backslash) throw new Error(`bundle: cannot escape ${JSON.stringify(m)} in dist/kiln.cjs`);
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  writeFileSync(outfile, code);
}
// a code cache made for an earlier bundle is useless now (bin/kiln.js would also reject it)
for (const name of readdirSafe(path.dirname(outfile))) {
  if (name.startsWith('kiln.cjs.') && name.endsWith('.cache')) rmSync(path.join(path.dirname(outfile), name), { force: true });
}
if (metaArg > 0) writeFileSync(process.argv[metaArg + 1], JSON.stringify(result.metafile, null, 1));
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`bundle: dist/kiln.cjs (${inputs} modules, ${(code.length / 1024).toFixed(0)} KiB)`);

/**
 * `await import('node:crypto')` of a builtin would stay an import() in CJS output, which
 * vm.Script cannot run: serve it from a tiny in-bundle CJS module that requires the builtin
 * (esbuild wraps it with __toESM, so named exports and default both work as before).
 */
function builtinDynamicImport() {
  return {
    name: 'builtin-dynamic-import',
    setup(b) {
      b.onResolve({ filter: /^[\w:/]+$/ }, (args) =>
        args.kind === 'dynamic-import' && isBuiltin(args.path) ? { path: args.path, namespace: 'kiln-builtin' } : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: 'kiln-builtin' }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(args.path)});`,
        loader: 'js',
      }));
    },
  };
}

/**
 * commander requires node:child_process at load time (~5 ms: it pulls in net, dgram, ...) only
 * to spawn executable subcommands, which kiln does not use: load it on first use instead, so
 * commands that run no process (images, tag, inspect...) never load it.
 */
function lazyCommanderChildProcess() {
  const eager = "const childProcess = require('node:child_process');";
  const lazy = "const childProcess = { get spawn() { return require('node:child_process').spawn; } };";
  return {
    name: 'lazy-commander-child-process',
    setup(b) {
      b.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        const uses = text.match(/childProcess\.\w+/g) ?? [];
        if (!text.includes(eager) || uses.some((u) => u !== 'childProcess.spawn')) {
          return { contents: text, loader: 'js', warnings: [{ text: 'commander changed: its child_process is loaded eagerly again' }] };
        }
        return { contents: text.replace(eager, lazy), loader: 'js' };
      });
    },
  };
}

function readdirSafe(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
