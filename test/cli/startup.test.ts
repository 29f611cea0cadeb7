/**
 * The CLI's start-up path (bin/kiln.js): the one-file bundle dist/kiln.cjs with its V8 code cache,
 * and the unbundled ES modules (KILN_NO_BUNDLE=1, no bundle, or a bundle older than dist/src),
 * must behave the same. Runs a private copy of bin/ and the bundle, so the repository's own
 * cache files are never touched.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, runCommand, tempDir, type CliResult } from '../helpers.js';

const bundle = path.join(repoRoot, 'dist', 'kiln.cjs');
const entry = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
let privEntry: string;

let work: { dir: string; cleanup: () => Promise<void> };
let bin: string;
let privBundle: string;
let root: string;

before(async () => {
  // `npm run build` makes the bundle; after a bare `tsc` it is missing or stale: make it here
  if (!existsSync(bundle) || statSync(entry).mtimeMs > statSync(bundle).mtimeMs) {
    const r = await runCommand(process.execPath, [path.join(repoRoot, 'scripts', 'bundle.mjs')]);
    assert.equal(r.code, 0, `scripts/bundle.mjs failed:\n${r.stdout}\n${r.stderr}`);
  }
  work = await tempDir('kiln-startup-');
  const dir = path.join(work.dir, 'kiln');
  await fs.mkdir(path.join(dir, 'dist'), { recursive: true });
  await fs.cp(path.join(repoRoot, 'bin'), path.join(dir, 'bin'), { recursive: true });
  // dist/src is copied (a tsc run elsewhere meanwhile must not make the bundle look stale), and
  // the bundle after it, so that it is the newer
  await fs.cp(path.join(repoRoot, 'dist', 'src'), path.join(dir, 'dist', 'src'), { recursive: true });
  await fs.copyFile(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
  await fs.symlink(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  privEntry = path.join(dir, 'dist', 'src', 'cli', 'main.js');
  privBundle = path.join(dir, 'dist', 'kiln.cjs');
  await fs.copyFile(bundle, privBundle);
  bin = path.join(dir, 'bin', 'kiln.js');
  root = path.join(work.dir, 'root');
});

after(async () => {
  await work?.cleanup();
});

function kiln(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCommand(process.execPath, [bin, ...args], { env: { KILN_TRACE: '', KILN_NO_BUNDLE: '', KILN_ROOT: '', ...env } });
}

/** Runs with KILN_TRACE=1: the result without trace lines, and the bin's own trace lines. */
async function traced(args: string[], env: Record<string, string> = {}): Promise<CliResult & { bin: string[] }> {
  const r = await kiln(args, { KILN_TRACE: '1', ...env });
  const lines = r.stderr.split('\n');
  const isTrace = (l: string) => /^trace +\d+ms /.test(l);
  return {
    ...r,
    stderr: lines.filter((l) => !isTrace(l)).join('\n'),
    bin: lines.filter((l) => /^trace +\d+ms bin: /.test(l)).map((l) => l.replace(/^trace +\d+ms /, '')),
  };
}

function cacheFile(command: string): string {
  return `${privBundle}.${process.version}-${process.arch}.${command}.cache`;
}

async function cacheFiles(): Promise<string[]> {
  return (await fs.readdir(path.dirname(privBundle))).filter((f) => f.endsWith('.cache')).sort();
}

const cases: Array<[string, string[]]> = [
  ['help', ['--help']],
  ['build help', ['build', '--help']],
  ['images in an empty root', ['images']],
  ['images as json', ['images', '--format', 'json']],
  ['an unknown command', ['nosuchcommand']],
  ['an unknown image', ['tag', 'nosuch:1', 'other:1']],
  ['a bad option', ['images', '--no-such-option']],
];

test('the bundled CLI and the unbundled one print the same and exit the same', async () => {
  for (const [what, args] of cases) {
    const full = ['--root', root, ...args];
    const bundled = await traced(full);
    const unbundled = await traced(full, { KILN_NO_BUNDLE: '1' });
    assert.ok(bundled.bin.some((l) => l.startsWith('bin: bundle loaded')), `${what}: the bundle was not used: ${bundled.bin.join('; ')}`);
    assert.ok(!unbundled.bin.some((l) => l.startsWith('bin: bundle loaded')), `${what}: KILN_NO_BUNDLE=1 still used the bundle`);
    assert.deepEqual(
      { code: bundled.code, stdout: bundled.stdout, stderr: bundled.stderr },
      { code: unbundled.code, stdout: unbundled.stdout, stderr: unbundled.stderr },
      what,
    );
  }
  const help = await kiln(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: kiln /);
  assert.match(help.stdout, /\bbuild \[options\] <context>/);
  const unknown = await kiln(['--root', root, 'tag', 'nosuch:1', 'other:1']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /^error: /);
  assert.doesNotMatch(unknown.stderr, /internal error|\n\s+at /);
});

test('the code cache is made by a successful run, used by the next, and only then', async () => {
  for (const f of await cacheFiles()) await fs.rm(path.join(path.dirname(privBundle), f));
  const args = ['--root', root, 'images'];
  const first = await traced(args);
  assert.equal(first.code, 0, first.stderr);
  assert.ok(first.bin.includes('bin: bundle loaded (code cache absent)'), first.bin.join('; '));
  assert.deepEqual(await cacheFiles(), [path.basename(cacheFile('images'))]);
  const second = await traced(args);
  assert.ok(second.bin.includes('bin: bundle loaded (code cache used)'), second.bin.join('; '));
  assert.deepEqual({ code: second.code, stdout: second.stdout }, { code: first.code, stdout: first.stdout });
  // a failing command (here a mistyped one) writes no cache file
  const typo = await traced(['--root', root, 'imagse']);
  assert.notEqual(typo.code, 0);
  assert.deepEqual(await cacheFiles(), [path.basename(cacheFile('images'))]);
  // another command gets its own file
  assert.equal((await traced(['--root', root, 'du'])).code, 0);
  assert.deepEqual(await cacheFiles(), [path.basename(cacheFile('du')), path.basename(cacheFile('images'))].sort());
  // help of a command gets the help file, not the command's
  assert.equal((await traced(['--root', root, 'du', '--help'])).code, 0);
  assert.deepEqual(await cacheFiles(), ['du', 'help', 'images'].map((c) => path.basename(cacheFile(c))).sort());
});

test('a damaged, foreign or unreadable code cache is not used, and is rewritten', async () => {
  const args = ['--root', root, 'images'];
  const expected = await kiln(args);
  assert.equal(expected.code, 0, expected.stderr);
  const file = cacheFile('images');
  if (!existsSync(file)) await kiln(args);
  const good = await fs.readFile(file);
  assert.ok(good.length > 1000);

  const header = 8 + 20;
  const flipped = Buffer.from(good);
  for (let i = header + 100; i < flipped.length; i += 997) flipped[i] ^= 0x5a;
  // V8's own data with a correct digest over it, but not V8's format: V8 itself rejects it
  const v8garbage = Buffer.alloc(4096, 7);
  const source = await fs.readFile(privBundle);
  const digest = createHash('sha1').update('(function (exports, require, module, __filename, __dirname) {\n').update(source).update(v8garbage).digest();
  const damaged: Array<[string, Buffer, string]> = [
    ['bytes flipped in the V8 data', flipped, 'damaged or stale'],
    ['truncated', good.subarray(0, Math.floor(good.length / 2)), 'damaged or stale'],
    ['empty', Buffer.alloc(0), 'damaged or stale'],
    ['garbage', Buffer.alloc(good.length, 0xff), 'damaged or stale'],
    ['a valid digest over data V8 does not accept', Buffer.concat([good.subarray(0, 8), digest, v8garbage]), 'rejected'],
  ];
  for (const [what, content, state] of damaged) {
    await fs.writeFile(file, content);
    const r = await traced(args);
    assert.deepEqual({ code: r.code, stdout: r.stdout, stderr: r.stderr }, { code: expected.code, stdout: expected.stdout, stderr: expected.stderr }, what);
    assert.ok(r.bin.includes(`bin: bundle loaded (code cache ${state})`), `${what}: ${r.bin.join('; ')}`);
    const rewritten = await fs.readFile(file);
    assert.notDeepEqual(rewritten, content, `${what}: not rewritten`);
    assert.ok((await traced(args)).bin.includes('bin: bundle loaded (code cache used)'), `${what}: the rewritten cache is not used`);
  }

  // a directory where the cache file should be: the CLI still runs (and cannot write a cache)
  await fs.rm(file);
  await fs.mkdir(file);
  const r = await traced(args);
  assert.deepEqual({ code: r.code, stdout: r.stdout }, { code: expected.code, stdout: expected.stdout });
  assert.ok(r.bin.includes('bin: bundle loaded (code cache absent)'), r.bin.join('; '));
  assert.deepEqual((await fs.readdir(path.dirname(file))).filter((f) => f.endsWith('.tmp')), [], 'a temp file was left behind');
  await fs.rm(file, { recursive: true });
});

test('without a current bundle the CLI loads dist/src', async () => {
  const args = ['--root', root, 'images'];
  const expected = await kiln(args);
  // older than dist/src: a `tsc` ran after the bundle was made
  const past = new Date(statSync(privEntry).mtimeMs - 60_000);
  await fs.utimes(privBundle, past, past);
  const stale = await traced(args);
  assert.ok(stale.bin.some((l) => l.includes('older than dist/src')), stale.bin.join('; '));
  assert.ok(!stale.bin.some((l) => l.startsWith('bin: bundle loaded')));
  assert.deepEqual({ code: stale.code, stdout: stale.stdout }, { code: expected.code, stdout: expected.stdout });
  // no bundle at all
  await fs.rename(privBundle, `${privBundle}.away`);
  try {
    const none = await traced(args);
    assert.deepEqual(none.bin, ['bin: start']);
    assert.deepEqual({ code: none.code, stdout: none.stdout }, { code: expected.code, stdout: expected.stdout });
  } finally {
    await fs.rename(`${privBundle}.away`, privBundle);
    const now = new Date();
    await fs.utimes(privBundle, now, now);
  }
});
