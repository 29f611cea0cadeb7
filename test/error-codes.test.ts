/**
 * Error codes at the library's own throw sites: what a caller (a registry client, a retry
 * loop, the CLI) can act on without reading the message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errorCode, retryable } from '../src/errors.js';
import { ContentStore } from '../src/oci/store.js';
import { loadImage } from '../src/oci/image.js';
import { loadArchive } from '../src/oci/archive.js';
import { tempDir } from './helpers.js';

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
