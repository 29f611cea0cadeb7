/**
 * Cache disk use: kiln du counts it, kiln prune frees it by age, size or all of it, and
 * the size limit evicts least-recently-used cache after a build, never an image.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isRoot, rootWithBusybox, runKiln, tempDir, writeTree } from '../helpers.js';
import { parseAge, parseSize } from '../../src/cache/gc.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

interface Du {
  items: { kind: string; size: number; inUse: boolean }[];
  total: number;
  reclaimable: number;
}

describe('size and duration parsing', () => {
  it('reads sizes and ages as docker users write them', () => {
    assert.equal(parseSize('512MB'), 512e6);
    assert.equal(parseSize('1GiB'), 1024 ** 3);
    assert.equal(parseSize('2g'), 2e9);
    assert.equal(parseSize('100'), 100);
    assert.throws(() => parseSize('lots'), /invalid size/);
    assert.equal(parseAge('24h'), 86400e3);
    assert.equal(parseAge('7d'), 7 * 86400e3);
    assert.throws(() => parseAge('soon'), /invalid duration/);
  });
});

describe('cache disk use', { skip }, () => {
  let root: string;
  let cleanupRoot: () => Promise<void>;
  let ctx: string;
  let cleanupCtx: () => Promise<void>;

  before(async () => {
    ({ root, cleanup: cleanupRoot } = await rootWithBusybox());
    ({ dir: ctx, cleanup: cleanupCtx } = await tempDir('kiln-ctx-'));
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox:latest',
        'RUN --mount=type=cache,target=/cache echo kept > /cache/f && head -c 300000 /dev/urandom > /blob',
        'RUN echo second > /second',
        '',
      ].join('\n'),
    });
  });
  after(async () => {
    await cleanupCtx();
    await cleanupRoot();
  });

  async function du(): Promise<Du> {
    const r = await runKiln(['du', '--format', 'json'], { root });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Du;
  }

  async function buildCounts(extra: string[] = [], env: Record<string, string> = {}): Promise<{ cached: number; ran: number; stderr: string }> {
    const r = await runKiln(['build', '--progress', 'plain', '-t', 'gc:1', ...extra, ctx], { root, env });
    assert.equal(r.code, 0, r.stderr);
    return { cached: (r.stderr.match(/#\d+ CACHED/g) ?? []).length, ran: (r.stderr.match(/#\d+ DONE/g) ?? []).length, stderr: r.stderr };
  }

  it('counts layers, unpacked layers and cache mounts', async () => {
    await buildCounts();
    const usage = await du();
    const kinds = new Set(usage.items.map((i) => i.kind));
    assert.ok(kinds.has('layer') && kinds.has('snapshot') && kinds.has('cache-mount'), JSON.stringify(usage.items));
    assert.ok(usage.total >= 300000, `total ${usage.total}`);
    const text = await runKiln(['du', '-v'], { root });
    assert.match(text.stdout, /RECLAIMABLE/);
    assert.match(text.stdout, /Total:/);
  });

  it('plain prune keeps what cache records use; --all drops the cache but not the image', async () => {
    await runKiln(['prune'], { root });
    assert.equal((await buildCounts()).cached, 2, 'still fully cached after a plain prune');
    const all = await runKiln(['prune', '--all'], { root });
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /cache record/);
    const run = await runKiln(['run', 'gc:1', 'cat', '/second'], { root });
    assert.equal(run.stdout, 'second\n', 'the image survives');
    const again = await buildCounts();
    assert.equal(again.ran, 2, again.stderr);
    await fs.rm(path.join(ctx, 'unused'), { force: true });
  });

  it('--filter until keeps recent cache; --keep-storage evicts down to the size', async () => {
    await runKiln(['prune', '--filter', 'until=1h'], { root });
    assert.equal((await buildCounts()).cached, 2);
    const before = await du();
    assert.ok(before.reclaimable > 0);
    const r = await runKiln(['prune', '--keep-storage', '1'], { root });
    assert.equal(r.code, 0, r.stderr);
    const afterPrune = await du();
    assert.equal(afterPrune.reclaimable, 0, JSON.stringify(afterPrune.items));
  });

  it('the size limit evicts least-recently-used cache after a build', async () => {
    await buildCounts(['--no-cache']);
    const r = await buildCounts(['--no-cache'], { KILN_CACHE_MAX: '1' });
    assert.match(r.stderr, /cache over its size limit: evicted/);
    const usage = await du();
    assert.equal(usage.reclaimable, 0);
    const run = await runKiln(['run', 'gc:1', 'cat', '/second'], { root });
    assert.equal(run.stdout, 'second\n');
  });
});
