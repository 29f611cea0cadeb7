/**
 * SIGINT, SIGTERM, SIGHUP and kill -9 of a `kiln run` with a name and a bind (and with a tty,
 * including its terminal closing): no container, mount or name is left behind, by kiln itself
 * or, after kill -9, by the next command; the name can be taken again at once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { haveTool, isRoot, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { leftovers, NOTHING, processesWith, signo, sleep, startKiln, stopKiln } from '../faults/util.js';
import { childrenOf, inPty, kilnCommand } from './pty.js';

const skip = isRoot() ? false : 'needs root (runc over overlayfs)';

describe('signals during kiln run --name -v', { skip }, () => {
  let ws: Workspace;
  let shared: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    ws = await workspace();
    shared = await tempDir('kiln-runsig-');
  });
  after(async () => {
    await shared?.cleanup();
    await ws?.cleanup();
  });

  const assertNameFree = async (name: string): Promise<void> => {
    const r = await runKiln(['run', '--name', name, 'busybox', 'echo', 'free'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'free\n');
  };

  for (const [n, sig] of (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGKILL'] as const).entries()) {
    it(`${sig} to kiln run: the container, its mounts and its name go${sig === 'SIGKILL' ? ' (with the next command)' : ''}`, async () => {
      const marker = `600.${40 + n}`;
      const up = path.join(shared.dir, `up-${n}`);
      const k = startKiln(ws.root, ['run', '--name', `sig-${n}`, '-v', `${shared.dir}:/s`, '-v', `${shared.dir}:/ro:ro`, 'busybox', 'sh', '-c', `touch /s/up-${n}; exec sleep ${marker}`]);
      let res;
      try {
        while (!(existsSync(up) && processesWith(`sleep ${marker}`, [], true).length === 1) && k.child.exitCode === null) await sleep(20);
        k.child.kill(sig);
        res = await k.exited;
      } finally {
        await stopKiln(k);
      }
      if (sig === 'SIGKILL') assert.equal((await runKiln(['images'], { root: ws.root })).code, 0);
      else {
        assert.equal(res.code, 128 + signo(sig), k.output());
        assert.match(k.output(), new RegExp(`interrupted \\(${sig}\\)`));
        assert.doesNotMatch(k.output(), /\n\s+at |internal error/);
      }
      assert.deepEqual(await leftovers(ws.root), NOTHING);
      assert.deepEqual(processesWith(`sleep ${marker}`, [], true), []);
      await assertNameFree(`sig-${n}`);
    });
  }

  it('the terminal closing under kiln run -t --name (SIGHUP from the kernel) leaves nothing', { skip: haveTool('script') ? false : 'needs script (util-linux)' }, async () => {
    const marker = '600.49';
    const pty = inPty(kilnCommand(ws.root, ['run', '-it', '--name', 'hangup', '-v', `${shared.dir}:/s`, 'busybox', 'sh', '-c', `echo ready; exec sleep ${marker}`]));
    try {
      await pty.waitFor(/ready/);
      while (processesWith(`sleep ${marker}`, [], true).length === 0) await sleep(20);
      const kiln = childrenOf(pty.child.pid!);
      assert.equal(kiln.length, 1);
      // script dies: the terminal's master side closes, and its session gets SIGHUP
      pty.child.kill('SIGKILL');
      await pty.exited;
      for (let i = 0; i < 200 && existsSync(`/proc/${kiln[0]}`); i++) await sleep(50);
      assert.equal(existsSync(`/proc/${kiln[0]}/stat`) && !(await fs.readFile(`/proc/${kiln[0]}/stat`, 'utf8')).includes(') Z'), false, 'kiln ended');
    } finally {
      await pty.stop();
    }
    assert.deepEqual(await leftovers(ws.root), NOTHING);
    assert.deepEqual(processesWith(`sleep ${marker}`, [], true), []);
    await assertNameFree('hangup');
  });
});
