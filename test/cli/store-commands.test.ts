import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { have, mustRun, tempDir } from '../oci/util.js';

// dist/test/cli/ → repo root
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const kilnBin = path.join(repo, 'bin', 'kiln.js');

function kiln(root: string, args: string[], input?: Buffer): { status: number; stdout: string; stderr: string; raw: Buffer } {
  const r = spawnSync(process.execPath, [kilnBin, '--root', root, ...args], { input, maxBuffer: 1 << 28, env: { ...process.env, KILN_ROOT: '' } });
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), raw: r.stdout };
}

function ok(root: string, args: string[], input?: Buffer): string {
  const r = kiln(root, args, input);
  assert.equal(r.status, 0, `kiln ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('import, images, tag, inspect, save, load, rmi and prune from the command line', async (t) => {
  if (!existsSync('/bin/busybox')) return t.skip('busybox-static not installed (/bin/busybox)');
  const work = tempDir(t);
  const root = path.join(work, 'root');
  const rootfs = path.join(work, 'rootfs');
  mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
  symlinkSync('busybox', path.join(rootfs, 'bin', 'sh'));
  const tarFile = path.join(work, 'rootfs.tar.gz');
  mustRun('tar', ['-czf', tarFile, '-C', rootfs, '.']);

  const digest = ok(root, ['import', tarFile, 'bb:1', '-c', 'CMD ["sh"]', '--change', 'ENV X=1']).trim();
  assert.match(digest, /^sha256:[a-f0-9]{64}$/);
  ok(root, ['tag', 'bb:1', 'localhost:5000/team/bb']);

  const table = ok(root, ['images']).split('\n');
  assert.match(table[0], /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$/);
  const id = digest.slice(7, 19);
  assert.ok(table.some((l) => new RegExp(`^bb +1 +${id} +(Less than a second|\\d+ seconds?) ago +[\\d.]+MB$`).test(l)), table.join('\n'));
  assert.ok(table.some((l) => new RegExp(`^localhost:5000/team/bb +latest +${id} `).test(l)), table.join('\n'));
  assert.equal(ok(root, ['images', '-q']), `${id}\n`);
  const json = ok(root, ['images', '--format', 'json']).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(json.length, 2);
  assert.equal(json[0].FullID, digest);
  assert.match(json[0].Digest, /^sha256:[a-f0-9]{64}$/);
  const manifestDigest = json[0].Digest as string;
  assert.equal(ok(root, ['images', 'localhost:5000/team/bb']).trim().split('\n').length, 2);

  const inspect = JSON.parse(ok(root, ['inspect', 'localhost:5000/team/bb']));
  assert.equal(inspect.manifest.config.digest, digest);
  assert.equal(inspect.digest, json[0].Digest);
  assert.deepEqual(inspect.config.config.Cmd, ['sh']);
  assert.deepEqual(inspect.config.config.Env, ['X=1']);
  assert.equal(inspect.manifest.layers.length, 1);

  const dockerTar = path.join(work, 'bb.tar');
  const ociTar = path.join(work, 'bb-oci.tar');
  ok(root, ['save', '-o', dockerTar, 'bb:1']);
  ok(root, ['save', '--format', 'oci', '-o', ociTar, 'bb:1', 'localhost:5000/team/bb']);
  const piped = kiln(root, ['save', 'bb:1']);
  assert.equal(piped.status, 0, piped.stderr);
  assert.ok(piped.raw.length > 1_000_000);
  if (have('skopeo')) {
    assert.equal(JSON.parse(mustRun('skopeo', ['inspect', `oci-archive:${ociTar}:localhost:5000/team/bb:latest`])).Digest, manifestDigest);
    assert.equal(JSON.parse(mustRun('skopeo', ['inspect', `docker-archive:${dockerTar}`])).Layers.length, 1);
  }

  const root2 = path.join(work, 'root2');
  assert.equal(ok(root2, ['load', '-i', dockerTar]), 'Loaded image: bb:1\n');
  assert.equal(ok(root2, ['load'], piped.raw), 'Loaded image: bb:1\n');
  assert.equal(ok(root2, ['load', '-i', ociTar]), 'Loaded image: bb:1\nLoaded image: localhost:5000/team/bb:latest\n');
  assert.equal(JSON.parse(ok(root2, ['inspect', 'bb:1'])).digest, manifestDigest);

  // rmi removes names only; prune then frees the blobs
  const blobs = () => readdirSync(path.join(root, 'blobs', 'sha256')).length;
  assert.equal(blobs(), 3);
  assert.equal(ok(root, ['rmi', 'bb:1']), 'Untagged: bb:1\n');
  assert.match(ok(root, ['prune']), /^Deleted 0 blobs\n/);
  assert.equal(blobs(), 3);
  assert.equal(ok(root, ['rmi', id]), 'Untagged: localhost:5000/team/bb:latest\n');
  const pruned = ok(root, ['prune']);
  assert.match(pruned, /^Deleted 3 blobs\nTotal reclaimed space: [\d.]+MB\n$/);
  assert.equal(blobs(), 0);
  assert.equal(ok(root, ['images', '-q']), '');
});

test('user errors are one line with a hint, not a stack trace', (t) => {
  const root = path.join(tempDir(t), 'root');
  const cases: [string[], RegExp][] = [
    [['inspect', 'nope:1'], /^error: image nope:1 not found in the store; build it, or kiln load\/import it\nhint: /],
    [['tag', 'nope', 'x'], /^error: image nope not found/],
    [['tag', 'nope', 'Bad'], /^error: invalid image name "Bad": repository names must be lowercase/],
    [['rmi', 'nope'], /^error: no such image: nope/],
    [['save', '-o', path.join(root, 'x.tar'), 'nope'], /^error: image nope:latest not found/],
    [['save', '--format', 'zip', '-o', 'x', 'nope'], /^error: unknown --format "zip"/],
    [['load', '-i', path.join(root, 'missing.tar')], /^error: cannot read /],
    [['import', path.join(root, 'missing.tar'), 'x'], /^error: cannot import /],
  ];
  for (const [args, re] of cases) {
    const r = kiln(root, args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.ok(!/\n\s+at /.test(r.stderr), `no stack trace for ${args.join(' ')}`);
  }
});

test('kiln --version prints the version in package.json', () => {
  const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = spawnSync(process.execPath, [kilnBin, flag]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString().trim(), pkg.version);
  }
});
