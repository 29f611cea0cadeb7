/**
 * Solved states on disk: a layer chain's unpacked dirs (unpacking what is not yet), an
 * overlay mount of it, and the checksum of a path in it that keys a bind mount of a stage.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { kilnPaths } from '../paths.js';
import { isErrnoError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import type { Lease } from '../oci/store.js';
import type { Snapshotter } from '../snapshot/snapshotter.js';
import type { ActiveMount } from '../snapshot/types.js';
import { trace, tracing } from '../trace.js';
import { secureResolve } from './copy.js';
import { chainId, hash } from './keys.js';
import { localLayer, type SolvedLayer, type SolvedState } from './types.js';
import type { Provider } from '../oci/content.js';

export class StateMounter {
  constructor(
    private readonly root: string,
    private readonly store: Pick<Provider, 'openBlob'>,
    private readonly snapshotter: Snapshotter,
    private readonly lease?: Lease,
  ) {}

  /** Mounts the layer chain of a state: lowers unpacked once, an overlay on top. */
  async mount(layers: SolvedLayer[], readonly = false): Promise<ActiveMount> {
    const lowers = await this.layerDirs(layers);
    if (tracing) trace(`mountState: ${layers.length} lowers ready`);
    return this.snapshotter.mount(lowers, { readonly });
  }

  /** The unpacked dirs of a layer chain, lowest first (unpacking what is not yet). */
  async layerDirs(layers: SolvedLayer[]): Promise<string[]> {
    const lowers: string[] = [];
    const store = this.store;
    // leased before they are looked at: a concurrent prune then leaves them alone
    await this.lease?.protect({ layers: layers.map((l) => l.diffId) });
    for (const l of layers) {
      // a layer still being stored is already unpacked (its upper dir was adopted); the blob
      // is only read if that dir is gone, and then only once it is durable. A layer from an
      // imported cache is fetched into the store here, when it is first unpacked.
      const open = async function* (): AsyncGenerator<Buffer> {
        const ref = await localLayer(l);
        for await (const chunk of store.openBlob(ref.descriptor.digest)) yield chunk as Buffer;
      };
      lowers.push(await this.snapshotter.unpackLayer(l.diffId, open));
    }
    return lowers;
  }

  /**
   * A checksum of the files under `source` in a solved state: paths, types, modes, owners,
   * link targets and contents, not times (a re-run making the same files gives the same
   * sum). Kept per layer chain and path under cache/checksums, so a rebuild reads one file.
   */
  async mountedChecksum(state: SolvedState, source: string): Promise<string> {
    const chain = chainId(state.layers);
    const file = path.join(kilnPaths(this.root).cacheChecksums, `${hash([chain, source]).slice(7, 39)}.json`);
    const known = await fs.readFile(file, 'utf8').then(
      (t) => (JSON.parse(t) as { sum?: string }).sum,
      () => undefined,
    );
    if (known) return known;
    const sm = await this.mount(state.layers, true);
    let sum: string;
    try {
      sum = await treeChecksum(await secureResolve(sm.merged, source));
    } finally {
      await sm.release();
    }
    await fs.mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, JSON.stringify({ chain, source, sum }));
    return sum;
  }
}

/** Hashes a tree (or one file) as mountedChecksum describes; a missing path hashes as such. */
async function treeChecksum(top: string): Promise<string> {
  const h = createHash('sha256');
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await fs.lstat(abs).catch((e: unknown) => {
      if (isErrnoError(e) && e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!st) {
      h.update(`${rel}\0missing\0`);
      return;
    }
    h.update(`${rel}\0${st.mode}\0${st.uid}:${st.gid}\0`);
    if (st.isSymbolicLink()) h.update(`${await fs.readlink(abs)}\0`);
    else if (st.isFile()) {
      h.update(`${st.size}\0`);
      for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer);
    } else if (st.isDirectory()) {
      for (const name of (await fs.readdir(abs)).sort()) await visit(path.join(abs, name), `${rel}/${name}`);
    }
  };
  await visit(top, '.');
  return `sha256:${h.digest('hex')}`;
}
