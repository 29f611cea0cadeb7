/**
 * Locks held by other processes: a pid reused by an unrelated process is not a live owner
 * (its start time differs), a waiter says who holds the lock, and a waiting kiln still
 * stops on SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { rootWithBusybox, runKiln } from '../helpers.js';
import { processStartTime } from '../../src/owner.js';
import { leftovers, NOTHING, startKiln, stopKiln } from './util.js';

/** A lock file as kiln writes it: pid, host, nonce, start time, since, command. */
function lockText(pid: number, start: string, command: string): string {
  return `${pid}\n${hostname()}\nnonce-1\n${start}\n2026-01-02T03:04:05.000Z\n${command}\n`;
}

describe('locks held by other processes', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let other: ChildProcess;
  let lockFile: string;
  before(async () => {
    ({ root, cleanup } = await rootWithBusybox());
    lockFile = path.join(root, 'locks', 'index.lock');
    // an unrelated live process, as a reused pid would be
    other = spawn('sleep', ['300'], { stdio: 'ignore' });
    await new Promise((r) => other.once('spawn', r));
  });
  after(async () => {
    other.kill('SIGKILL');
    await cleanup();
  });

  it('a lock whose pid now belongs to another process (other start time) is broken at once', async () => {
    await fs.mkdir(path.dirname(lockFile), { recursive: true });
    await fs.writeFile(lockFile, lockText(other.pid!, '1', 'kiln build .'));
    const r = await runKiln(['tag', 'busybox:latest', 'reused:1'], { root, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /waiting for the lock/);
    assert.ok(!existsSync(lockFile));
  });

  it('a lock of a dead process in the old format (pid only) is broken too', async () => {
    await fs.writeFile(lockFile, '99999999\n' + hostname() + '\n123-abc\n');
    const r = await runKiln(['tag', 'busybox:latest', 'old:1'], { root, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
  });

  it('a live holder: the waiter says which process holds it, what it runs and since when, and stops on SIGTERM', async () => {
    const start = processStartTime(other.pid!)!;
    const held = lockText(other.pid!, start, 'kiln build -t app:1 .');
    await fs.writeFile(lockFile, held);
    const k = startKiln(root, ['tag', 'busybox:latest', 'waits:1']);
    try {
      await k.waitFor(/waiting for the lock/, 20_000);
      assert.match(k.output(), new RegExp(`waiting for the lock on index in ${root}, held by process ${other.pid} \\(kiln build -t app:1 \\.\\) since 2026-01-02T03:04:05.000Z`));
      k.child.kill('SIGTERM');
      const res = await k.exited;
      assert.equal(res.code, 143, k.output());
      assert.match(k.output(), /interrupted \(SIGTERM\)/);
    } finally {
      await stopKiln(k);
    }
    assert.equal(await fs.readFile(lockFile, 'utf8'), held, "the holder's lock is left alone");
    // once the holder is gone, the next command breaks the lock and goes on
    other.kill('SIGKILL');
    await new Promise((r) => other.once('exit', r));
    const r = await runKiln(['tag', 'busybox:latest', 'waits:1'], { root, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await leftovers(root), NOTHING);
  });
});
