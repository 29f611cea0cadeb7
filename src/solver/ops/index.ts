/**
 * The real ops: a step runs on an overlay of its parent's layers (or, for a file operation
 * that can, straight into an empty upper dir), and its upper dir becomes its layer.
 */
import type { ImageVertex, ScratchVertex } from '../../graph/types.js';
import type { ActiveMount } from '../../snapshot/types.js';
import { trace, tracing } from '../../trace.js';
import type { LayerCommitter } from '../commit.js';
import { imageKey } from '../keys.js';
import type { Ops, StepContext } from '../scheduler.js';
import { solvedLayer, type LayerRef, type SolvedLayer, type SolvedState, type StepVertex } from '../types.js';
import type { OpDeps } from './deps.js';
import { runExec } from './exec.js';
import { directSource, runFileOp } from './file.js';
import type { ImageResolver } from './source.js';

export type { OpDeps } from './deps.js';
export { runtimeExecutor, type Executor } from './exec.js';
export { cacheMountDir, cacheMountId, cacheMountName } from './cachemount.js';
export { GitSources, HttpSources, localImages, type ImageResolver } from './source.js';

/** KILN_DIRECT_FILEOPS=0 mounts for every file operation (to compare the two paths). */
const DIRECT_FILE_OPS = process.env.KILN_DIRECT_FILEOPS !== '0';

export class BuildOps implements Ops {
  constructor(
    private readonly deps: OpDeps,
    private readonly images: ImageResolver,
    private readonly committer: LayerCommitter,
  ) {}

  async source(v: ScratchVertex | ImageVertex): Promise<{ key: string; layers: SolvedLayer[] }> {
    if (v.kind === 'scratch') return { key: v.digest, layers: [] };
    const refs = await this.images.layers(v);
    await this.deps.lease?.add(v.manifestDigest, ...refs.map((l) => l.descriptor.digest));
    return { key: imageKey(v.manifestDigest), layers: refs.map(solvedLayer) };
  }

  async run(v: StepVertex, baseLayers: SolvedLayer[], others: SolvedState[], ctx: StepContext): Promise<SolvedLayer | undefined> {
    const deps = this.deps;
    const tm = Date.now();
    const direct = v.kind === 'file' && DIRECT_FILE_OPS ? await directSource(deps, v, baseLayers, others) : undefined;
    const mount = direct !== undefined ? deps.snapshotter.scratch() : await deps.states.mount(baseLayers);
    const extraMounts: ActiveMount[] = [];
    let keepUpperAs: string | undefined;
    let store: (() => Promise<LayerRef>) | undefined;
    let result: SolvedLayer | undefined;
    try {
      const t0 = Date.now();
      let copiedXattrs = false;
      if (v.kind === 'exec') await runExec(deps, v, others, mount, extraMounts, ctx);
      else copiedXattrs = await runFileOp(deps, v, others, mount, extraMounts, direct || undefined);
      const t1 = Date.now();
      // a file operation sets no xattrs, except a copy of files that have some and an ADD
      // unpacking an archive's PAX xattrs
      const unpacks = v.kind === 'file' && v.action.op === 'copy' && (v.action.unpackArchives || v.action.unpackUrls === true);
      const named = await this.committer.nameLayer(mount.upper, { noNewXattrs: v.kind === 'file' && !unpacks && !copiedXattrs, lowers: mount.lowers });
      keepUpperAs = named.diffId;
      if (named.stored) result = solvedLayer(named.stored);
      else store = named.store;
      if (tracing) trace(`${v.name}: ${direct !== undefined ? 'direct (no mount)' : 'mount'} ${t0 - tm}ms run ${t1 - t0}ms diff+name ${Date.now() - t1}ms`);
    } finally {
      const tr = Date.now();
      // the upper dir becomes an unpacked layer: leased first, so no prune takes it away
      if (keepUpperAs) await deps.lease?.protect({ layers: [keepUpperAs] }).catch(() => undefined);
      for (const m of extraMounts.reverse()) await m.release().catch(() => undefined);
      await mount.release({ keepUpperAs });
      if (tracing) trace(`${v.name}: release ${Date.now() - tr}ms`);
    }
    if (store) {
      const t = Date.now();
      const ready = store().then((ref) => {
        if (tracing) trace(`${v.name}: layer stored in the background ${Date.now() - t}ms`);
        return ref;
      });
      ready.catch(() => undefined);
      result = { diffId: keepUpperAs!, ready };
    }
    return result;
  }
}
