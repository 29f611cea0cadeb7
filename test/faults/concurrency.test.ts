/**
 * Fault injection: `kiln prune --all` looping while builds run on the same root, two builds
 * at once, and a root on a full filesystem. Nothing a running build uses (base layers,
 * the layers of its earlier steps, cache mounts) may vanish; a full disk fails the step that
 * ran out with a clear error, and leaves the store whole.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, isRoot, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { corruptBlobs, leftovers, NOTHING } from './util.js';

const skip = isRoot() ? false : 'RUN, overlayfs and runc need root';

describe('prune --all looping while builds run', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws.cleanup();
  });

  it('two builds at once, each three times, with a prune --all loop: every build succeeds with all its steps', async () => {
    // every step reads the base layer, the files of the steps before it, and a cache mount
    const dockerfile = (name: string): string =>
      [
        'FROM busybox:latest',
        'COPY a /a',
        `RUN --mount=type=cache,target=/cache,id=shared echo ${name} >> /cache/log && cat /a /bin/busybox > /dev/null && cp /a /b`,
        'RUN test -f /a && test -f /b && cat /bin/busybox /b > /dev/null && mkdir -p /d && for i in 1 2 3 4 5 6 7 8; do cp /b /d/$i; done',
        `RUN --mount=type=cache,target=/cache,id=shared test -f /cache/log && test -f /d/8 && cat /a /b > /c && echo ${name} >> /c`,
        'COPY a /e',
        'RUN cat /a /b /c /e > /all && ls /d | wc -l >> /all',
        '',
      ].join('\n');
    const ctxA = await ws.context({ Dockerfile: dockerfile('first'), a: 'content\n' });
    const ctxB = await ws.context({ Dockerfile: dockerfile('second'), a: 'content\n' });
    let building = true;
    let prunes = 0;
    const pruner = (async () => {
      while (building) {
        const r = await runKiln(['prune', '--all'], { root: ws.root });
        assert.equal(r.code, 0, r.stderr);
        prunes++;
      }
    })();
    try {
      for (let round = 0; round < 3; round++) {
        const [a, b] = await Promise.all([
          runKiln(['build', '--no-cache', '--progress', 'plain', '-t', 'p:a', ctxA], { root: ws.root }),
          runKiln(['build', '--no-cache', '--progress', 'plain', '-t', 'p:b', ctxB], { root: ws.root }),
        ]);
        assert.equal(a.code, 0, `round ${round}, first build:\n${a.stderr}`);
        assert.equal(b.code, 0, `round ${round}, second build:\n${b.stderr}`);
        for (const [tag, name] of [
          ['p:a', 'first'],
          ['p:b', 'second'],
        ]) {
          const r = await runKiln(['run', tag, 'cat', '/all'], { root: ws.root });
          assert.equal(r.stdout, `content\ncontent\ncontent\ncontent\n${name}\ncontent\n8\n`, r.stderr);
        }
      }
    } finally {
      building = false;
      await pruner;
    }
    assert.ok(prunes >= 2, `prune ran during the builds (${prunes} times)`);
    assert.deepEqual(await leftovers(ws.root), NOTHING);
    assert.deepEqual(await corruptBlobs(ws.root), []);
  });
});

describe('--no-cache while another build uses the cache mount', { skip }, () => {
  it('does not reset the mount under the build that is using it', async () => {
    const ws = await workspace();
    try {
      // the holder writes into the mount, waits, and checks its file is still there
      const holder = await ws.context({
        Dockerfile: 'FROM busybox:latest\nRUN --mount=type=cache,target=/c,id=held sh -c "echo mine > /c/f; sleep 4; test -f /c/f"\n',
      });
      const resetter = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN --mount=type=cache,target=/c,id=held ls /c > /dev/null\n' });
      const first = runKiln(['build', '--progress', 'plain', '-t', 'h:1', holder], { root: ws.root });
      // the mount's directory under cache/mounts has a hashed name: wait for the file in any
      const mounts = path.join(ws.root, 'cache', 'mounts');
      const written = async () => (await fs.readdir(mounts).catch(() => [] as string[])).some((d) => existsSync(path.join(mounts, d, 'f')));
      for (let i = 0; i < 300 && !(await written()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(await written(), 'the holder wrote into its cache mount');
      const second = await runKiln(['build', '--no-cache', '--progress', 'plain', '-t', 'h:2', resetter], { root: ws.root });
      assert.equal(second.code, 0, second.stderr);
      const r = await first;
      assert.equal(r.code, 0, `the holder's mount was reset under it:\n${r.stderr}`);
      assert.deepEqual(await leftovers(ws.root), NOTHING);
    } finally {
      await ws.cleanup();
    }
  });
});

describe('a full disk', { skip }, () => {
  let dir: string;
  let cleanupDir: () => Promise<void>;
  let root: string;
  let ctx: string;
  before(async () => {
    ({ dir, cleanup: cleanupDir } = await tempDir('kiln-fulldisk-'));
    root = path.join(dir, 'root');
    ctx = path.join(dir, 'ctx');
    await fs.mkdir(root);
    await fs.mkdir(ctx);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', root], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    const r = await runKiln(['import', await busyboxRootfsTar(), 'busybox:latest'], { root });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    spawnSync('umount', ['-l', root]);
    await cleanupDir();
  });

  async function assertWholeAndUsable(): Promise<void> {
    assert.deepEqual(await leftovers(root), NOTHING);
    assert.deepEqual(await corruptBlobs(root), []);
    await fs.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox:latest\nRUN echo fine > /fine\n');
    const ok = await runKiln(['build', '--no-cache', '-t', 'small:1', ctx], { root });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await runKiln(['run', 'small:1', 'cat', '/fine'], { root })).stdout, 'fine\n');
  }

  it('a RUN that fills the 48 MiB root fails at its own line; the store stays whole', async () => {
    await fs.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox:latest\nRUN echo before > /before\nRUN head -c 100000000 /dev/zero > /big\n');
    const r = await runKiln(['build', '--no-cache', '--progress', 'plain', ctx], { root });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /error: .*Dockerfile:3:1: RUN head -c 100000000/);
    assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
    await assertWholeAndUsable();
  });

  it('a COPY that fills the root fails at its own line with a clear message; the store stays whole', async () => {
    await fs.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox:latest\nCOPY small /small\nCOPY big /big\n');
    writeFileSync(path.join(ctx, 'small'), 'small\n');
    // sparse: costs nothing here, but 60 MB once copied
    await fs.writeFile(path.join(ctx, 'big'), '');
    await fs.truncate(path.join(ctx, 'big'), 60 << 20);
    try {
      const r = await runKiln(['build', '--no-cache', '--progress', 'plain', ctx], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /error: .*Dockerfile:3:1: no space left on device while /);
      assert.match(r.stderr, /hint: .*kiln prune/);
      assert.doesNotMatch(r.stderr, /ENOSPC|\n\s+at |internal error/);
    } finally {
      await fs.rm(path.join(ctx, 'big'), { force: true });
    }
    await assertWholeAndUsable();
  });
});
