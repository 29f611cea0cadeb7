/**
 * Fault injection: SIGINT, SIGTERM, SIGHUP and SIGKILL sent to kiln alone (as a CI runner
 * cancelling a job does) at known points and at seeded random moments of build, save, load,
 * import and prune. After a signal kiln has exited 128+n with one "interrupted" line and left
 * nothing on the root; after SIGKILL the next command on the root takes away what it left
 * (containers included). Either way the next command works.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, isRoot, runKiln, workspace, type Workspace } from '../helpers.js';
import { corruptBlobs, faultSeed, leftovers, NOTHING, processesWith, seeded, signo, sleep, startKiln, stopKiln } from './util.js';

const skip = isRoot() ? false : 'RUN, overlayfs and runc need root';
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const secret = `fault-secret-${faultSeed}-${process.pid}`;
const env = { KILN_FAULT_TOKEN: secret };

/** A RUN with a secret and a cache mount that prints "started-<tag>" and sleeps for S seconds. */
const slowRun = (tag: string): string =>
  [
    'FROM busybox:latest',
    'ARG S=600',
    'COPY f /f',
    `RUN --mount=type=secret,id=tok --mount=type=cache,target=/cache cat /run/secrets/tok > /dev/null && echo started-${tag} && sleep $S.${tag}`,
    '',
  ].join('\n');

function assertInterrupted(sig: NodeJS.Signals, res: { code: number | null; signal: NodeJS.Signals | null }, output: string): void {
  assert.equal(res.code, 128 + signo(sig), `exit code for ${sig}: ${output}`);
  assert.equal(output.match(/^interrupted \(/gm)?.length, 1, output);
  assert.match(output, new RegExp(`interrupted \\(${sig}\\)`));
  assert.doesNotMatch(output, /\n\s+at |internal error/);
}

async function waitFor(marker: string, exclude: number[] = [], atStart = false): Promise<number[]> {
  for (let i = 0; i < 50 && processesWith(marker, exclude, atStart).length === 0; i++) await sleep(100);
  return processesWith(marker, exclude, atStart);
}

/**
 * A signal at a random moment: kiln finished first (0), or handled it, or got it during
 * start-up, before it had made anything, and died by it (the same status to a shell).
 */
function assertStopped(sig: NodeJS.Signals, res: { code: number | null; signal: NodeJS.Signals | null }, output: string): void {
  if (res.code === 0) return;
  if (res.code === null && res.signal === sig && output === '') return;
  assertInterrupted(sig, res, output);
}

/**
 * Runs a kiln command and sends it a random one of SIGINT, SIGTERM, SIGHUP and SIGKILL
 * after a random delay; then checks that nothing is left (after the next command for SIGKILL).
 */
async function randomFault(root: string, args: string[], rand: () => number, maxDelayMs: number): Promise<void> {
  const kinds: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGKILL'];
  const sig = kinds[Math.floor(rand() * kinds.length)];
  const delay = Math.floor(rand() * maxDelayMs);
  const k = startKiln(root, args, { env });
  let res;
  try {
    await sleep(delay);
    k.child.kill(sig);
    res = await k.exited;
  } finally {
    await stopKiln(k);
  }
  if (sig === 'SIGKILL') {
    const r = await runKiln(['images'], { root });
    assert.equal(r.code, 0, r.stderr);
  } else {
    assertStopped(sig, res, k.output());
  }
  assert.deepEqual(await leftovers(root, secret), NOTHING, `${args[0]}: ${sig} after ${delay} ms (exit ${res.code}, ${res.signal}): ${k.output()}`);
}

async function waitGone(marker: string, atStart = false): Promise<number[]> {
  for (let i = 0; i < 50 && processesWith(marker, [], atStart).length > 0; i++) await sleep(100);
  return processesWith(marker, [], atStart);
}

describe('signals and kill -9 during a build', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws.cleanup();
  });

  for (const [i, sig] of SIGNALS.entries()) {
    it(`${sig} while the RUN runs: exit ${128 + signo(sig)}, container, mount, snapshot, lease, secret and temp files gone; the rebuild works`, async () => {
      const tag = String(100 + i);
      const ctx = await ws.context({ Dockerfile: slowRun(tag), f: 'f' });
      const k = startKiln(ws.root, ['build', '--progress', 'plain', '--secret', 'id=tok,env=KILN_FAULT_TOKEN', ctx], { env });
      try {
        await k.waitFor(new RegExp(`started-${tag}`));
        assert.equal((await waitFor(`sleep 600.${tag}`)).length, 1, 'the RUN is running');
        k.child.kill(sig);
        assertInterrupted(sig, await k.exited, k.output());
      } finally {
        await stopKiln(k);
      }
      assert.deepEqual(await leftovers(ws.root, secret), NOTHING);
      assert.deepEqual(await waitGone(`sleep 600.${tag}`), [], 'the container is stopped');
      const again = await runKiln(['build', '--build-arg', 'S=0', '--secret', 'id=tok,env=KILN_FAULT_TOKEN', '-t', `sig:${tag}`, ctx], { root: ws.root, env });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await leftovers(ws.root, secret), NOTHING);
    });
  }

  it('kill -9 while the RUN runs: the next command stops the container and removes the mount, snapshot, lease, secret and temp files', async () => {
    const tag = '200';
    const ctx = await ws.context({ Dockerfile: slowRun(tag), f: 'f' });
    const k = startKiln(ws.root, ['build', '--progress', 'plain', '--secret', 'id=tok,env=KILN_FAULT_TOKEN', ctx], { env });
    try {
      await k.waitFor(new RegExp(`started-${tag}`));
      assert.equal((await waitFor(`sleep 600.${tag}`)).length, 1, 'the RUN is running');
      k.child.kill('SIGKILL');
      await k.exited;
    } finally {
      await stopKiln(k);
    }
    const left = await leftovers(ws.root);
    assert.equal(left.containers.length, 1, 'the container outlives kiln');
    assert.ok(left.mounts.length >= 1 && left.leases.length === 1 && left.active.length >= 1, JSON.stringify(left));
    assert.equal(processesWith(`sleep 600.${tag}`).length, 1);
    const images = await runKiln(['images'], { root: ws.root });
    assert.equal(images.code, 0, images.stderr);
    assert.deepEqual(await leftovers(ws.root, secret), NOTHING);
    assert.deepEqual(await waitGone(`sleep 600.${tag}`), [], 'the container is stopped');
    const again = await runKiln(['build', '--build-arg', 'S=0', '--secret', 'id=tok,env=KILN_FAULT_TOKEN', ctx], { root: ws.root, env });
    assert.equal(again.code, 0, again.stderr);
  });

  it(`signals and kill -9 at seeded random points of a build (seed ${faultSeed})`, async () => {
    const rand = seeded(faultSeed);
    const ctx = await ws.context({
      Dockerfile: [
        'FROM busybox:latest',
        'COPY . /src',
        'RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && cp -r /src /copy',
        'RUN --mount=type=cache,target=/cache sleep 0.3 && echo one > /cache/one',
        'WORKDIR /w',
        'RUN sleep 0.3 && ls /copy/d > list',
        'COPY a.txt /w/',
        '',
      ].join('\n'),
      'a.txt': 'a',
      ...Object.fromEntries(Array.from({ length: 200 }, (_, n) => [`d/f${n}`, `file ${n}\n`])),
    });
    for (let round = 0; round < 6; round++) {
      await randomFault(ws.root, ['build', '--no-cache', '--progress', 'plain', '--secret', 'id=tok,env=KILN_FAULT_TOKEN', ctx], rand, 2000);
    }
    const done = await runKiln(['build', '--secret', 'id=tok,env=KILN_FAULT_TOKEN', '-t', 'rand:1', ctx], { root: ws.root, env });
    assert.equal(done.code, 0, done.stderr);
    const list = await runKiln(['run', 'rand:1', 'sh', '-c', 'wc -l < /w/list; cat /w/a.txt'], { root: ws.root });
    assert.equal(list.stdout, '200\na', list.stderr);
    assert.deepEqual(await corruptBlobs(ws.root), []);
  });
});

describe('signals and kill -9 during kiln run', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws.cleanup();
  });

  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${sig} to kiln run: the container stops and its mount goes${sig === 'SIGKILL' ? ' (with the next command)' : ''}`, async () => {
      const marker = `600.${sig === 'SIGKILL' ? 9 : 15}`;
      // the container's process: its command line is "sleep <marker>". kiln's own ends with
      // it, and so, for a moment, does every child kiln forks before that child execs: only a
      // command line that starts with it is the container's
      const k = startKiln(ws.root, ['run', 'busybox:latest', 'sleep', marker]);
      let res;
      try {
        assert.equal((await waitFor(`sleep ${marker}`, [k.child.pid!], true)).length, 1);
        k.child.kill(sig);
        res = await k.exited;
      } finally {
        await stopKiln(k);
      }
      if (sig === 'SIGKILL') assert.equal((await runKiln(['images'], { root: ws.root })).code, 0);
      else assertInterrupted(sig, res, k.output());
      assert.deepEqual(await leftovers(ws.root), NOTHING);
      assert.deepEqual(await waitGone(`sleep ${marker}`, true), []);
    });
  }
});

describe('kill -9 while the runtime creates the container', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws.cleanup();
  });

  it('the next command stops the runtime too, so no container starts after it', async () => {
    const bundles = path.join(ws.root, 'run', 'bundles');
    for (let round = 0; round < 3; round++) {
      const marker = `600.${70 + round}`;
      const k = startKiln(ws.root, ['run', 'busybox:latest', 'sleep', marker]);
      try {
        let over = false;
        void k.exited.then(() => (over = true));
        while (!over && (await fs.readdir(bundles).catch(() => [] as string[])).length === 0) await sleep(1);
        k.child.kill('SIGKILL');
        await k.exited;
      } finally {
        await stopKiln(k);
      }
      assert.equal((await runKiln(['images'], { root: ws.root })).code, 0);
      // a container the orphaned runtime went on creating would show up by now
      await sleep(1500);
      assert.deepEqual(processesWith(`sleep ${marker}`), [], `round ${round}`);
      assert.deepEqual(await leftovers(ws.root), NOTHING, `round ${round}`);
    }
  });
});

describe('signals and kill -9 during save, load, import and prune', { skip }, () => {
  let ws: Workspace;
  let out: string;
  let archive: string;
  before(async () => {
    ws = await workspace();
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN head -c 40000000 /dev/urandom > /big && echo a > /a\n' });
    const r = await runKiln(['build', '-t', 'big:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    out = await ws.context({});
    archive = path.join(out, 'big.tar');
    const s = await runKiln(['save', '-o', archive, 'big:1'], { root: ws.root });
    assert.equal(s.code, 0, s.stderr);
  });
  after(async () => {
    await ws.cleanup();
  });

  /** Resolves once a file whose name matches appears in one of the dirs. */
  async function appears(dirs: string[], re: RegExp, k: { exited: Promise<unknown> }): Promise<boolean> {
    let over = false;
    void k.exited.then(() => (over = true));
    while (!over) {
      for (const d of dirs) if ((await fs.readdir(d).catch(() => [] as string[])).some((n) => re.test(n))) return true;
      await sleep(2);
    }
    return false;
  }

  const besideTemps = async (): Promise<string[]> => (await fs.readdir(out)).filter((n) => n.startsWith('.'));

  for (const sig of [...SIGNALS, 'SIGKILL'] as const) {
    it(`kiln save --format oci: ${sig} while it writes; no temp file stays beside the target (after the next save for kill -9)`, async () => {
      const target = path.join(out, `save-${sig}.tar`);
      const k = startKiln(ws.root, ['save', '--format', 'oci', '-o', target, 'big:1']);
      let res;
      try {
        assert.ok(await appears([out, path.join(ws.root, 'tmp')], /kiln-save|oci-export|oci-save/, k), `save finished before it could be interrupted: ${k.output()}`);
        k.child.kill(sig);
        res = await k.exited;
      } finally {
        await stopKiln(k);
      }
      assert.ok(!existsSync(target), 'no half-written archive');
      if (sig === 'SIGKILL') {
        const again = await runKiln(['save', '-o', path.join(out, 'other.tar'), 'big:1'], { root: ws.root });
        assert.equal(again.code, 0, again.stderr);
        await fs.rm(path.join(out, 'other.tar'));
      } else {
        assertInterrupted(sig, res, k.output());
      }
      assert.deepEqual(await besideTemps(), []);
      assert.deepEqual(await leftovers(ws.root), NOTHING);
    });
  }

  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    it(`kiln load: ${sig} while it stores the layers; the store is whole and the next load works`, async () => {
      const fresh = await ws.context({});
      const root = path.join(fresh, 'root');
      const k = startKiln(root, ['load', '-i', archive]);
      let res;
      try {
        assert.ok(await appears([path.join(root, 'tmp')], /^oci-/, k), `load finished before it could be interrupted: ${k.output()}`);
        k.child.kill(sig);
        res = await k.exited;
      } finally {
        await stopKiln(k);
      }
      if (sig !== 'SIGKILL') assertInterrupted(sig, res, k.output());
      const again = await runKiln(['load', '-i', archive], { root });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await leftovers(root), NOTHING);
      const run = await runKiln(['run', 'big:1', 'cat', '/a'], { root });
      assert.equal(run.stdout, 'a\n', run.stderr);
      assert.deepEqual(await corruptBlobs(root), []);
    });
  }

  it(`kiln import, prune --all, save and load: signals at seeded random points (seed ${faultSeed})`, async () => {
    const rand = seeded(faultSeed + 1);
    const tar = await busyboxRootfsTar();
    const commands = [['import', tar, 'imp:1'], ['prune', '--all'], ['save', '-o', path.join(out, 'random.tar'), 'big:1'], ['load', '-i', archive]];
    for (let round = 0; round < 8; round++) await randomFault(ws.root, commands[round % commands.length], rand, 500);
    await fs.rm(path.join(out, 'random.tar'), { force: true });
    // a save killed with -9 may have left its temp beside the target: the next save takes it away
    const s = await runKiln(['save', '-o', path.join(out, 'random.tar'), 'big:1'], { root: ws.root });
    assert.equal(s.code, 0, s.stderr);
    await fs.rm(path.join(out, 'random.tar'));
    assert.deepEqual(await besideTemps(), []);
    assert.deepEqual(await corruptBlobs(ws.root), []);
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN echo ok > /ok\n' });
    const b = await runKiln(['build', '--no-cache', '-t', 'after:1', ctx], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    assert.equal((await runKiln(['run', 'big:1', 'cat', '/a'], { root: ws.root })).stdout, 'a\n');
  });
});
