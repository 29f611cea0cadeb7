import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runContainer } from '../../src/exec/index.js';
import { Snapshotter } from '../../src/snapshot/index.js';
import { chunked, diffIdOf, makeTar, type TarSpec } from '../snapshot/tarutil.js';
import { busyboxApplets, GROUP, PASSWD } from './rootfs.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root' : !existsSync('/bin/busybox') ? 'needs busybox-static' : false;

test('RUN over an overlay of a busybox layer yields the expected diff', { skip }, async () => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-snaprun-'));
  try {
    const entries: TarSpec[] = [
      { name: 'bin/', type: 'directory' },
      { name: 'bin/busybox', content: readFileSync('/bin/busybox'), mode: 0o755 },
      ...busyboxApplets().map((a): TarSpec => ({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
      { name: 'etc/', type: 'directory' },
      { name: 'etc/passwd', content: PASSWD },
      { name: 'etc/group', content: GROUP },
    ];
    const layer = await makeTar(entries);
    const snap = new Snapshotter(root);
    const lower = await snap.unpackLayer(diffIdOf(layer), chunked(layer, 65536));
    const m = await snap.mount([lower]);
    try {
      const res = await runContainer({
        rootfs: m.merged,
        args: ['sh', '-c', 'echo hi > /new; rm /bin/true'],
        env: ['PATH=/bin'],
        cwd: '/',
        user: '',
        network: 'none',
        stateRoot: path.join(root, 'run'),
      });
      assert.equal(res.exitCode, 0, res.outputTail);
      const diff = await snap.diff(m.upper);
      const paths = diff.map((e) => e.path);
      assert.ok(paths.includes('new'), paths.join(','));
      assert.ok(paths.includes('bin/.wh.true'), paths.join(','));
      const created = diff.find((e) => e.path === 'new');
      assert.equal(created?.type, 'file');
      assert.equal(await fsp.readFile(created?.sourcePath as string, 'utf8'), 'hi\n');
      // the runtime's mount points (/proc, /dev, /sys, /etc/hosts...) are not part of the layer
      for (const stub of ['proc', 'dev', 'sys', 'etc/hosts', 'etc/resolv.conf', 'etc/hostname']) {
        assert.ok(!paths.includes(stub), `${stub} leaked into the diff: ${paths.join(',')}`);
      }
      assert.ok(existsSync(path.join(lower, 'bin/true')), 'the layer itself is untouched');
    } finally {
      await m.release();
    }
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
