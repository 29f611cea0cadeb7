/**
 * Caches a build imported (--cache-from): their records by cache key, and their layer blobs
 * fetched on demand. Importing reads manifests and configs only; a layer comes into the local
 * store when something needs its bytes (a step running on top of it, a bind mount's checksum,
 * the final image), verified against its digest, size and diff id first.
 */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { KilnError } from '../errors.js';
import type { Ingester, Lease, Provider } from '../oci/content.js';
import { Digester } from '../oci/digest.js';
import { decompress } from '../oci/tar.js';
import type { CacheLayer, ImportedCacheRecords } from './format.js';

/** One imported cache: where it came from, its records, and who serves its blobs. */
export interface CacheSource {
  /** "type=local,src=DIR" or the registry reference, for messages. */
  where: string;
  records: ImportedCacheRecords;
  provider: Pick<Provider, 'openBlob'>;
  /** Called with each blob fetched from it. */
  fetched?: (digest: string) => Promise<void>;
}

/** A layer an imported record names, with the way to bring its blob into the local store. */
export interface ImportedLayer extends CacheLayer {
  /** Brings the blob into the local store (once; nothing when it is there already). */
  fetch(): Promise<CacheLayer>;
}

export interface ImportedCacheOptions {
  store: Pick<Provider, 'hasBlob'> & Pick<Ingester, 'writer'>;
  lease?: Pick<Lease, 'add'>;
}

export class ImportedCache {
  /** Digests of the blobs fetched from the imported caches so far. */
  readonly fetched: string[] = [];
  private readonly fetches = new Map<string, Promise<void>>();

  constructor(
    readonly sources: CacheSource[],
    private readonly opts: ImportedCacheOptions,
  ) {}

  get empty(): boolean {
    return this.sources.every((s) => s.records.steps.size === 0 && s.records.mounts.size === 0);
  }

  /** The record of a step by its definition key in the first cache that has one: its content key and its state's layer chain, fetchable. */
  byDefinition(definitionKey: string): { key: string; createdAt: string; description: string; addedLayer: boolean; chain: ImportedLayer[] } | undefined {
    for (const s of this.sources) {
      const r = s.records.definitions.get(definitionKey);
      if (r) return { key: r.key, createdAt: r.createdAt, description: r.description, addedLayer: r.layer !== undefined, chain: r.chain.map((l) => this.fetchable(l, s)) };
    }
    return undefined;
  }

  /** The record of a step in the first cache that has one, its layer fetchable. */
  step(key: string): { createdAt: string; description: string; layer?: ImportedLayer } | undefined {
    for (const s of this.sources) {
      const r = s.records.steps.get(key);
      if (r) return { createdAt: r.createdAt, description: r.description, layer: r.layer && this.fetchable(r.layer, s) };
    }
    return undefined;
  }

  /** The layer holding a cache mount's contents (by its id), from the first cache that has it. */
  mount(id: string): ImportedLayer | undefined {
    for (const s of this.sources) {
      const l = s.records.mounts.get(id);
      if (l) return this.fetchable(l, s);
    }
    return undefined;
  }

  private fetchable(layer: CacheLayer, source: CacheSource): ImportedLayer {
    return { ...layer, fetch: () => this.fetch(layer, source).then(() => layer) };
  }

  private fetch(layer: CacheLayer, source: CacheSource): Promise<void> {
    const digest = layer.descriptor.digest;
    let p = this.fetches.get(digest);
    if (!p) {
      p = this.download(layer, source);
      this.fetches.set(digest, p);
      p.catch(() => this.fetches.delete(digest));
    }
    return p;
  }

  /** Streams the blob into the store, checking its diff id on the way; the store checks digest and size. */
  private async download(layer: CacheLayer, source: CacheSource): Promise<void> {
    const { digest, size } = layer.descriptor;
    await this.opts.lease?.add(digest);
    if (await this.opts.store.hasBlob(digest)) return;
    const fail = (e: unknown): KilnError =>
      new KilnError(`could not fetch layer ${digest} from the cache ${source.where}: ${(e as Error).message}`, {
        code: e instanceof KilnError ? e.code : 'unavailable',
        hint: 'check that the cache is reachable and complete, or build without this --cache-from',
        cause: e,
      });
    const w = await this.opts.store.writer();
    try {
      const tee = new PassThrough();
      const diffDigest = (async () => {
        const d = new Digester();
        for await (const chunk of decompress(tee)) d.update(chunk);
        return d.digest();
      })();
      diffDigest.catch(() => undefined);
      try {
        for await (const chunk of source.provider.openBlob(digest) as AsyncIterable<Buffer>) {
          await w.write(chunk);
          if (!tee.write(chunk)) await Promise.race([once(tee, 'drain'), diffDigest]);
        }
        tee.end();
        const got = await diffDigest;
        if (got !== layer.diffId) throw new KilnError(`its uncompressed content hashes to ${got}, the cache says ${layer.diffId}`, { code: 'invalid' });
        await w.commit({ digest, size });
      } catch (e) {
        tee.destroy();
        throw fail(e);
      }
      this.fetched.push(digest);
      await source.fetched?.(digest);
    } finally {
      await w.abort();
    }
  }
}
