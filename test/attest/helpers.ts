/** Reading what a build attached: the index, its attestation manifests and their statements, from a kiln root or an OCI layout. */
import { promises as fs } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { ContentStore } from '../../src/oci/store.js';
import { walk } from '../../src/oci/walk.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../../src/oci/types.js';
import type { Statement } from '../../src/attest/intoto.js';

export interface Attached {
  top: Descriptor;
  index: ImageIndex;
  /** Per attestation manifest: its entry, the manifest, its config and statements. */
  attestations: Array<{ entry: Descriptor; manifest: ImageManifest; config: Record<string, unknown>; statements: Statement[]; raw: Buffer[] }>;
}

export async function readAttached(root: string, name: string): Promise<Attached> {
  const store = await ContentStore.open(root);
  const top = await store.resolve(name);
  if (!top) throw new Error(`${name} is not in ${root}`);
  const index = await store.readJSON<ImageIndex>(top.digest);
  const attestations: Attached['attestations'] = [];
  for (const entry of index.manifests) {
    if (entry.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest') continue;
    const manifest = await store.readJSON<ImageManifest>(entry.digest);
    const config = await store.readJSON<Record<string, unknown>>(manifest.config.digest);
    const raw = await Promise.all(manifest.layers.map((l) => store.readBlob(l.digest)));
    attestations.push({ entry, manifest, config, statements: raw.map((b) => JSON.parse(b.toString('utf8')) as Statement), raw });
  }
  return { top, index, attestations };
}

/** Every blob the image reaches, gzip layers decompressed (to look for text in it). */
export async function reachableBytes(root: string, top: Descriptor): Promise<Buffer[]> {
  const store = await ContentStore.open(root);
  const out: Buffer[] = [];
  await walk(store, [top], async (node) => {
    const b = await store.readBlob(node.descriptor.digest);
    out.push(/gzip$/.test(node.descriptor.mediaType ?? '') ? gunzipSync(b) : b);
  });
  return out;
}

/** sha256 hex of a file. */
export async function fileSha256(file: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(await fs.readFile(file)).digest('hex');
}

export function blobPath(root: string, digest: string): string {
  return path.join(root, 'blobs', 'sha256', digest.slice(7));
}
