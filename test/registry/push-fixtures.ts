/** What the push tests share: images made in a store without a build, and a registry's tags. */
import { randomBytes } from 'node:crypto';
import { writeImage } from '../../src/oci/image.js';
import { writeLayer } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import type { Descriptor } from '../../src/oci/types.js';

/** Text that compresses, of about `bytes` bytes. */
export function textData(bytes: number, seed = 'kiln'): Buffer {
  const line = `${seed}: the quick brown fox jumps over the lazy dog 0123456789\n`;
  return Buffer.from(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes));
}

export function randomData(bytes: number): Buffer {
  return randomBytes(bytes);
}

/**
 * Stores an image whose layers are plain tars (as builds make them), one file per layer, with
 * fixed mtimes: the same contents give the same image in any root.
 */
export async function makeImage(root: string, name: string | undefined, files: Buffer[], architecture = 'amd64'): Promise<{ manifest: Descriptor; layers: Descriptor[] }> {
  const store = await ContentStore.open(root);
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const [i, content] of files.entries()) {
    const w = await writeLayer(store, [{ path: `data/layer${i}.bin`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, content, size: content.length }], {
      compression: 'none',
    });
    layers.push(w.descriptor);
    diffIds.push(w.diffId);
  }
  const { manifestDescriptor } = await writeImage(
    store,
    { config: { architecture, os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }, layers },
    name === undefined ? [] : [name],
  );
  return { manifest: manifestDescriptor, layers };
}

/** The tags the registry has for `name` ([] when it has no such repository). */
export async function registryTags(url: string, name: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${name}/tags/list`);
  if (res.status === 404) return [];
  const body = (await res.json()) as { tags?: string[] | null };
  return body.tags ?? [];
}
