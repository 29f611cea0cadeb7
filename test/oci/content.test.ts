import { promises as fsp } from 'node:fs';
import { ContentStore } from '../../src/oci/store.js';
import { contentSuite } from './content-suite.js';
import { tempDir } from './util.js';

contentSuite('ContentStore', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const hourAgo = new Date(Date.now() - 3600_000);
  return {
    store,
    backdate: (digest) => fsp.utimes(store.blobPath(digest), hourAgo, hourAgo),
    corrupt: (digest, bytes) => fsp.writeFile(store.blobPath(digest), bytes),
    leftovers: () => fsp.readdir(store.tmpDir()),
  };
});
