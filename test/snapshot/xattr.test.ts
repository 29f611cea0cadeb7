/**
 * Extended attributes with binary values (security.capability, bytes that are not UTF-8)
 * through the layer reader (keepBinaryPax + tar-stream), the unpacker, the upper-dir differ and
 * the layer writer; and the whiteout and opaque-marker entries the differ writes, with the
 * modes docker 20.10's layers give them (test/build/xattr-whiteouts.test.ts compares with a
 * real docker build).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Snapshotter } from '../../src/snapshot/index.js';
import { keepBinaryPax, tarEntries, tarStream, TarReadError, type TarEntry } from '../../src/oci/tar.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (overlayfs, security.* and trusted.* xattrs)';

/** cap_setuid,cap_net_raw+ep as setcap writes it (v2): bytes 0x80 and 0x20 in the mask. */
const CAP = Buffer.from('0100000280200000000000000000000000000000', 'hex');
/** Bytes no UTF-8 decoder keeps. */
const RAW = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0xc3, 0x28, 0x0a, 0x3d]);

function getXattr(p: string, name: string): Buffer | undefined {
  try {
    const out = execFileSync('getfattr', ['-h', '--absolute-names', '-e', 'hex', '-n', name, p], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    const line = out.split('\n').find((l) => l.startsWith(`${name}=`));
    return line === undefined ? undefined : Buffer.from(line.slice(name.length + 1).replace(/^0x/, ''), 'hex');
  } catch {
    return undefined;
  }
}

async function collect(src: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of src) chunks.push(c);
  return Buffer.concat(chunks);
}

/** A tar with binary xattrs, a PAX path (long name) and a PAX size record on the way. */
async function fixture(): Promise<Buffer> {
  const long = `${'d'.repeat(120)}/${'f'.repeat(110)}`;
  const entries: TarEntry[] = [
    { path: 'bin', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 1, xattrs: { 'user.dir': RAW } },
    { path: 'bin/ping', type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: 1, content: Buffer.from('ping\n'), xattrs: { 'security.capability': CAP, 'user.text': 'plain' } },
    { path: long, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, content: Buffer.alloc(1500, 7), xattrs: { 'user.raw': RAW } },
    { path: 'after', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, content: Buffer.from('after\n') },
  ];
  return collect(tarStream(entries));
}

test('tarEntries keeps binary xattr values, whatever the chunking', async () => {
  const tar = await fixture();
  for (const size of [tar.length, 512, 100, 1]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < tar.length; i += size) chunks.push(tar.subarray(i, i + size));
    const seen = new Map<string, Record<string, Buffer>>();
    const contents = new Map<string, Buffer>();
    for await (const { header, stream } of tarEntries(Readable.from(chunks))) {
      seen.set(header.name.replace(/\/$/, ''), header.xattrs ?? {});
      contents.set(header.name.replace(/\/$/, ''), await collect(stream as AsyncIterable<Buffer>));
    }
    assert.equal(seen.size, 4, `chunks of ${size}`);
    assert.deepEqual(seen.get('bin/ping'), { 'security.capability': CAP, 'user.text': Buffer.from('plain') });
    assert.deepEqual(seen.get('bin'), { 'user.dir': RAW });
    const long = [...seen.keys()].find((k) => k.length > 200)!;
    assert.deepEqual(seen.get(long), { 'user.raw': RAW });
    assert.deepEqual(contents.get(long), Buffer.alloc(1500, 7));
    assert.equal(contents.get('after')!.toString(), 'after\n');
  }
});

test('keepBinaryPax passes what is not a tar through unchanged, for the reader to refuse', async () => {
  const junk = Buffer.alloc(4096, 0x41);
  const out = await collect(Readable.from([junk]).pipe(keepBinaryPax()));
  assert.deepEqual(out, junk);
  await assert.rejects(
    (async () => {
      for await (const e of tarEntries(Readable.from([junk]))) e.stream.resume();
    })(),
    (e: unknown) => e instanceof TarReadError,
  );
});

test('an unpacked layer has the exact xattr bytes, and the differ reads them back exactly', { skip }, async () => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-xattr-'));
  try {
    const snap = new Snapshotter(root);
    const tar = await fixture();
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    const dir = await snap.unpackLayer(diffId, () => Readable.from([tar]));
    assert.deepEqual(getXattr(path.join(dir, 'bin/ping'), 'security.capability'), CAP);
    assert.deepEqual(getXattr(path.join(dir, 'bin'), 'user.dir'), RAW);

    // a step that copies the capable file up (touch) and sets a raw value on a new one
    const m = await snap.mount([dir]);
    try {
      execFileSync('touch', [path.join(m.merged, 'bin/ping')]);
      await fsp.writeFile(path.join(m.merged, 'new'), 'n');
      execFileSync('setfattr', ['-n', 'user.raw', '-v', `0x${RAW.toString('hex')}`, path.join(m.merged, 'new')]);
      execFileSync('setcap', ['cap_setuid,cap_net_raw+ep', path.join(m.merged, 'new')]);
      const entries = await snap.diff(m.upper);
      const ping = entries.find((e) => e.path === 'bin/ping');
      assert.deepEqual(ping?.xattrs?.['security.capability'], CAP, 'copy-up keeps the capability, byte for byte');
      const fresh = entries.find((e) => e.path === 'new');
      assert.deepEqual(fresh?.xattrs, { 'security.capability': CAP, 'user.raw': RAW });
      // and the layer written from them carries the same bytes
      const written = await collect(tarStream(entries));
      const back = new Map<string, Record<string, Buffer>>();
      for await (const { header, stream } of tarEntries(Readable.from([written]))) {
        back.set(header.name, header.xattrs ?? {});
        stream.resume();
      }
      assert.deepEqual(back.get('new'), { 'security.capability': CAP, 'user.raw': RAW });
      assert.ok(!Object.keys(back.get('bin/ping') ?? {}).some((k) => k.startsWith('trusted.overlay.')), "overlay's own xattrs stay out");
    } finally {
      await m.release();
    }
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test("whiteouts are 0600 root files and an opaque marker takes its directory's mode and owner (as docker 20.10 writes them)", { skip }, async () => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-wh-'));
  try {
    const snap = new Snapshotter(root);
    const base: TarEntry[] = [
      { path: 'gone', type: 'file', mode: 0o644, uid: 3, gid: 4, mtime: 1, content: Buffer.from('x') },
      { path: 'opq', type: 'directory', mode: 0o750, uid: 12, gid: 34, mtime: 1 },
      { path: 'opq/a', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, content: Buffer.from('a') },
    ];
    const tar = await collect(tarStream(base));
    const dir = await snap.unpackLayer(`sha256:${createHash('sha256').update(tar).digest('hex')}`, () => Readable.from([tar]));
    const m = await snap.mount([dir]);
    try {
      await fsp.rm(path.join(m.merged, 'gone'));
      await fsp.rm(path.join(m.merged, 'opq'), { recursive: true });
      await fsp.mkdir(path.join(m.merged, 'opq'));
      await fsp.chmod(path.join(m.merged, 'opq'), 0o2710);
      await fsp.chown(path.join(m.merged, 'opq'), 5, 6);
      await fsp.writeFile(path.join(m.merged, 'opq/b'), 'b');
      const entries = await snap.diff(m.upper);
      const wh = entries.find((e) => e.path === '.wh.gone');
      assert.ok(wh, entries.map((e) => e.path).join(' '));
      assert.deepEqual({ type: wh.type, mode: wh.mode, uid: wh.uid, gid: wh.gid, size: wh.size }, { type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0 });
      const opq = entries.find((e) => e.path === 'opq/.wh..wh..opq');
      assert.ok(opq, entries.map((e) => e.path).join(' '));
      assert.deepEqual({ type: opq.type, mode: opq.mode, uid: opq.uid, gid: opq.gid, mtime: opq.mtime }, { type: 'file', mode: 0o710, uid: 5, gid: 6, mtime: 0 });
      const order = entries.map((e) => e.path);
      assert.ok(order.indexOf('opq') < order.indexOf('opq/.wh..wh..opq') && order.indexOf('opq/.wh..wh..opq') < order.indexOf('opq/b'), order.join(' '));
    } finally {
      await m.release();
    }
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
