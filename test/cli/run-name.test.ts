/**
 * `kiln run --name NAME`: a name is unique among the containers running on a root, across
 * processes; it is free again when its container ends, and after kill -9 of its kiln.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { runImage } from '../../src/run.js';
import { KilnError } from '../../src/errors.js';
import { isRoot, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { leftovers, NOTHING, processesWith, sleep, startKiln, stopKiln, type Running } from '../faults/util.js';

const skip = isRoot() ? false : 'needs root (runc over overlayfs)';

describe('kiln run --name', { skip }, () => {
  let ws: Workspace;
  let shared: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    ws = await workspace();
    shared = await tempDir('kiln-name-');
  });
  after(async () => {
    await shared?.cleanup();
    await ws?.cleanup();
  });

  /** A named container that says it is up (a file) and runs until the file `go` appears. */
  const holder = (name: string, tag: string): Running =>
    startKiln(ws.root, ['run', '--name', name, '-v', `${shared.dir}:/s`, 'busybox', 'sh', '-c', `touch /s/up-${tag}; while [ ! -e /s/go-${tag} ]; do sleep 0.05; done; echo ${tag}-done`]);
  const waitFile = async (file: string, r: Running): Promise<void> => {
    while (!existsSync(file) && r.child.exitCode === null) await sleep(20);
  };

  it('a second container of that name is refused while the first runs, and gets it once it ended', async () => {
    const a = holder('web', 'a');
    try {
      await waitFile(path.join(shared.dir, 'up-a'), a);
      const dup = await runKiln(['run', '--name', 'web', 'busybox', 'true'], { root: ws.root });
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, new RegExp(`^error: the container name "web" is already in use by a running container \\(kiln process ${a.child.pid} since \\d{4}-`, 'm'));
      assert.doesNotMatch(dup.stderr, /go-a/, 'the holder\'s command line (it may carry -e values) is not shown');
      assert.match(dup.stderr, /hint: choose another --name/);
      const other = await runKiln(['run', '--name', 'web2', 'busybox', 'echo', 'other'], { root: ws.root });
      assert.equal(other.code, 0, other.stderr);
      await fs.writeFile(path.join(shared.dir, 'go-a'), '');
      assert.equal((await a.exited).code, 0, a.output());
    } finally {
      await stopKiln(a);
    }
    const again = await runKiln(['run', '--name', 'web', 'busybox', 'echo', 'reused'], { root: ws.root });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'reused\n');
    assert.deepEqual(await leftovers(ws.root), NOTHING);
  });

  it('of two processes claiming a name at once, exactly one gets it', async () => {
    const b = holder('race', 'b');
    const c = holder('race', 'c');
    try {
      const first = await Promise.race([b.exited.then(() => b), c.exited.then(() => c)]);
      const winner = first === b ? c : b;
      assert.equal((await first.exited).code, 1, first.output());
      assert.match(first.output(), /the container name "race" is already in use/);
      const tag = winner === b ? 'b' : 'c';
      await waitFile(path.join(shared.dir, `up-${tag}`), winner);
      await fs.writeFile(path.join(shared.dir, `go-${tag}`), '');
      assert.equal((await winner.exited).code, 0, winner.output());
      assert.match(winner.output(), new RegExp(`${tag}-done`));
    } finally {
      await stopKiln(b);
      await stopKiln(c);
    }
    assert.deepEqual(await leftovers(ws.root), NOTHING);
  });

  it('after kill -9 of its kiln the name is free for the next command, which also removes the container', async () => {
    const d = holder('killed', 'd');
    try {
      await waitFile(path.join(shared.dir, 'up-d'), d);
      d.child.kill('SIGKILL');
      await d.exited;
    } finally {
      await stopKiln(d);
    }
    const next = await runKiln(['run', '--name', 'killed', 'busybox', 'echo', 'mine now'], { root: ws.root });
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.stdout, 'mine now\n');
    assert.deepEqual(await leftovers(ws.root), NOTHING);
    assert.deepEqual(processesWith('/s/go-d'), [], 'the killed kiln\'s container is gone');
  });

  it('a kill -9 leaves no name behind after the next command, whatever it is', async () => {
    const e = holder('swept', 'e');
    try {
      await waitFile(path.join(shared.dir, 'up-e'), e);
      assert.ok((await leftovers(ws.root)).locks.some((l) => l.includes('swept')), 'the name is held meanwhile');
      e.child.kill('SIGKILL');
      await e.exited;
    } finally {
      await stopKiln(e);
    }
    assert.equal((await runKiln(['images'], { root: ws.root })).code, 0);
    assert.deepEqual(await leftovers(ws.root), NOTHING);
    assert.deepEqual(processesWith('/s/go-e'), []);
  });

  it('names follow docker\'s rule; in one process a name is refused too, not queued', async () => {
    for (const bad of ['x', '-web', 'a b', 'a/b', '.hidden', 'n'.repeat(201)]) {
      const r = await runKiln(['run', '--name', bad, 'busybox', 'true'], { root: ws.root });
      assert.equal(r.code, 1, bad);
      assert.match(r.stderr, /^error: invalid container name .*: use 2 to 200 of a-z A-Z 0-9 _ \. -/m, bad);
    }
    const ac = new AbortController();
    const first = runImage({ root: ws.root, image: 'busybox', name: 'inproc', args: ['sleep', '600.77'], onOutput: () => undefined, signal: ac.signal });
    try {
      while (processesWith('sleep 600.77', [], true).length === 0) await sleep(20);
      await assert.rejects(
        runImage({ root: ws.root, image: 'busybox', name: 'inproc', args: ['true'] }),
        (e: unknown) => e instanceof KilnError && e.code === 'conflict' && /"inproc" is already in use .*this process/.test(e.message),
      );
    } finally {
      ac.abort();
      await first.catch(() => undefined);
    }
    const r = await runImage({ root: ws.root, image: 'busybox', name: 'inproc', args: ['true'] });
    assert.equal(r.exitCode, 0);
    // this test process stays registered on the root until it exits
    const left = await leftovers(ws.root);
    assert.deepEqual({ ...left, procs: left.procs.filter((p) => !p.startsWith(`${process.pid}-`)) }, NOTHING);
  });
});
