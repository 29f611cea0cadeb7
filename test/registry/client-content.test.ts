/**
 * The content suite (test/oci/content-suite.ts) over a registry repository: reads through
 * RemoteRepository.provider(), writes through pushBlob (a writer buffers and pushes on commit).
 * The registry has no refs, leases or GC in the store's sense; those parts are skipped.
 */
import type { TestContext } from 'node:test';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import { canonicalJSON } from '../../src/oci/canonical.js';
import type { BlobWriter, Ingester, Provider } from '../../src/oci/content.js';
import { digestHex, digestOf } from '../../src/oci/digest.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { RemoteRepository } from '../../src/registry/types.js';
import { contentSuite } from '../oci/content-suite.js';
import { haveRegistry, startRegistry } from './harness.js';

/** An Ingester that pushes each committed blob to `repo`. */
function pushingIngester(repo: RemoteRepository): Ingester {
  const writer = async (): Promise<BlobWriter> => {
    let parts: Buffer[] = [];
    let written = 0;
    let open = true;
    return {
      get written() {
        return written;
      },
      write: async (chunk) => {
        if (!open) throw new Error('blob writer used after commit or abort');
        const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        parts.push(b);
        written += b.length;
      },
      commit: async (expected = {}) => {
        if (!open) throw new Error('blob writer used after commit or abort');
        open = false;
        const data = Buffer.concat(parts);
        parts = [];
        const digest = digestOf(data);
        if (expected.digest !== undefined && expected.digest !== digest) throw new KilnError(`digest mismatch for a blob: expected ${expected.digest}, got ${digest}`, { code: 'invalid' });
        if (expected.size !== undefined && expected.size !== data.length) throw new KilnError(`size mismatch for blob ${digest}: expected ${expected.size} bytes, got ${data.length}`, { code: 'invalid' });
        await repo.pushBlob({ digest, size: data.length }, async function* () {
          yield data;
        });
        return { digest, size: data.length };
      },
      abort: async () => {
        open = false;
        parts = [];
      },
    };
  };
  const fromStream = async (src: NodeJS.ReadableStream | AsyncIterable<Buffer>, expectedDigest?: string) => {
    const w = await writer();
    try {
      for await (const c of src as AsyncIterable<Buffer | string>) await w.write(c);
      return await w.commit({ digest: expectedDigest });
    } catch (e) {
      await w.abort();
      throw e;
    }
  };
  return {
    writer,
    writeBlob: (data, expectedDigest) => fromStream([typeof data === 'string' ? Buffer.from(data) : data] as unknown as AsyncIterable<Buffer>, expectedDigest),
    writeBlobFromStream: fromStream,
    writeJSON: async (value, mediaType) => {
      const r = await fromStream([Buffer.from(canonicalJSON(value))] as unknown as AsyncIterable<Buffer>);
      return { mediaType, ...r };
    },
  };
}

async function registryStore(t: TestContext) {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const c = new RegistryClient({ backoffMs: 10 });
  t.after(() => c.close());
  const repo = c.repository(`${reg.host}/team/suite`);
  const v2 = path.join(reg.dataDir, 'docker', 'registry', 'v2');
  const store: Provider & Ingester = { ...repo.provider(), ...pushingIngester(repo) };
  return {
    store,
    // the registry's own file for the blob, rewritten behind its back
    corrupt: async (digest: string, bytes: Buffer) => {
      const hex = digestHex(digest);
      await fs.writeFile(path.join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), bytes);
    },
    // upload sessions left open in the repository
    leftovers: async () => fs.readdir(path.join(v2, 'repositories', 'team', 'suite', '_uploads')).catch(() => []),
  };
}

if (haveRegistry()) {
  contentSuite('registry provider', registryStore, { refs: false, leases: false, gc: false });
} else {
  console.log('# skipped: the registry content suite needs /usr/bin/docker-registry');
}
