/**
 * A full disk during a build, on a kiln root on a small tmpfs: the error says "no space left
 * on device while ..." with a hint, blames the step that ran out (a COPY writing files, a RUN
 * whose layer is being stored), and carries no raw errno.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, isRoot, runKiln, tempDir, writeTree } from '../helpers.js';
import { assertClearError } from './clear-error.js';

/** Runs `body` with a kiln root (busybox imported) on an 8 MB tmpfs, unmounted and removed after. */
async function withSmallRoot(body: (root: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir('kiln-fulldisk-');
  const root = path.join(dir.dir, 'root');
  let mounted = false;
  try {
    await fs.mkdir(root);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', root]);
    assert.equal(m.status, 0, String(m.stderr));
    mounted = true;
    const r = await runKiln(['import', await busyboxRootfsTar(), 'busybox:latest'], { root });
    assert.equal(r.code, 0, r.stderr);
    await body(root, dir.dir);
  } finally {
    if (mounted) spawnSync('umount', ['-l', root]);
    await dir.cleanup();
  }
}

describe('a full disk', { skip: isRoot() ? false : 'needs root (tmpfs, runc)' }, () => {
  it('a COPY that fills the disk fails at the COPY, saying so', () =>
    withSmallRoot(async (root, dir) => {
      const ctx = path.join(dir, 'ctx');
      await writeTree(ctx, { Dockerfile: 'FROM busybox:latest\nRUN echo one > /one\nCOPY blob /\nRUN echo after\n' });
      await fs.writeFile(path.join(ctx, 'blob'), Buffer.alloc(12_000_000, 1));
      const r = await runKiln(['build', '--progress', 'plain', ctx], { root, cwd: ctx });
      assertClearError(r, /^error: Dockerfile:3:1: no space left on device while copying .*blob to \/blob in the image\n/m, 'COPY');
      assert.match(r.stderr, /hint: free space .*--root/);
    }));

  it('a RUN whose layer cannot be stored is the step blamed', () =>
    withSmallRoot(async (root, dir) => {
      const ctx = path.join(dir, 'ctx');
      // the RUN's files fit in the snapshot; storing them again as the layer's blob does not
      await writeTree(ctx, { Dockerfile: 'FROM busybox:latest\nRUN head -c 3000000 /dev/urandom > /big\nRUN echo next\n' });
      const r = await runKiln(['build', '--progress', 'plain', ctx], { root, cwd: ctx });
      assertClearError(r, /^error: Dockerfile:2:1: no space left on device while storing the layer of this step\n/m, 'RUN layer');
    }));
});
