#!/usr/bin/env node
/* global performance, URL, Buffer */
// More threads for file I/O: builds stat, read and copy many files at once. Must be set
// before the first asynchronous file operation, so the CLI is loaded afterwards.
// (ES imports are evaluated first, whatever their place: the only one is a builtin.)
import { createRequire } from 'node:module';
process.env.UV_THREADPOOL_SIZE ??= '16';
if (process.env.KILN_TRACE) process.stderr.write(`trace ${performance.now().toFixed(0).padStart(6)}ms bin: start\n`);

const trace = (message) => {
  if (process.env.KILN_TRACE) process.stderr.write(`trace ${performance.now().toFixed(0).padStart(6)}ms ${message}\n`);
};
// Builtins through require: cheaper than ES imports of them (no ESM facade per module).
const require = createRequire(import.meta.url);
const { closeSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } = require('node:fs');
const { fileURLToPath } = require('node:url');

/*
 * Start-up: `npm run build` bundles the CLI into one CommonJS file, dist/kiln.cjs (see
 * scripts/bundle.mjs); loading it is much faster than resolving and loading ~60 ES modules.
 * It is compiled with a V8 code cache kept beside it, per Node version, architecture and command.
 * Without the bundle (or with KILN_NO_BUNDLE=1, or when tsc ran after the bundle was made) the
 * compiled ES modules under dist/src are loaded as before.
 */
const bundlePath = fileURLToPath(new URL('../dist/kiln.cjs', import.meta.url));
const entryPath = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const noBundle = Boolean(process.env.KILN_NO_BUNDLE) && process.env.KILN_NO_BUNDLE !== '0';

// Bump CACHE_MAGIC when the layout of the cache file changes. The cache file is
// CACHE_MAGIC, then sha1(wrapper + bundle + V8 data), then the V8 data: a different bundle or a
// damaged file never reaches V8 (which checks only the source length and its own version).
const CACHE_MAGIC = Buffer.from('kilncc1\n');
const HEADER = CACHE_MAGIC.length + 20;
const WRAP_HEAD = '(function (exports, require, module, __filename, __dirname) {\n';
const WRAP_TAIL = '\n})';

function cacheDigest(source, data) {
  // node:crypto is not loaded at start-up, but the CLI loads it anyway (image and blob digests)
  const { createHash } = require('node:crypto');
  return createHash('sha1').update(WRAP_HEAD).update(source).update(data).digest();
}

/**
 * The command word of argv (the one the CLI loads), for the cache file's name. Help gets its
 * own: a cache made by `kiln build --help` would hold little of what `kiln build` runs.
 */
function commandWord(argv) {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--root') i++;
    else if (!argv[i].startsWith('-')) return /^[a-z]+$/.test(argv[i]) ? argv[i] : 'other';
  }
  return 'other';
}

/** Runs dist/kiln.cjs; undefined when there is no (current) bundle. */
function loadBundle() {
  const bundle = statSync(bundlePath, { throwIfNoEntry: false });
  if (!bundle) return undefined;
  const entry = statSync(entryPath, { throwIfNoEntry: false });
  if (entry && entry.mtimeMs > bundle.mtimeMs) {
    trace('bin: dist/kiln.cjs is older than dist/src (tsc without the bundle step), not used');
    return undefined;
  }
  // scripts/bundle.mjs makes it ASCII, which decodes fastest as latin1
  const source = readFileSync(bundlePath);
  const { isAscii } = require('node:buffer');
  const code = WRAP_HEAD + (isAscii(source) ? source.latin1Slice() : source.utf8Slice()) + WRAP_TAIL;
  const cachePath = `${bundlePath}.${process.version}-${process.arch}.${commandWord(process.argv.slice(2))}.cache`;
  let cachedData;
  let state = 'absent';
  try {
    const file = readFileSync(cachePath);
    const data = file.subarray(HEADER);
    const digest = file.subarray(CACHE_MAGIC.length, HEADER);
    if (file.subarray(0, CACHE_MAGIC.length).equals(CACHE_MAGIC) && cacheDigest(source, data).equals(digest)) cachedData = data;
    else state = 'damaged or stale';
  } catch {
    // no cache yet
  }
  const { Script } = require('node:vm');
  const script = new Script(code, { filename: bundlePath, lineOffset: -1, cachedData });
  if (cachedData) state = script.cachedDataRejected ? 'rejected' : 'used';
  const module = { exports: {}, id: bundlePath, filename: bundlePath, loaded: false };
  script.runInThisContext().call(module.exports, module.exports, createRequire(bundlePath), module, bundlePath, require('node:path').dirname(bundlePath));
  module.loaded = true;
  trace(`bin: bundle loaded (code cache ${state})`);
  return {
    main: module.exports.main,
    /**
     * Writes a fresh code cache, after a successful command (it then holds the functions that
     * command compiled; a mistyped command word makes no file).
     */
    saveCache() {
      if (state === 'used') return;
      const tmp = `${cachePath}.${process.pid}.tmp`;
      let fd;
      try {
        fd = openSync(tmp, 'w'); // first, so that a read-only install does not make the data for nothing
        const data = script.createCachedData();
        writeFileSync(fd, Buffer.concat([CACHE_MAGIC, cacheDigest(source, data), data]));
        closeSync(fd);
        fd = undefined;
        renameSync(tmp, cachePath);
      } catch {
        // read-only install, full disk...: the next run goes without a cache too
        try {
          if (fd !== undefined) closeSync(fd);
          unlinkSync(tmp);
        } catch {
          // not created
        }
      }
    },
  };
}

function internalError(err) {
  process.stderr.write(`error: internal error: ${err?.message ?? err}\n`);
  process.exit(70);
}

let bundled;
let main;
try {
  bundled = noBundle ? undefined : loadBundle();
  main = bundled?.main ?? (await import('../dist/src/cli/main.js')).main;
} catch (err) {
  internalError(err);
}

main(process.argv.slice(2)).then((code) => {
  if (code === 0) bundled?.saveCache();
  process.exit(code);
}, internalError);
