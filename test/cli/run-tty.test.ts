/**
 * `kiln run -t` and `-i` in a real terminal (a pty from util-linux `script`): the process
 * gets a pty of its own with TERM set, our terminal's size and its changes (SIGWINCH), an
 * interactive shell with -it, ^C delivered to the container's process, and our terminal's
 * modes restored when kiln is stopped.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { haveTool, isRoot, kilnBin, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { leftovers, NOTHING, processesWith, signo, sleep } from '../faults/util.js';
import { childrenOf, inPty, kilnCommand, shq, terminalOf } from './pty.js';

const skip = !isRoot() ? 'needs root (runc over overlayfs)' : !haveTool('script') ? 'needs script (util-linux)' : false;

describe('kiln run -t and -i', { skip }, () => {
  let ws: Workspace;
  let shared: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    ws = await workspace();
    shared = await tempDir('kiln-tty-');
  });
  after(async () => {
    await shared?.cleanup();
    await ws?.cleanup();
  });
  const kiln = (args: string[]): string => kilnCommand(ws.root, args);

  it('-t gives the process a pty of its own, with TERM=xterm and our terminal size', async () => {
    const pty = inPty(`stty rows 33 cols 111; ${kiln(['run', '-t', 'busybox', 'sh', '-c', 'tty; echo "term=$TERM"; stty size; [ -t 0 ] && [ -t 1 ] && echo both-tty'])}`);
    try {
      assert.equal(await pty.exited, 0, pty.output());
      const out = pty.output().replace(/\r/g, '');
      assert.match(out, /^\/dev\/pts\/\d+$/m);
      assert.match(out, /^term=xterm$/m);
      assert.match(out, /^33 111$/m);
      assert.match(out, /^both-tty$/m);
    } finally {
      await pty.stop();
    }
    assert.deepEqual(await leftovers(ws.root), NOTHING);
  });

  it('-t with -u: the pty belongs to that user, who can write to it', async () => {
    const pty = inPty(kiln(['run', '-t', '-u', '65534', 'busybox', 'sh', '-c', 'id -u; stat -c "%u %a" "$(tty)"; echo hi > "$(tty)" && echo wrote']));
    try {
      assert.equal(await pty.exited, 0, pty.output());
      assert.match(pty.output().replace(/\r/g, ''), /^65534\n65534 620\nhi\nwrote$/m);
    } finally {
      await pty.stop();
    }
  });

  it('a TERM given with -e is kept, and without -t the process has no terminal', async () => {
    const r = await runKiln(['run', '-e', 'TERM=vt100', 'busybox', 'sh', '-c', 'echo "term=$TERM"; tty || true'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^term=vt100$/m);
    assert.match(r.stdout, /not a tty/);
    const pty = inPty(kiln(['run', '-t', '-e', 'TERM=vt100', 'busybox', 'sh', '-c', 'echo "term=$TERM"']));
    try {
      assert.equal(await pty.exited, 0, pty.output());
      assert.match(pty.output(), /term=vt100/);
    } finally {
      await pty.stop();
    }
  });

  it('a change of our terminal size reaches the container (SIGWINCH)', async () => {
    const ready = path.join(shared.dir, 'winch-ready');
    const script = 'stty size; touch /s/winch-ready; i=0; while [ "$(stty size)" = "30 100" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo "now $(stty size)"';
    const pty = inPty(`stty rows 30 cols 100; echo "pid=$$"; exec ${kiln(['run', '-t', '-v', `${shared.dir}:/s`, 'busybox', 'sh', '-c', script])}`);
    try {
      await pty.waitFor(/pid=\d+/);
      const pid = Number(/pid=(\d+)/.exec(pty.output())![1]);
      while (!existsSync(ready) && pty.child.exitCode === null) await sleep(50);
      // the size set on the terminal (as a terminal emulator does when its window is resized)
      const r = spawnSync('stty', ['-F', terminalOf(pid), 'rows', '40', 'cols', '120']);
      assert.equal(r.status, 0, String(r.stderr));
      assert.equal(await pty.exited, 0, pty.output());
      const out = pty.output().replace(/\r/g, '');
      assert.match(out, /^30 100$/m);
      assert.match(out, /^now 40 120$/m);
    } finally {
      await pty.stop();
    }
  });

  it('-it runs an interactive shell: what is typed goes to it, its exit code is kiln\'s', async () => {
    const pty = inPty(kiln(['run', '-it', 'busybox', 'sh']));
    try {
      await pty.waitFor(/\/ # /);
      pty.type('echo "sum=$((6*7))"\r');
      await pty.waitFor(/sum=42/);
      pty.type('exit 3\r');
      assert.equal(await pty.exited, 3, pty.output());
    } finally {
      await pty.stop();
    }
    assert.deepEqual(await leftovers(ws.root), NOTHING);
  });

  it('^C with -it interrupts the container\'s process (not kiln)', async () => {
    const pty = inPty(kiln(['run', '-it', 'busybox', 'sh', '-c', 'trap "echo got-int; exit 7" INT; echo ready; while :; do sleep 1; done']));
    try {
      await pty.waitFor(/ready/);
      pty.type('\x03');
      assert.equal(await pty.exited, 7, pty.output());
      assert.match(pty.output(), /got-int/);
      assert.doesNotMatch(pty.output(), /interrupted/);
    } finally {
      await pty.stop();
    }
    assert.deepEqual(await leftovers(ws.root), NOTHING);
  });

  it('with -t alone, ^C reaches the container\'s process and other keys do not', async () => {
    const pty = inPty(kiln(['run', '-t', 'busybox', 'sh', '-c', 'trap "echo got-int; exit 7" INT; echo ready; read x; echo "read:$x"; exit 0']));
    try {
      await pty.waitFor(/ready/);
      pty.type('typed\r');
      pty.type('\x03');
      assert.equal(await pty.exited, 7, pty.output());
      assert.match(pty.output(), /got-int/);
      assert.doesNotMatch(pty.output(), /read:/);
    } finally {
      await pty.stop();
    }
  });

  it('-i without -t passes piped input, and without -i the process reads nothing', async () => {
    const piped = await runKiln(['run', '-i', 'busybox', 'sh', '-c', 'cat; echo end'], { root: ws.root, input: 'line one\nline two\n' });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, 'line one\nline two\nend\n');
    const closed = await runKiln(['run', 'busybox', 'sh', '-c', 'cat; echo end'], { root: ws.root, input: 'ignored\n' });
    assert.equal(closed.code, 0, closed.stderr);
    assert.equal(closed.stdout, 'end\n');
  });

  it('-t without a terminal and -it with piped input are clear errors', async () => {
    const noTerminal = await runKiln(['run', '-t', 'busybox', 'true'], { root: ws.root });
    assert.equal(noTerminal.code, 1);
    assert.match(noTerminal.stderr, /^error: cannot allocate a tty: kiln is not attached to a terminal/m);
    assert.match(noTerminal.stderr, /hint: drop -t/);
    // stdout a terminal, stdin a pipe
    const pty = inPty(`echo x | ${kiln(['run', '-it', 'busybox', 'cat'])}`);
    try {
      assert.equal(await pty.exited, 1, pty.output());
      assert.match(pty.output(), /error: the input device is not a TTY/);
    } finally {
      await pty.stop();
    }
    assert.deepEqual(await leftovers(ws.root), NOTHING);
  });

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${sig} to kiln run -t: no container is left and our terminal's modes are restored`, async () => {
      const before = path.join(shared.dir, `modes-before-${sig}`);
      const afterFile = path.join(shared.dir, `modes-after-${sig}`);
      const marker = `600.${signo(sig)}1`;
      const pty = inPty(`stty -g > ${shq(before)}; echo "pid=$$"; ${kiln(['run', '-t', 'busybox', 'sleep', marker])}; stty -g > ${shq(afterFile)}`);
      try {
        await pty.waitFor(/pid=\d+/);
        const shell = Number(/pid=(\d+)/.exec(pty.output())![1]);
        for (let i = 0; i < 100 && processesWith(`sleep ${marker}`, [], true).length === 0; i++) await sleep(100);
        assert.equal(processesWith(`sleep ${marker}`, [], true).length, 1, pty.output());
        // the runtime has put the terminal in raw mode meanwhile
        const modes = await fs.readFile(before, 'utf8');
        const now = spawnSync('stty', ['-g', '-F', terminalOf(shell)], { encoding: 'utf8' }).stdout;
        assert.notEqual(now, modes);
        const kilnPid = childrenOf(shell)[0];
        assert.ok(kilnPid !== undefined && readFileSync(`/proc/${kilnPid}/cmdline`, 'utf8').includes(kilnBin), 'the kiln process');
        process.kill(kilnPid, sig);
        await pty.exited;
        assert.equal((await fs.readFile(afterFile, 'utf8')).trim(), modes.trim());
        assert.match(pty.output(), new RegExp(`interrupted \\(${sig}\\)`));
      } finally {
        await pty.stop();
      }
      assert.deepEqual(await leftovers(ws.root), NOTHING);
      assert.deepEqual(processesWith(`sleep ${marker}`, [], true), []);
    });
  }

  it('kill -9 of kiln run -t: the next command removes the container and its runtime', async () => {
    const marker = '600.91';
    const pty = inPty(`echo "pid=$$"; ${kiln(['run', '-t', '--name', 'tty-killed', 'busybox', 'sleep', marker])}; echo after-kiln`);
    try {
      await pty.waitFor(/pid=\d+/);
      const shell = Number(/pid=(\d+)/.exec(pty.output())![1]);
      for (let i = 0; i < 100 && processesWith(`sleep ${marker}`, [], true).length === 0; i++) await sleep(100);
      assert.equal(processesWith(`sleep ${marker}`, [], true).length, 1, pty.output());
      process.kill(childrenOf(shell)[0], 'SIGKILL');
      await pty.waitFor(/after-kiln/);
      assert.equal((await runKiln(['images'], { root: ws.root })).code, 0);
      assert.deepEqual(await leftovers(ws.root), NOTHING);
      assert.deepEqual(processesWith(`sleep ${marker}`, [], true), []);
      assert.equal(await pty.exited, 0, pty.output());
    } finally {
      await pty.stop();
    }
    const again = await runKiln(['run', '--name', 'tty-killed', 'busybox', 'true'], { root: ws.root });
    assert.equal(again.code, 0, again.stderr);
  });
});
