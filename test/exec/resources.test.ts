/**
 * Build --ulimit and --memory for real: the limits a RUN sees, the memory limit enforced by
 * the kernel through the runtime's cgroup, and bad values refused before anything runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';
import { memoryLimitProblem, parseMemory, parseUlimit } from '../../src/exec/spec.js';
import { KilnError } from '../../src/errors.js';

const skip = !isRoot() ? 'needs root to run containers' : memoryLimitProblem();

describe('RUN resource limits', { skip }, () => {
  let ws: Workspace | undefined;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws?.cleanup();
  });

  async function build(dockerfile: string, args: string[]): Promise<{ code: number; out: string }> {
    const ctx = await ws!.context({ Dockerfile: dockerfile });
    const r = await runKiln(['build', '--no-cache', '--progress', 'plain', '--network', 'none', ...args, ctx], { root: ws!.root, timeoutMs: 120_000 });
    return { code: r.code, out: r.stdout + r.stderr };
  }

  test('--ulimit sets soft and hard limits of every RUN', async () => {
    const r = await build('FROM busybox\nRUN echo "nofile=$(ulimit -n)/$(ulimit -Hn) nproc=$(ulimit -u)"\n', ['--ulimit', 'nofile=1000:2000', '--ulimit', 'nproc=300']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /nofile=1000\/2000 nproc=300/);
  });

  test('--memory: the cgroup limit is the one asked for, and a step that needs more is killed', async () => {
    const shown = await build('FROM busybox\nRUN echo "limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"\n', ['--memory', '48m']);
    assert.equal(shown.code, 0, shown.out);
    assert.match(shown.out, new RegExp(`limit=${48 * 1024 * 1024}\\b`));
    // dd holds a 128 MiB buffer: over the limit (and no swap to go to), the kernel kills it
    const killed = await build('FROM busybox\nRUN dd if=/dev/zero of=/dev/null bs=128M count=1\n', ['--memory', '48m']);
    assert.notEqual(killed.code, 0);
    assert.match(killed.out, /exit code: 137/);
    const fits = await build('FROM busybox\nRUN dd if=/dev/zero of=/dev/null bs=128M count=1 && echo fits\n', ['--memory', '512m']);
    assert.equal(fits.code, 0, fits.out);
  });

  test('bad --ulimit and --memory values are refused with what to write', async () => {
    const ctx = await ws!.context({ Dockerfile: 'FROM busybox\nRUN true\n' });
    for (const [args, re] of [
      [['--ulimit', 'nofiles=10'], /unknown limit "nofiles"/],
      [['--ulimit', 'nofile=20:10'], /soft limit 20 is above the hard limit 10/],
      [['--memory', 'lots'], /invalid --memory "lots"/],
      [['--memory', '1m'], /below the minimum of 6 MiB/],
    ] as Array<[string[], RegExp]>) {
      const r = await runKiln(['build', ...args, ctx], { root: ws!.root });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /hint: write --/);
    }
  });
});

test('--ulimit and --memory values as docker writes them', () => {
  assert.deepEqual(parseUlimit('nofile=1024:2048'), { name: 'nofile', soft: 1024, hard: 2048 });
  assert.deepEqual(parseUlimit('nproc=64'), { name: 'nproc', soft: 64, hard: 64 });
  assert.equal(parseMemory('512m'), 512 * 1024 * 1024);
  assert.equal(parseMemory('2g'), 2 * 1024 ** 3);
  assert.equal(parseMemory('67108864'), 67108864);
  assert.equal(parseMemory('1.5g'), 1.5 * 1024 ** 3);
  for (const bad of ['nofile', 'nofile=-1', 'core=1:x']) assert.throws(() => parseUlimit(bad), KilnError);
});
