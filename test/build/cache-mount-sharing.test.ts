/**
 * RUN --mount=type=cache sharing modes across two concurrent kiln processes on one root, on
 * real runc. The steps and the test meet through a second (shared) cache mount the test reads
 * and writes on the host: a step says it is in, and waits until the test lets it go, so every
 * case is decided by order, not by timing.
 *
 * - shared: both steps are in at once, in one directory: each sees the other's file.
 * - private: the second step does not wait; it gets its own directory.
 * - locked: the second step waits ("waiting for cache mount") until the first has left; also
 *   when the first build is killed (kill -9), whose container is removed before the second
 *   takes the directory over.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { cacheMountName } from '../../src/solver/ops/cachemount.js';
import { kilnPaths } from '../../src/paths.js';
import { isRoot, kilnBin, workspace, type Workspace } from '../helpers.js';

const skip = isRoot() ? false : 'RUN needs root';

interface Build {
  stderr(): string;
  done: Promise<number>;
  kill(sig: NodeJS.Signals): void;
}

function startBuild(root: string, ctx: string): Build {
  const child = spawn(process.execPath, [kilnBin, '--root', root, 'build', '--progress', 'plain', ctx], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const done = new Promise<number>((resolve) => child.once('close', (code, sig) => resolve(code ?? (sig ? 128 : 1))));
  return { stderr: () => err, done, kill: (sig) => child.kill(sig) };
}

async function until(check: () => boolean, what: string, builds: Build[], ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}\n${builds.map((b) => b.stderr()).join('\n---\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function mountDir(root: string, id: string, k = 0): string {
  const name = cacheMountName({ id, target: `/${id}` });
  return path.join(kilnPaths(root).cacheMounts, k === 0 ? name : `${name}.${k}`);
}

describe('cache mount sharing across two kiln processes', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws?.cleanup();
  });

  /** A step that meets the test in the cache `rv`: in-X, then waits for go-X; `body` runs in between. */
  const step = (mode: string, tag: string, x: string, body: string): string =>
    `FROM busybox\nRUN --mount=type=cache,id=rv-${tag},target=/rv --mount=type=cache,id=c-${tag},target=/c,sharing=${mode} ` +
    `touch /rv/in-${x} && until [ -e /rv/go-${x} ]; do sleep 0.1; done && ${body}\n`;

  /** Starts A, then B once A is in; both must be in at once (neither waits); then lets both go. */
  async function bothIn(tag: string, ca: string, cb: string): Promise<{ a: Build; b: Build; rv: string }> {
    const rv = mountDir(ws.root, `rv-${tag}`);
    const a = startBuild(ws.root, ca);
    await until(() => existsSync(path.join(rv, 'in-A')), 'A in', [a]);
    const b = startBuild(ws.root, cb);
    await until(() => existsSync(path.join(rv, 'in-B')), 'B in while A is in', [a, b]);
    await fs.writeFile(path.join(rv, 'go-A'), '');
    await fs.writeFile(path.join(rv, 'go-B'), '');
    return { a, b, rv };
  }

  it('shared: both steps use one directory at the same time', async () => {
    const body = (x: string) => `touch /c/${x} && until [ -e /rv/both ]; do sleep 0.1; done && ls /c > /rv/seen-${x}`;
    const [ca, cb] = await Promise.all(['A', 'B'].map((x) => ws.context({ Dockerfile: step('shared', 'S', x, body(x)) })));
    const { a, b, rv } = await bothIn('S', ca, cb);
    await until(() => existsSync(path.join(mountDir(ws.root, 'c-S'), 'A')) && existsSync(path.join(mountDir(ws.root, 'c-S'), 'B')), 'both files', [a, b]);
    await fs.writeFile(path.join(rv, 'both'), '');
    assert.equal(await a.done, 0, a.stderr());
    assert.equal(await b.done, 0, b.stderr());
    assert.equal(readFileSync(path.join(rv, 'seen-A'), 'utf8'), 'A\nB\n');
    assert.equal(readFileSync(path.join(rv, 'seen-B'), 'utf8'), 'A\nB\n');
    assert.equal(existsSync(mountDir(ws.root, 'c-S', 1)), false, 'no second directory');
  });

  it('private: a concurrent user gets a directory of its own, and later users reuse the free ones', async () => {
    const body = (x: string) => `touch /c/${x} && ls /c > /rv/seen-${x}`;
    const [ca, cb] = await Promise.all(['A', 'B'].map((x) => ws.context({ Dockerfile: step('private', 'P', x, body(x)) })));
    // B does not wait for A: it is in while A still holds its directory
    const { a, b, rv } = await bothIn('P', ca, cb);
    assert.equal(await a.done, 0, a.stderr());
    assert.equal(await b.done, 0, b.stderr());
    assert.equal(readFileSync(path.join(rv, 'seen-A'), 'utf8'), 'A\n');
    assert.equal(readFileSync(path.join(rv, 'seen-B'), 'utf8'), 'B\n');
    assert.deepEqual([readdirSync(mountDir(ws.root, 'c-P')), readdirSync(mountDir(ws.root, 'c-P', 1))].map((d) => d.join()).sort(), ['A', 'B']);
    // alone, a private user takes the first free directory
    const c = await ws.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=cache,id=c-P,target=/c,sharing=private ls /c > /seen && touch /c/C\n' });
    const r = startBuild(ws.root, c);
    assert.equal(await r.done, 0, r.stderr());
    assert.equal(existsSync(mountDir(ws.root, 'c-P', 2)), false, 'no third directory');
  });

  it('locked: the second step waits until the first has left', async () => {
    const body = (x: string, y: string) => `[ ! -e /rv/in-${y} ] && echo ${x} >> /c/log && rm /rv/in-${x}`;
    const ca = await ws.context({ Dockerfile: step('locked', 'L', 'A', body('A', 'B')) });
    const cb = await ws.context({ Dockerfile: step('locked', 'L', 'B', body('B', 'A')) });
    const rv = mountDir(ws.root, 'rv-L');
    const a = startBuild(ws.root, ca);
    await until(() => existsSync(path.join(rv, 'in-A')), 'A in', [a]);
    const b = startBuild(ws.root, cb);
    await until(() => /waiting for cache mount c-L \(sharing=locked\)/.test(b.stderr()), 'B waiting', [a, b]);
    assert.equal(existsSync(path.join(rv, 'in-B')), false, 'B is not in while A is');
    await fs.writeFile(path.join(rv, 'go-B'), '');
    await fs.writeFile(path.join(rv, 'go-A'), '');
    assert.equal(await a.done, 0, a.stderr());
    assert.equal(await b.done, 0, b.stderr());
    assert.equal(readFileSync(path.join(mountDir(ws.root, 'c-L'), 'log'), 'utf8'), 'A\nB\n');
    assert.equal(existsSync(mountDir(ws.root, 'c-L', 1)), false, 'locked makes no second directory');
  });

  it('locked: a build killed with kill -9 while holding the mount does not keep it', async () => {
    const ca = await ws.context({ Dockerfile: step('locked', 'K', 'A', 'echo A >> /c/log') });
    const cb = await ws.context({ Dockerfile: step('locked', 'K', 'B', 'echo B >> /c/log') });
    const rv = mountDir(ws.root, 'rv-K');
    const a = startBuild(ws.root, ca);
    await until(() => existsSync(path.join(rv, 'in-A')), 'A in', [a]);
    const b = startBuild(ws.root, cb);
    await until(() => /waiting for cache mount c-K/.test(b.stderr()), 'B waiting', [a, b]);
    await fs.writeFile(path.join(rv, 'go-B'), '');
    a.kill('SIGKILL');
    await a.done;
    assert.equal(await b.done, 0, b.stderr());
    // A's container (still waiting for go-A) was removed before B took the directory
    const stillRunning = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).some((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('/rv/go-A');
      } catch {
        return false;
      }
    });
    assert.equal(stillRunning, false, "the killed build's step is gone");
    assert.equal(readFileSync(path.join(mountDir(ws.root, 'c-K'), 'log'), 'utf8'), 'B\n');
  });

  it('locked: a build interrupted while it waits leaves no hold, and the holder goes on', async () => {
    const ca = await ws.context({ Dockerfile: step('locked', 'I', 'A', 'echo A >> /c/log') });
    const cb = await ws.context({ Dockerfile: step('locked', 'I', 'B', 'echo B >> /c/log') });
    const rv = mountDir(ws.root, 'rv-I');
    const a = startBuild(ws.root, ca);
    await until(() => existsSync(path.join(rv, 'in-A')), 'A in', [a]);
    const b = startBuild(ws.root, cb);
    await until(() => /waiting for cache mount c-I/.test(b.stderr()), 'B waiting', [a, b]);
    b.kill('SIGTERM');
    assert.equal(await b.done, 128 + 15, b.stderr());
    const holds = readdirSync(kilnPaths(ws.root).locks).filter((f) => f.startsWith('cachemount-'));
    assert.equal(holds.length, 2, `A's two holds only: ${holds.join(' ')}`);
    await fs.writeFile(path.join(rv, 'go-A'), '');
    assert.equal(await a.done, 0, a.stderr());
    assert.equal(readFileSync(path.join(mountDir(ws.root, 'c-I'), 'log'), 'utf8'), 'A\n');
    assert.deepEqual(readdirSync(kilnPaths(ws.root).locks).filter((f) => f.startsWith('cachemount-')), []);
  });
});
