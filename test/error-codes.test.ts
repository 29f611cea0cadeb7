/**
 * Error codes at the library's own throw sites: what a caller (a registry client, a retry
 * loop, the CLI) can act on without reading the message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { errorCode, retryable } from '../src/errors.js';
import { ContentStore } from '../src/oci/store.js';
import { loadImage } from '../src/oci/image.js';
import { loadArchive } from '../src/oci/archive.js';
import { withFileLock } from '../src/oci/lock.js';
import { repoRoot, tempDir } from './helpers.js';

test('a missing image is not-found; a damaged archive is invalid; neither is retryable', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = await ContentStore.open(path.join(dir, 'root'));
    const missing = await loadImage(store, 'nothing-here:1').then(() => undefined, (e: unknown) => e);
    assert.equal(errorCode(missing), 'not-found');
    assert.equal(retryable(missing), false);
    const bad = path.join(dir, 'bad.tar');
    await fs.writeFile(bad, Buffer.alloc(700, 0x41));
    const damaged = await loadArchive(store, bad).then(() => undefined, (e: unknown) => e);
    assert.equal(errorCode(damaged), 'invalid', String(damaged));
  } finally {
    await cleanup();
  }
});

test('a lock another process keeps past the timeout is a conflict', async () => {
  const { dir, cleanup } = await tempDir();
  const file = path.join(dir, 'x.lock');
  const ready = path.join(dir, 'ready');
  const lockModule = path.join(repoRoot, 'dist', 'src', 'oci', 'lock.js');
  // the holder is another process: in one process, waiters queue behind the holder instead
  const holder = spawn(process.execPath, [
    '--input-type=module',
    '-e',
    `import { withFileLock } from ${JSON.stringify(lockModule)}; import { writeFileSync } from 'node:fs';
     await withFileLock(${JSON.stringify(file)}, async () => { writeFileSync(${JSON.stringify(ready)}, ''); await new Promise((r) => setTimeout(r, 5000)); });`,
  ], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 200 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(ready), 'the holder took the lock');
    const timedOut = await withFileLock(file, async () => undefined, { timeoutMs: 300 }).then(() => undefined, (e: unknown) => e);
    assert.equal(errorCode(timedOut), 'conflict', String(timedOut));
    assert.equal(retryable(timedOut), false);
  } finally {
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    await cleanup();
  }
});
