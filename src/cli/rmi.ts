import { resolveByImageId } from '../oci/image.js';
import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { normalizeName, parseReference } from '../oci/reference.js';
import { isDigest } from '../oci/digest.js';

/**
 * Removes names from the store. A name removes that ref; a digest or ID removes every name that
 * points at it. Blobs stay until `kiln prune`. Returns the names removed; unknown names throw.
 */
export async function removeImages(root: string, names: string[]): Promise<{ removed: string[]; missing: string[] }> {
  const store = await ContentStore.open(root);
  const removed: string[] = [];
  const missing: string[] = [];
  for (const input of names) {
    let byName: string | undefined;
    if (!isDigest(input)) {
      try {
        const ref = parseReference(input);
        if (ref.digest === undefined) byName = normalizeName(input);
      } catch (e) {
        if (!/^[a-f0-9]{4,64}$/.test(input)) throw e;
      }
    }
    if (byName && (await store.deleteRef(byName))) {
      removed.push(byName);
      continue;
    }
    const desc =
      (await store.resolve(input).catch((e: unknown) => {
        if (byName) return undefined;
        throw e;
      })) ?? (await resolveByImageId(store, input));
    const refs = desc ? (await store.listRefs()).filter((r) => r.descriptor.digest === desc.digest) : [];
    if (refs.length === 0) {
      missing.push(input);
      continue;
    }
    for (const r of refs) if (await store.deleteRef(r.name)) removed.push(r.name);
  }
  return { removed, missing };
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('rmi')
    .description('Remove image names from the kiln store (kiln prune then frees the space)')
    .argument('<names...>', 'image names, digests or IDs')
    .action(async (names: string[]) => {
      const { removed, missing } = await removeImages(globals().root, names);
      for (const n of removed) process.stdout.write(`Untagged: ${n}\n`);
      if (missing.length > 0) {
        throw new KilnError(`no such image${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`, { hint: 'kiln images lists what the store holds' });
      }
    });
};
