/**
 * Compression variants of layers: one layer (named by its diff id, the digest of its
 * uncompressed tar) can be stored as several blobs, plain, gzip, zstd. The record of which
 * blob holds which form lets an export that wants a compression reuse the blob made the first
 * time instead of compressing again.
 *
 * Stored as store metadata beside the blobs (kilnPaths(root).variants), one small file per
 * form: variants/sha256/<diff id hex>/<compression>.json holding the blob's descriptor (the
 * form at the compression's default level, or a layer's own stored form), and
 * <compression>@<level>.json for a variant made at another level (compression-level). One
 * file each, written atomically (a temp file in the store's tmp/, renamed), so writers never
 * read-modify-write. The store's GC treats the
 * forms of a layer as one group: while any of them is reachable, all are kept; when none is,
 * the blobs go and GC drops the record. A record whose blob is gone is never trusted (the
 * reader checks the blob is there).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { digestHex, isDigest } from './digest.js';
import { GZIP_LEVEL, ZSTD_LEVEL } from './compress.js';
import { MediaType, type Descriptor } from './types.js';

export type LayerCompression = 'none' | 'gzip' | 'zstd';
export const LAYER_COMPRESSIONS: readonly LayerCompression[] = ['none', 'gzip', 'zstd'];

/** The compression a layer media type says, undefined for a type that is not a layer tar. */
export function compressionOfMediaType(mediaType: string): LayerCompression | undefined {
  switch (mediaType) {
    case MediaType.ociLayerTar:
      return 'none';
    case MediaType.ociLayerGzip:
    case MediaType.dockerLayerGzip:
      return 'gzip';
    case MediaType.ociLayerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

/** The OCI media type of a layer in that compression. */
export function layerMediaType(compression: LayerCompression): string {
  return compression === 'none' ? MediaType.ociLayerTar : compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayerZstd;
}

/** Names one form of a layer: its compression, with `@level` when not the default level. */
export type VariantKey = LayerCompression | `${'gzip' | 'zstd'}@${number}`;

/** The key of a variant in `compression` made at `level` (undefined: the default). */
export function variantKey(compression: LayerCompression, level?: number): VariantKey {
  if (compression === 'none' || level === undefined) return compression;
  if (level === (compression === 'gzip' ? GZIP_LEVEL : ZSTD_LEVEL)) return compression;
  return `${compression}@${level}`;
}

const KEY_FILE = /^(none|gzip|zstd|(?:gzip|zstd)@\d{1,2})\.json$/;

export interface VariantRecord {
  diffId: string;
  /** By VariantKey; the default-level forms under their compression's name. */
  variants: { [key: string]: Descriptor } & Partial<Record<LayerCompression, Descriptor>>;
}

export class LayerVariants {
  /**
   * `dir` is kilnPaths(root).variants; `tempPath` gives owned temp names in the store's tmp/,
   * where the reaper and the store's GC find what a killed process left.
   */
  constructor(
    readonly dir: string,
    private readonly tempPath: (kind: string) => string,
  ) {}

  private layerDir(diffId: string): string {
    return path.join(this.dir, digestHex(diffId));
  }

  /** Records that `descriptor` holds the layer `diffId` compressed as `compression` (a VariantKey). */
  async record(diffId: string, compression: VariantKey, descriptor: Descriptor): Promise<void> {
    const { mediaType, digest, size } = descriptor;
    const dir = this.layerDir(diffId);
    await fsp.mkdir(dir, { recursive: true });
    const tmp = this.tempPath('variant');
    try {
      await fsp.writeFile(tmp, JSON.stringify({ mediaType, digest, size }), { flag: 'wx' });
      await fsp.rename(tmp, path.join(dir, `${compression}.json`));
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  /** The recorded forms of one layer (its blobs may have gone since: check before use). */
  async get(diffId: string): Promise<VariantRecord> {
    const variants: VariantRecord['variants'] = {};
    const dir = this.layerDir(diffId);
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const c = KEY_FILE.exec(name)?.[1] as VariantKey | undefined;
      if (!c) continue;
      const text = await fsp.readFile(path.join(dir, name), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      try {
        const d = JSON.parse(text) as Descriptor;
        if (isDigest(d.digest) && typeof d.size === 'number') variants[c] = d;
      } catch {
        // a torn file cannot happen (atomic writes); anything else is ignored, and rewritten later
      }
    }
    return { diffId, variants };
  }

  /** Every layer with a record. */
  async list(): Promise<VariantRecord[]> {
    const out: VariantRecord[] = [];
    for (const hex of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      if (!/^[a-f0-9]{64}$/.test(hex)) continue;
      out.push(await this.get(`sha256:${hex}`));
    }
    return out;
  }

  /** Drops the whole record of a layer. */
  async remove(diffId: string): Promise<void> {
    await fsp.rm(this.layerDir(diffId), { recursive: true, force: true });
  }
}
