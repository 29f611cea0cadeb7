/** cache/mount-lock.ts: shared and exclusive holds of a cache mount's directory, and holds of dead processes. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { tryHoldCacheMount } from '../../src/cache/mount-lock.js';
import { kilnPaths } from '../../src/paths.js';
import { tempDir } from '../helpers.js';

describe('cache mount holds', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await tempDir('kiln-mountlock-');
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('shared holds coexist; an exclusive one excludes every other, until released', async () => {
    const root = tmp.dir;
    const s1 = await tryHoldCacheMount(root, 'aaaa', false);
    const s2 = await tryHoldCacheMount(root, 'aaaa', false);
    assert.ok(s1 && s2);
    assert.equal(await tryHoldCacheMount(root, 'aaaa', true), undefined);
    // another mount is independent
    const other = await tryHoldCacheMount(root, 'aaaa.1', true);
    assert.ok(other);
    await s1.release();
    assert.equal(await tryHoldCacheMount(root, 'aaaa', true), undefined);
    await s2.release();
    const x = await tryHoldCacheMount(root, 'aaaa', true);
    assert.ok(x);
    assert.equal(await tryHoldCacheMount(root, 'aaaa', false), undefined);
    assert.equal(await tryHoldCacheMount(root, 'aaaa', true), undefined);
    await x.release();
    await other.release();
    assert.deepEqual(readdirSync(kilnPaths(root).locks).filter((f) => f.startsWith('cachemount-')), []);
  });

  it('a hold of a process that is gone does not count, and is removed', async () => {
    const root = tmp.dir;
    // pid 2^22+1 is above any pid_max: no such process
    const dead = path.join(kilnPaths(root).locks, 'cachemount-excl-4194305-1-0123456789abcdef.bbbb');
    await fs.mkdir(path.dirname(dead), { recursive: true });
    await fs.writeFile(dead, '');
    const h = await tryHoldCacheMount(root, 'bbbb', true);
    assert.ok(h, 'taken over');
    assert.equal(existsSync(dead), false);
    await h.release();
  });
});
