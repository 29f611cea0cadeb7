/**
 * Layer committing: a finished step's upper dir → a layer (named at once, its blob stored
 * now or in the background) → the content store, and the cache records that let a later
 * build skip the step. Blobs are written unsynced and committed together when the solve
 * settles (one fsync round), then the records are written; an interrupted solve removes them.
 */
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { KilnError } from '../errors.js';
import { layerDiffId, writeLayer } from '../oci/layer.js';
import type { Lease } from '../oci/store.js';
import { MediaType, type Descriptor } from '../oci/types.js';
import type { CacheRecords } from '../cache/records.js';
import type { Snapshotter } from '../snapshot/snapshotter.js';
import { trace, tracing } from '../trace.js';
import type { DefinitionHit, StepCache } from './scheduler.js';
import { solvedLayer, type LayerRef, type SolvedLayer } from './types.js';
import type { StagingIngester } from '../oci/content.js';
import type { ImportedCache, ImportedLayer } from '../cache/imported.js';

/**
 * Layers up to this many bytes of file content are named by a digest-only pass and stored
 * in the background; bigger ones are written in one pass (reading them twice costs more
 * than the overlap gains).
 */
const BACKGROUND_LAYER_MAX = 64 << 20;
/** Layers up to this size keep their tar bytes from the naming pass, so storing is one write. */
const KEEP_TAR_MAX = 8 << 20;

/** A step's layer as soon as it is named: `stored` when written already, else `store()` writes it (after the upper dir is adopted). */
export type NamedLayer = { diffId: string; stored: LayerRef; store?: undefined } | { diffId: string; stored?: undefined; store: () => Promise<LayerRef> };

/** A layer of an imported cache in a solved chain: its blob fetched when something reads it. */
function importedLayer(l: ImportedLayer): SolvedLayer {
  return { diffId: l.diffId, ready: Promise.resolve({ descriptor: l.descriptor, diffId: l.diffId }), fetch: () => l.fetch() };
}

export interface CommitterOptions {
  store: Pick<StagingIngester, 'touchBlob' | 'writeTempUnsynced' | 'commitUnsynced' | 'tempPath' | 'commitFile'>;
  snapshotter: Snapshotter;
  records: CacheRecords;
  lease?: Lease;
  sourceDateEpoch?: number;
  /** Records of imported caches (--cache-from), consulted after the local ones. */
  imported?: Pick<ImportedCache, 'step' | 'byDefinition'>;
}

export class LayerCommitter implements StepCache {
  /** Bytes of the layers this solve wrote (compressed), for cache accounting. */
  addedBytes = 0;
  /** Layer blobs written but not yet fsynced nor in blobs/ (committed together at the end). */
  private readonly uncommitted: Array<{ tmp: string; digest: string }> = [];
  /** Cache records of executed steps, written once their layers are committed. */
  private readonly pendingRecords: Array<{ key: string; description: string; createdAt: string; ready?: Promise<LayerRef> }> = [];
  /** Steps found in an imported cache: recorded locally when settling if their blob was fetched. */
  private readonly importedHits: Array<{ key: string; description: string; createdAt: string; layer: LayerRef }> = [];

  constructor(private readonly opts: CommitterOptions) {}

  async lookup(key: string): Promise<{ layer: SolvedLayer; createdAt: string } | undefined> {
    const rec = await this.opts.records.get(key);
    if (rec?.layer) {
      await this.opts.lease?.add(rec.layer.descriptor.digest);
      // touching the blob tells a concurrent gc it is in use; a blob already gone is a miss, and
      // so is a record without a layer (kiln once made none for a step that changed nothing)
      if (await this.opts.store.touchBlob(rec.layer.descriptor.digest)) return { layer: solvedLayer(rec.layer), createdAt: rec.createdAt };
    }
    // an imported record is a hit though its blob is elsewhere: it is fetched only when
    // something reads it (a step on top of it, a checksum, the final image)
    const imported = this.opts.imported?.step(key);
    const layer = imported?.layer;
    if (!layer) return undefined;
    const ref = { descriptor: layer.descriptor, diffId: layer.diffId };
    await this.opts.lease?.add(ref.descriptor.digest);
    // kept as a local record too if this build fetches the blob: the next build needs no import
    this.importedHits.push({ key, description: imported.description, createdAt: imported.createdAt, layer: ref });
    return { layer: importedLayer(layer), createdAt: imported.createdAt };
  }

  record(r: { key: string; description: string; createdAt: string; ready?: Promise<LayerRef> }): void {
    this.pendingRecords.push(r);
  }

  /** A step an imported cache has by its definition key: its whole layer chain, each layer fetched when something reads it. */
  async lookupDefinition(definitionKey: string): Promise<DefinitionHit | undefined> {
    const hit = this.opts.imported?.byDefinition(definitionKey);
    if (!hit) return undefined;
    for (const l of hit.chain) await this.opts.lease?.add(l.descriptor.digest);
    // kept as a local record (by its content key) if this build fetches the step's layer, as a content hit is
    const own = hit.addedLayer ? hit.chain[hit.chain.length - 1] : undefined;
    if (own) this.importedHits.push({ key: hit.key, description: hit.description, createdAt: hit.createdAt, layer: { descriptor: own.descriptor, diffId: own.diffId } });
    return { key: hit.key, layers: hit.chain.map(importedLayer), addedLayer: hit.addedLayer, createdAt: hit.createdAt };
  }

  /**
   * The layer of a step's upper dir over `lowers`. A step that changed nothing still makes
   * a layer (an empty one), as in BuildKit: every RUN, COPY and WORKDIR of a path other
   * than / adds one to the image.
   */
  async nameLayer(upper: string, options: { lowers?: string[]; noNewXattrs: boolean }): Promise<NamedLayer> {
    const entries = await this.opts.snapshotter.diff(upper, { noNewXattrs: options.noNewXattrs, lowers: options.lowers });
    const bytes = entries.reduce((n, e) => n + (e.type === 'file' ? (e.size ?? 0) : 0), 0);
    if (bytes > BACKGROUND_LAYER_MAX) {
      const stored = await this.storeLayer(entries);
      return { diffId: stored.diffId, stored };
    }
    // name the layer now, adopt the upper dir as its unpacked form, store the blob later
    // (from the tar bytes of the naming pass when small, else from the adopted dir)
    const named = await layerDiffId(entries, { sourceDateEpoch: this.opts.sourceDateEpoch, keepUpTo: KEEP_TAR_MAX });
    const diffId = named.diffId;
    const tar = named.tar;
    const store = async (): Promise<LayerRef> => {
      if (tar) return this.storeTar(tar, diffId);
      const dir = this.opts.snapshotter.layerDir(diffId);
      if (!(await this.opts.snapshotter.hasLayer(diffId))) throw new KilnError(`the unpacked layer ${diffId} disappeared before it was stored`);
      const moved = entries.map((e) => (e.sourcePath ? { ...e, sourcePath: path.join(dir, path.relative(upper, e.sourcePath)) } : e));
      return this.storeLayer(moved, diffId);
    };
    return { diffId, store };
  }

  /** storeLayer for tar bytes already made (and hashed) by the naming pass. */
  private async storeTar(tar: Buffer, diffId: string): Promise<LayerRef> {
    // an uncompressed layer's blob is its tar: the diffId is its digest
    const tmp = await this.opts.store.writeTempUnsynced(tar);
    return this.keepLayer(tmp, { mediaType: MediaType.ociLayerTar, digest: diffId, size: tar.length }, diffId);
  }

  /**
   * Writes a layer blob and keeps it leased; `expectDiffId` checks a digest-only pass.
   * Layers a build makes are stored uncompressed, as docker's own image store keeps them:
   * gzip runs at about 30 MB/s a core, which made compression most of the time of a cold
   * build. Export compresses (deterministically) where the format wants it.
   */
  private async storeLayer(entries: Parameters<typeof writeLayer>[1], expectDiffId?: string): Promise<LayerRef> {
    const written = await writeLayer(this.opts.store, entries, { sourceDateEpoch: this.opts.sourceDateEpoch, compression: 'none', deferCommit: true });
    const ref = await this.keepLayer(written.uncommitted!, written.descriptor, written.diffId);
    if (expectDiffId !== undefined && written.diffId !== expectDiffId) {
      throw new KilnError(`layer content changed while it was stored (expected ${expectDiffId}, wrote ${written.diffId})`);
    }
    return ref;
  }

  /** A layer blob in a temp file: committed when the solve settles, leased and counted now. */
  private async keepLayer(tmp: string, descriptor: Descriptor, diffId: string): Promise<LayerRef> {
    this.uncommitted.push({ tmp, digest: descriptor.digest });
    await this.opts.lease?.add(descriptor.digest);
    this.addedBytes += descriptor.size;
    return { descriptor, diffId };
  }

  /**
   * Commits the finished layers and `extra` blobs (one fsync round for all of them, then
   * blobs/ and cache records) or, for an interrupted build (`keep` false), removes them.
   * Call once every step and background store has finished.
   */
  async settle(keep: boolean, extra: Array<{ tmp: string; digest: string }> = []): Promise<void> {
    const commits = [...this.uncommitted.splice(0), ...extra];
    const records = this.pendingRecords.splice(0);
    const imported = this.importedHits.splice(0);
    if (!keep) {
      await Promise.all(commits.map((c) => fs.rm(c.tmp, { force: true })));
      return;
    }
    if (tracing) trace(`solver: committing ${commits.length} layers`);
    await this.opts.store.commitUnsynced(commits);
    const failed = Symbol('failed');
    await Promise.all(
      records.map(async (r) => {
        const layer = r.ready ? await r.ready.catch(() => failed) : undefined;
        if (layer === failed) return;
        await this.opts.records.put({ key: r.key, description: r.description, layer: layer as LayerRef | undefined, createdAt: r.createdAt });
      }),
    );
    await Promise.all(
      imported.map(async (r) => {
        if (await this.opts.store.touchBlob(r.layer.descriptor.digest)) await this.opts.records.put(r);
      }),
    );
    if (tracing) trace('solver: committed');
  }
}
