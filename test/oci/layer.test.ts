import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, symlinkSync, linkSync, utimesSync, chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ContentStore } from '../../src/oci/store.js';
import { comparePaths, layerEntriesFromDirectory, readLayer, sortEntries, writeLayer, type LayerEntry } from '../../src/oci/layer.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/types.js';
import { have, mustRun, tempDir } from './util.js';

function makeTree(dir: string, mtime: number): void {
  mkdirSync(path.join(dir, 'etc', 'conf.d'), { recursive: true });
  mkdirSync(path.join(dir, 'bin'));
  mkdirSync(path.join(dir, 'a-b'));
  writeFileSync(path.join(dir, 'etc', 'hostname'), 'kiln\n');
  writeFileSync(path.join(dir, 'etc', 'conf.d', 'big'), Buffer.alloc(70_000, 7));
  writeFileSync(path.join(dir, 'bin', 'tool'), '#!/bin/sh\necho hi\n');
  chmodSync(path.join(dir, 'bin', 'tool'), 0o4755);
  linkSync(path.join(dir, 'bin', 'tool'), path.join(dir, 'bin', 'tool-link'));
  symlinkSync('tool', path.join(dir, 'bin', 'sh'));
  writeFileSync(path.join(dir, 'a-b', 'x'), '');
  const long = path.join(dir, 'deep', 'd'.repeat(90), 'e'.repeat(90));
  mkdirSync(long, { recursive: true });
  writeFileSync(path.join(long, 'f'.repeat(120)), 'long name');
  writeFileSync(path.join(dir, 'ünïcode'), 'utf8 name');
  const walk = (p: string) => {
    for (const sub of ['', 'etc', 'etc/conf.d', 'etc/hostname', 'etc/conf.d/big', 'bin', 'bin/tool', 'a-b', 'a-b/x', 'ünïcode']) {
      utimesSync(path.join(p, sub), mtime, mtime);
    }
  };
  walk(dir);
}

test('the walk is sorted depth-first, lstat-based, with hardlinks and symlinks', async (t) => {
  const dir = tempDir(t);
  makeTree(dir, 1_600_000_000);
  const entries: LayerEntry[] = [];
  for await (const e of layerEntriesFromDirectory(dir, { prefix: 'root' })) entries.push(e);
  const paths = entries.map((e) => e.path);
  assert.deepEqual(paths.slice(0, 6), ['root/a-b', 'root/a-b/x', 'root/bin', 'root/bin/sh', 'root/bin/tool', 'root/bin/tool-link']);
  assert.deepEqual(sortEntries(entries).map((e) => e.path), paths);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  assert.equal(byPath.get('root/bin/sh')?.type, 'symlink');
  assert.equal(byPath.get('root/bin/sh')?.linkname, 'tool');
  assert.equal(byPath.get('root/bin/tool')?.type, 'file');
  assert.equal(byPath.get('root/bin/tool')?.mode, 0o4755);
  assert.equal(byPath.get('root/bin/tool-link')?.type, 'hardlink');
  assert.equal(byPath.get('root/bin/tool-link')?.linkname, 'root/bin/tool');
  assert.equal(byPath.get('root/etc')?.type, 'directory');
  assert.ok(comparePaths('a/b', 'a-b') < 0);
  assert.ok(comparePaths('a', 'a/b') < 0);
});

test('layers are deterministic; sourceDateEpoch makes different mtimes give the same digest', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const one = tempDir(t);
  const two = tempDir(t);
  makeTree(one, 1_600_000_000);
  makeTree(two, 1_700_000_000);
  const a1 = await writeLayer(store, layerEntriesFromDirectory(one));
  const a2 = await writeLayer(store, layerEntriesFromDirectory(one));
  assert.deepEqual(a1, a2);
  assert.equal(a1.descriptor.mediaType, MediaType.ociLayerGzip);
  const b = await writeLayer(store, layerEntriesFromDirectory(two));
  assert.notEqual(b.diffId, a1.diffId, 'different mtimes without an epoch give different layers');
  const epoch = 1_500_000_000;
  const c1 = await writeLayer(store, layerEntriesFromDirectory(one), { sourceDateEpoch: epoch });
  const c2 = await writeLayer(store, layerEntriesFromDirectory(two), { sourceDateEpoch: epoch });
  assert.equal(c1.diffId, c2.diffId);
  assert.equal(c1.descriptor.digest, c2.descriptor.digest);
  // the digests are what is stored, and the diffId is the gunzipped content
  const blob = await store.readBlob(c1.descriptor.digest);
  assert.equal(digestOf(blob), c1.descriptor.digest);
  assert.equal(blob.length, c1.descriptor.size);
  assert.equal(digestOf(zlib.gunzipSync(blob)), c1.diffId);
  const plain = await writeLayer(store, layerEntriesFromDirectory(one), { sourceDateEpoch: epoch, compression: 'none' });
  assert.equal(plain.descriptor.mediaType, MediaType.ociLayerTar);
  assert.equal(plain.descriptor.digest, c1.diffId);
});

test('GNU tar reads our layers: modes, owners, links, long and UTF-8 names, xattrs, clamped mtimes', async (t) => {
  if (!have('tar')) return t.skip('tar not installed');
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const entries: LayerEntry[] = [
    { path: 'dir', type: 'directory', mode: 0o1777, uid: 0, gid: 0, mtime: 2_000_000_000 },
    { path: 'dir/file', type: 'file', mode: 0o640, uid: 1000, gid: 1001, content: Buffer.from('content\n'), mtime: 10, uname: 'dropped', gname: 'dropped' },
    { path: 'dir/biguid', type: 'file', mode: 0o644, uid: 3_000_000, gid: 4_000_000, content: Buffer.from('x') },
    { path: 'dir/hard', type: 'hardlink', mode: 0o640, uid: 1000, gid: 1001, linkname: 'dir/file' },
    { path: 'dir/sym', type: 'symlink', mode: 0o777, uid: 0, gid: 0, linkname: '/'.repeat(1) + 'x'.repeat(150) },
    { path: 'dir/' + 'n'.repeat(200), type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('long') },
    { path: 'dir/ümlaut', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('u') },
    { path: 'dir/cap', type: 'file', mode: 0o755, uid: 0, gid: 0, content: Buffer.from('c'), xattrs: { 'user.bin': Buffer.from([0, 1, 0xff]), 'user.text': 'hello' } },
    { path: 'dir/fifo', type: 'fifo', mode: 0o600, uid: 0, gid: 0 },
    { path: 'dir/null', type: 'char', mode: 0o666, uid: 0, gid: 0, devmajor: 1, devminor: 3 },
  ];
  const layer = await writeLayer(store, entries, { sourceDateEpoch: 1_000_000_000 });
  assert.equal(layer.entries, entries.length);
  const file = store.blobPath(layer.descriptor.digest);
  const listing = mustRun('tar', ['--numeric-owner', '--full-time', '-tvzf', file]);
  const lines = listing.trim().split('\n');
  assert.equal(lines.length, entries.length);
  assert.match(lines[0], /^drwxrwxrwt 0\/0 +0 2001-09-0\d \d\d:\d\d:\d\d dir\/$/); // clamped to the epoch
  assert.match(lines[1], /^-rw-r----- 1000\/1001 +8 1970-01-01 00:00:10 dir\/file$/);
  assert.match(lines[2], /3000000\/4000000/);
  assert.match(lines[3], /^hrw-r----- .* dir\/hard link to dir\/file$/);
  assert.ok(lines[4].endsWith(`dir/sym -> /${'x'.repeat(150)}`));
  assert.ok(lines[5].endsWith('dir/' + 'n'.repeat(200)));
  assert.ok(lines[6].endsWith('dir/ümlaut'));
  assert.match(lines[8], /^prw-------/);
  assert.match(lines[9], /^crw-rw-rw- 0\/0 +1,\s*3 /);
  // extract and compare content and xattrs
  const out = tempDir(t);
  mustRun('tar', ['--xattrs', "--xattrs-include=user.*", '-xzf', file, '-C', out]);
  assert.equal(readFileSync(path.join(out, 'dir', 'file'), 'utf8'), 'content\n');
  assert.equal(readFileSync(path.join(out, 'dir', 'n'.repeat(200)), 'utf8'), 'long');
  if (have('getfattr')) {
    const attrs = mustRun('getfattr', ['-d', '-e', 'hex', '-m', 'user\\.', path.join(out, 'dir', 'cap')]);
    assert.match(attrs, /user\.bin=0x0001ff/);
    assert.match(attrs, /user\.text=0x68656c6c6f/);
  }
  // and our own reader sees the same
  const seen: string[] = [];
  for await (const { header, stream } of readLayer(store, layer.descriptor)) {
    seen.push(header.name);
    if (header.name === 'dir/file') {
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), 'content\n');
      assert.equal(header.uname, '');
    }
  }
  assert.equal(seen.length, entries.length);
  assert.equal(seen[0], 'dir/');
});

test('xattrs of a directory tree are read with getfattr when asked', async (t) => {
  if (!have('setfattr') || !have('getfattr')) return t.skip('attr (setfattr/getfattr) not installed');
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'f'), 'x');
  const set = (await import('node:child_process')).spawnSync('setfattr', ['-n', 'user.k', '-v', 'v', path.join(dir, 'f')]);
  if (set.status !== 0) return t.skip('this filesystem has no user xattrs');
  const entries: LayerEntry[] = [];
  for await (const e of layerEntriesFromDirectory(dir, { xattrs: true })) entries.push(e);
  assert.deepEqual(entries[0].xattrs, { 'user.k': Buffer.from('v') });
  const plain: LayerEntry[] = [];
  for await (const e of layerEntriesFromDirectory(dir)) plain.push(e);
  assert.equal(plain[0].xattrs, undefined);
});

test('bad entries and files that change are errors, and leave no temp files', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  await assert.rejects(writeLayer(store, [{ path: '/abs', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.alloc(0) }]), /relative and clean/);
  await assert.rejects(writeLayer(store, [{ path: 'a/../b', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.alloc(0) }]), /relative and clean/);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'f'), 'short');
  await assert.rejects(
    writeLayer(store, [{ path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 100, sourcePath: path.join(dir, 'f') }]),
    /changed while it was being archived/,
  );
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(readdirSync(store.tmpDir()), []);
});
