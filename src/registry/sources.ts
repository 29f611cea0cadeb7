/**
 * What kiln remembers about registries, beside the store: which repositories a blob is known
 * to be in (pulled from or pushed to), so a push to another repository on the same host can
 * mount it instead of uploading it; and the repo digests of an image (`name@sha256:…` it was
 * pulled by or pushed as), for `kiln images --digests`. Both are hints: a wrong or stale
 * entry costs a failed mount or a shown digest, never a wrong image.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestHex } from '../oci/digest.js';
import { writeFileAtomic } from '../fsutil.js';
import { kilnPaths } from '../paths.js';

async function readList(file: string): Promise<string[]> {
  try {
    const v = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

async function addToList(file: string, items: string[], max: number): Promise<void> {
  const have = await readList(file);
  const merged = [...items, ...have.filter((h) => !items.includes(h))].slice(0, max);
  if (merged.length === have.length && merged.every((m, i) => m === have[i])) return;
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(merged));
}

/** Records that the blobs `digests` are in `host`/`repository` (most recent first, at most 8 per blob). */
export async function recordBlobSources(root: string, host: string, repository: string, digests: string[]): Promise<void> {
  const dir = kilnPaths(root).registrySources;
  const where = `${host}/${repository}`;
  await Promise.all([...new Set(digests)].map((d) => addToList(path.join(dir, `${digestHex(d)}.json`), [where], 8)));
}

/** Repositories on `host` the blob is known to be in (their paths, without the host). */
export async function blobSources(root: string, host: string, digest: string): Promise<string[]> {
  const all = await readList(path.join(kilnPaths(root).registrySources, `${digestHex(digest)}.json`));
  const prefix = `${host}/`;
  return all.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
}

/** Records `repoDigest` ("localhost:5000/app@sha256:…") for the image whose manifest (or index) is `manifestDigest`. */
export async function recordRepoDigest(root: string, manifestDigest: string, repoDigest: string): Promise<void> {
  await addToList(path.join(kilnPaths(root).registryRepoDigests, `${digestHex(manifestDigest)}.json`), [repoDigest], 32);
}

/** The repo digests recorded for an image, most recent first. */
export function repoDigests(root: string, manifestDigest: string): Promise<string[]> {
  return readList(path.join(kilnPaths(root).registryRepoDigests, `${digestHex(manifestDigest)}.json`));
}
