import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Snapshotter } from '../../src/snapshot/index.js';
import { KilnError } from '../../src/errors.js';
import { chunked, diffIdOf, makeTar, type TarSpec } from './tarutil.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (overlayfs, mknod, trusted.* xattrs)';

async function tmpRoot(name: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `kiln-snap-${name}-`));
}

function xattr(p: string, name: string): string | undefined {
  try {
    return execFileSync('getfattr', ['-h', '--only-values', '-n', name, p], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return undefined;
  }
}

function mounted(p: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === p);
}

const layer1: TarSpec[] = [
  { name: 'bin/', type: 'directory', mtime: 1600000000 },
  { name: 'bin/sh', content: '#!sh\n', mode: 0o4755, uid: 1000, gid: 1001, mtime: 1600000001 },
  { name: 'bin/ash', type: 'link', linkname: 'bin/sh' },
  { name: 'bin/ls', type: 'symlink', linkname: 'sh', uid: 5, gid: 6 },
  { name: 'dev/', type: 'directory' },
  { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
  { name: 'run/fifo', type: 'fifo', mode: 0o600 },
  { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', pax: { 'SCHILY.xattr.user.kiln': 'yes' } },
  { name: 'opt/', type: 'directory', mode: 0o750 },
  { name: 'opt/a', content: 'a' },
  { name: 'opt/b', content: 'b' },
  { name: 'keep/', type: 'directory' },
  { name: 'keep/x', content: 'x' },
  { name: 'gone.txt', content: 'bye' },
];

const layer2: TarSpec[] = [
  { name: '.wh.gone.txt', content: '' },
  { name: 'opt/', type: 'directory', mode: 0o755 },
  { name: 'opt/.wh..wh..opq', content: '' },
  { name: 'opt/c', content: 'c' },
  { name: 'etc/', type: 'directory' },
  { name: 'etc/new', content: 'new' },
];

test('unpackLayer extracts metadata, links, devices and whiteouts in overlay form', { skip }, async () => {
  const root = await tmpRoot('unpack');
  const snap = new Snapshotter(root);
  const t1 = await makeTar(layer1);
  const id1 = diffIdOf(t1);
  const dir1 = await snap.unpackLayer(id1, chunked(t1, 700));
  assert.equal(dir1, snap.layerDir(id1));
  assert.equal(dir1, path.join(root, 'snapshots', 'layers', id1.slice(7), 'fs'));

  const sh = await fsp.lstat(path.join(dir1, 'bin/sh'));
  assert.equal(sh.mode & 0o7777, 0o4755, 'setuid kept after chown');
  assert.equal(sh.uid, 1000);
  assert.equal(sh.gid, 1001);
  assert.equal(Math.floor(sh.mtimeMs / 1000), 1600000001);
  const ash = await fsp.lstat(path.join(dir1, 'bin/ash'));
  assert.equal(ash.ino, sh.ino, 'hard link shares the inode');
  const ls = await fsp.lstat(path.join(dir1, 'bin/ls'));
  assert.ok(ls.isSymbolicLink());
  assert.equal(await fsp.readlink(path.join(dir1, 'bin/ls')), 'sh');
  assert.equal(ls.uid, 5);
  const bin = await fsp.lstat(path.join(dir1, 'bin'));
  assert.equal(Math.floor(bin.mtimeMs / 1000), 1600000000, 'directory mtime set after its children');
  const devnull = await fsp.lstat(path.join(dir1, 'dev/null'));
  assert.ok(devnull.isCharacterDevice());
  assert.equal(devnull.rdev, (1 << 8) | 3);
  assert.equal(devnull.mode & 0o7777, 0o666);
  assert.ok((await fsp.lstat(path.join(dir1, 'dev/sda'))).isBlockDevice());
  assert.ok((await fsp.lstat(path.join(dir1, 'run/fifo'))).isFIFO());
  assert.equal(xattr(path.join(dir1, 'etc/passwd'), 'user.kiln'), 'yes');
  assert.equal((await fsp.lstat(path.join(dir1, 'opt'))).mode & 0o7777, 0o750);

  // gzip is detected by magic; the diff ID is checked against the uncompressed bytes
  const t2 = await makeTar(layer2);
  const id2 = diffIdOf(t2);
  const dir2 = await snap.unpackLayer(id2, chunked(gzipSync(t2), 100));
  const wh = await fsp.lstat(path.join(dir2, 'gone.txt'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout is a 0/0 char device');
  assert.equal(xattr(path.join(dir2, 'opt'), 'trusted.overlay.opaque'), 'y');
  await assert.rejects(fsp.lstat(path.join(dir2, 'opt/.wh..wh..opq')));
  assert.equal(await fsp.readFile(path.join(dir2, 'opt/c'), 'utf8'), 'c');

  // idempotent: a second unpack does not read the stream
  let called = false;
  const again = await snap.unpackLayer(id2, () => {
    called = true;
    return chunked(t2)();
  });
  assert.equal(again, dir2);
  assert.equal(called, false);
  const leftovers = (await fsp.readdir(path.join(root, 'snapshots', 'layers'))).filter((n) => n.startsWith('.tmp'));
  assert.deepEqual(leftovers, []);
  await fsp.rm(root, { recursive: true, force: true });
});

test('concurrent unpacks of one layer agree and leave no temp dirs', { skip }, async () => {
  const root = await tmpRoot('concurrent');
  const t = await makeTar(layer1);
  const id = diffIdOf(t);
  const a = new Snapshotter(root);
  const b = new Snapshotter(root);
  const dirs = await Promise.all([a.unpackLayer(id, chunked(t, 512)), b.unpackLayer(id, chunked(t, 300)), a.unpackLayer(id, chunked(t))]);
  assert.ok(dirs.every((d) => d === a.layerDir(id)));
  assert.equal(await fsp.readFile(path.join(dirs[0], 'opt/a'), 'utf8'), 'a');
  const names = await fsp.readdir(path.join(root, 'snapshots', 'layers'));
  assert.deepEqual(names, [id.slice(7)]);
  await fsp.rm(root, { recursive: true, force: true });
});

test('unpackLayer refuses path traversal and a wrong diff ID', { skip }, async () => {
  const root = await tmpRoot('evil');
  const snap = new Snapshotter(root);
  const dotdot = await makeTar([{ name: '../evil', content: 'x' }]);
  await assert.rejects(snap.unpackLayer(diffIdOf(dotdot), chunked(dotdot)), (e: unknown) => e instanceof KilnError && /\.\./.test(e.message));
  const viaLink = await makeTar([
    { name: 'escape', type: 'symlink', linkname: root },
    { name: 'escape/pwned', content: 'x' },
  ]);
  await assert.rejects(snap.unpackLayer(diffIdOf(viaLink), chunked(viaLink)), (e: unknown) => e instanceof KilnError && /symlink/.test(e.message));
  await assert.rejects(fsp.lstat(path.join(root, 'pwned')));
  const linkOut = await makeTar([{ name: 'h', type: 'link', linkname: '../../etc/passwd' }]);
  await assert.rejects(snap.unpackLayer(diffIdOf(linkOut), chunked(linkOut)), KilnError);
  const ok = await makeTar([{ name: 'f', content: 'x' }]);
  await assert.rejects(
    snap.unpackLayer(diffIdOf(Buffer.from('other')), chunked(ok)),
    (e: unknown) => e instanceof KilnError && /digest/.test(e.message),
  );
  const garbage = Buffer.from('\x1f\x8bnot really gzip at all');
  await assert.rejects(snap.unpackLayer(diffIdOf(garbage), chunked(garbage)), KilnError);
  // nothing half-written is left behind
  const names = await fsp.readdir(path.join(root, 'snapshots', 'layers'));
  assert.deepEqual(names, []);
  await fsp.rm(root, { recursive: true, force: true });
});

test('stacked mount applies whiteouts/opaque dirs; diff of the upper dir', { skip }, async () => {
  const root = await tmpRoot('mount');
  const snap = new Snapshotter(root);
  const t1 = await makeTar(layer1);
  const t2 = await makeTar(layer2);
  const l1 = await snap.unpackLayer(diffIdOf(t1), chunked(t1));
  const l2 = await snap.unpackLayer(diffIdOf(t2), chunked(t2));
  const m = await snap.mount([l1, l2]);
  try {
    assert.ok(mounted(m.merged));
    assert.ok(m.merged.startsWith(path.join(root, 'snapshots', 'active')));
    const merged = (p: string) => path.join(m.merged, p);
    await assert.rejects(fsp.lstat(merged('gone.txt')), 'whiteout hides the lower file');
    assert.deepEqual((await fsp.readdir(merged('opt'))).sort(), ['c'], 'opaque dir hides lower contents');
    assert.deepEqual((await fsp.readdir(merged('etc'))).sort(), ['new', 'passwd']);
    assert.equal(await fsp.readFile(merged('keep/x'), 'utf8'), 'x');

    // changes in the merged view
    const newPasswd = 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n';
    await fsp.writeFile(merged('etc/passwd'), newPasswd);
    await fsp.unlink(merged('bin/ls'));
    await fsp.rm(merged('keep'), { recursive: true });
    await fsp.mkdir(merged('keep'));
    await fsp.writeFile(merged('keep/y'), 'y');
    await fsp.writeFile(merged('new1'), 'n');
    await fsp.link(merged('new1'), merged('new2'));
    await fsp.symlink('new1', merged('new-link'));
    await fsp.mkdir(merged('a-dir'));
    await fsp.writeFile(merged('a-dir/f'), '');
    await fsp.writeFile(merged('a.txt'), '');
    execFileSync('mkfifo', [merged('pipe')]);

    const entries = await snap.diff(m.upper);
    const summary = entries.map((e) => `${e.type} ${e.path}${e.linkname ? ' -> ' + e.linkname : ''}`);
    assert.deepEqual(summary, [
      'directory a-dir',
      'file a-dir/f',
      'file a.txt',
      'directory bin',
      'file bin/.wh.ls',
      'directory etc',
      'file etc/passwd',
      'directory keep',
      'file keep/.wh..wh..opq',
      'file keep/y',
      'symlink new-link -> new1',
      'file new1',
      'hardlink new2 -> new1',
      'fifo pipe',
    ]);
    const passwd = entries.find((e) => e.path === 'etc/passwd');
    assert.ok(passwd?.sourcePath);
    assert.match(await fsp.readFile(passwd.sourcePath, 'utf8'), /app:x:1000/);
    assert.equal(passwd.size, Buffer.byteLength(newPasswd));
    const wh = entries.find((e) => e.path === 'bin/.wh.ls');
    assert.equal(wh?.size, 0);
    assert.deepEqual(wh?.content, Buffer.alloc(0));
    // overlay's own xattrs (uuid, origin, opaque) never leak into entries
    assert.ok(entries.every((e) => !Object.keys(e.xattrs ?? {}).some((k) => k.startsWith('trusted.overlay.'))));
  } finally {
    await m.release();
  }
  assert.ok(!mounted(m.merged), 'unmounted');
  await assert.rejects(fsp.lstat(path.dirname(m.merged)), 'mount dir removed');
  // the layers are untouched by the writes above
  assert.equal(await fsp.readlink(path.join(l1, 'bin/ls')), 'sh');
  await fsp.rm(root, { recursive: true, force: true });
});

test('diff reports xattrs, devices and whiteouts sorted where the name sorts', { skip }, async () => {
  const root = await tmpRoot('diff');
  const snap = new Snapshotter(root);
  const base = await makeTar([
    { name: 'b', content: 'b' },
    { name: 'b0', content: 'b0' },
  ]);
  const m = await snap.mount([await snap.unpackLayer(diffIdOf(base), chunked(base))]);
  try {
    await fsp.unlink(path.join(m.merged, 'b'));
    await fsp.writeFile(path.join(m.merged, 'a'), 'a');
    await fsp.writeFile(path.join(m.merged, 'c'), 'c');
    execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', path.join(m.merged, 'c')]);
    execFileSync('mknod', [path.join(m.merged, 'zero'), 'c', '1', '5']);
    const entries = await snap.diff(m.upper);
    assert.deepEqual(
      entries.map((e) => e.path),
      ['a', '.wh.b', 'c', 'zero'],
    );
    assert.deepEqual(entries[2].xattrs, { 'user.note': Buffer.from('hello') });
    assert.equal(entries[3].type, 'char');
    assert.equal(entries[3].devmajor, 1);
    assert.equal(entries[3].devminor, 5);
  } finally {
    await m.release();
  }
  await fsp.rm(root, { recursive: true, force: true });
});

test('60 layers mount under a long root path; readonly and empty mounts', { skip }, async () => {
  const root = await tmpRoot('many-' + 'x'.repeat(120));
  const snap = new Snapshotter(root);
  const lowers: string[] = [];
  for (let i = 0; i < 60; i++) {
    const t = await makeTar([
      { name: `f${i}`, content: String(i) },
      { name: 'top', content: String(i) },
    ]);
    lowers.push(await snap.unpackLayer(diffIdOf(t), chunked(t)));
  }
  assert.ok(lowers.join(':').length > 4096, 'plain paths would not fit in one page');
  const m = await snap.mount(lowers);
  try {
    const names = await fsp.readdir(m.merged);
    assert.equal(names.length, 61);
    assert.equal(await fsp.readFile(path.join(m.merged, 'top'), 'utf8'), '59', 'last layer is topmost');
    assert.equal(await fsp.readFile(path.join(m.merged, 'f0'), 'utf8'), '0');
  } finally {
    await m.release();
  }
  assert.ok(!mounted(m.merged));

  const ro = await snap.mount([lowers[0]], { readonly: true });
  try {
    assert.equal(await fsp.readFile(path.join(ro.merged, 'f0'), 'utf8'), '0');
    await assert.rejects(fsp.writeFile(path.join(ro.merged, 'new'), 'x'), /EROFS/);
  } finally {
    await ro.release();
  }
  const empty = await snap.mount([]);
  try {
    assert.deepEqual(await fsp.readdir(empty.merged), []);
    await fsp.writeFile(path.join(empty.merged, 'x'), 'x');
    assert.deepEqual((await snap.diff(empty.upper)).map((e) => e.path), ['x']);
  } finally {
    await empty.release();
  }
  assert.deepEqual(await fsp.readdir(path.join(root, 'snapshots', 'active')), []);
  await fsp.rm(root, { recursive: true, force: true });
});

test('cleanupStale unmounts and removes mounts of dead processes only', { skip }, async () => {
  const root = await tmpRoot('stale');
  const snap = new Snapshotter(root);
  const dead = await snap.mount([]);
  const live = await snap.mount([]);
  // a pid that cannot exist (above pid_max)
  await fsp.writeFile(path.join(path.dirname(dead.merged), 'owner'), '99999999 1');
  await snap.cleanupStale();
  assert.ok(!mounted(dead.merged));
  await assert.rejects(fsp.lstat(path.dirname(dead.merged)));
  assert.ok(mounted(live.merged), 'our own mount stays');
  await live.release();
  await dead.release(); // already gone: must not throw
  await fsp.rm(root, { recursive: true, force: true });
});

test('repeated lower dirs mount: the topmost occurrence is kept, with the same merged view', { skip }, async () => {
  const root = await tmpRoot('repeat');
  const snap = new Snapshotter(root);
  const a = await snap.unpackLayer(diffIdOf(await makeTar([{ name: 'f', content: 'a' }, { name: 'only-a', content: 'a' }])), chunked(await makeTar([{ name: 'f', content: 'a' }, { name: 'only-a', content: 'a' }])));
  const bTar = await makeTar([{ name: 'f', content: 'b' }]);
  const b = await snap.unpackLayer(diffIdOf(bTar), chunked(bTar));
  const emptyTar = await makeTar([]);
  const empty = await snap.unpackLayer(diffIdOf(emptyTar), chunked(emptyTar));
  // a, empty, b, empty, a: overlayfs alone refuses this (EINVAL)
  const m = await snap.mount([a, empty, b, empty, a]);
  try {
    // a on top again: its f shadows b's
    assert.equal(readFileSync(path.join(m.merged, 'f'), 'utf8'), 'a');
    assert.equal(readFileSync(path.join(m.merged, 'only-a'), 'utf8'), 'a');
  } finally {
    await m.release();
  }
  const ro = await snap.mount([empty, empty], { readonly: true });
  assert.deepEqual(await fsp.readdir(ro.merged), []);
  await ro.release();
  await fsp.rm(root, { recursive: true, force: true });
});

test('cleanupStale also unmounts the secrets tmpfs of a dead step', { skip }, async () => {
  const root = await tmpRoot('stale-secrets');
  const snap = new Snapshotter(root);
  const dead = await snap.mount([]);
  const { mountSecrets } = await import('../../src/exec/secrets.js');
  const sec = await mountSecrets(dead.dir!, [{ data: Buffer.from('value'), uid: 0, gid: 0, mode: 0o400 }]);
  assert.ok(mounted(sec.dir));
  await fsp.writeFile(path.join(dead.dir!, 'owner'), '99999999 1');
  await snap.cleanupStale();
  assert.ok(!mounted(sec.dir), 'the secrets tmpfs is unmounted');
  assert.ok(!mounted(dead.merged));
  await assert.rejects(fsp.lstat(dead.dir!));
  await fsp.rm(root, { recursive: true, force: true });
});

test('diff drops directories copied up unchanged, keeps those hidden below an opaque one', { skip }, async () => {
  const root = await tmpRoot('unchanged');
  const snap = new Snapshotter(root);
  const l0Tar = await makeTar([
    { name: 'etc', type: 'directory' },
    { name: 'etc/passwd', content: 'root' },
    { name: 'a', type: 'directory' },
    { name: 'a/b', type: 'directory' },
    { name: 'keep', type: 'directory', mode: 0o700 },
  ]);
  const l1Tar = await makeTar([
    { name: 'a', type: 'directory' },
    { name: 'a/.wh..wh..opq' },
  ]);
  const l0 = await snap.unpackLayer(diffIdOf(l0Tar), chunked(l0Tar));
  const l1 = await snap.unpackLayer(diffIdOf(l1Tar), chunked(l1Tar));
  const m = await snap.mount([l0, l1]);
  try {
    // /etc copied up by a stub made and removed again; /a/b is new (the opaque /a hides l0's)
    await fsp.writeFile(path.join(m.merged, 'etc', 'hosts'), '');
    await fsp.rm(path.join(m.merged, 'etc', 'hosts'));
    await fsp.mkdir(path.join(m.merged, 'a', 'b'));
    await fsp.chmod(path.join(m.merged, 'keep'), 0o755);
    const entries = await snap.diff(m.upper, { lowers: m.lowers });
    assert.deepEqual(entries.map((e) => e.path), ['a', 'a/b', 'keep']);
    await assert.rejects(fsp.lstat(path.join(m.upper, 'etc')), 'the dropped dir leaves the upper dir too');
  } finally {
    await m.release();
  }
  await fsp.rm(root, { recursive: true, force: true });
});
