/**
 * Source ops: the states and files no step makes. An image's layers come from an
 * ImageResolver (the local store now; a registry later), a URL's content from one fetch
 * per build (its content keys the step that adds it), a git repository not yet.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../errors.js';
import type { GitVertex, HttpVertex, ImageVertex } from '../../graph/types.js';
import { httpGet, type HttpResponse } from '../../net.js';
import type { ContentStore } from '../../oci/store.js';
import type { ImageConfig, ImageManifest } from '../../oci/types.js';
import { hash } from '../keys.js';
import type { LayerRef } from '../types.js';

/** Finds the layers of an image vertex: the seam a registry-backed resolver plugs into. */
export interface ImageResolver {
  /** The image's layers, base first, each with its diff id. */
  layers(v: ImageVertex): Promise<LayerRef[]>;
}

/** Resolves images from the local content store: the manifest the vertex names, and its config's diff ids. */
export function localImages(store: Pick<ContentStore, 'readBlob'>): ImageResolver {
  return {
    async layers(v) {
      const read = async <T>(digest: string): Promise<T> => {
        const blob = await store.readBlob(digest).catch((e: unknown) => {
          throw new KilnError(`image ${v.ref}: ${digest} is not in the store (${(e as Error).message})`, { hint: `pull or load ${v.ref} again`, cause: e });
        });
        return JSON.parse(blob.toString('utf8')) as T;
      };
      const manifest = await read<ImageManifest>(v.manifestDigest);
      const config = await read<ImageConfig>(manifest.config.digest);
      const diffIds = config.rootfs.diff_ids;
      if (diffIds.length !== manifest.layers.length) throw new KilnError(`image ${v.ref}: its config lists ${diffIds.length} layers, its manifest ${manifest.layers.length}`);
      return manifest.layers.map((descriptor, i) => ({ descriptor, diffId: diffIds[i] }));
    },
  };
}

/** A URL fetched for this build: the file in a temp dir, and the key of what it puts in a layer. */
export interface Fetched {
  file: string;
  name: string;
  key: string;
}

/** URLs fetched once per build, whichever steps add them; removed when the solve settles. */
export class HttpSources {
  private readonly fetched = new Map<string, Promise<Fetched>>();
  private readonly dirs: string[] = [];

  constructor(private readonly tempPath: (kind: string) => string) {}

  fetch(v: HttpVertex): Promise<Fetched> {
    let p = this.fetched.get(v.digest);
    if (!p) {
      const dir = this.tempPath('http');
      this.dirs.push(dir);
      p = fs.mkdir(dir, { recursive: true }).then(() => download(v.url, dir, v.checksum));
      p.catch(() => undefined);
      this.fetched.set(v.digest, p);
    }
    return p;
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled([...this.fetched.values()]);
    await Promise.all(this.dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
    this.fetched.clear();
  }
}

/** A git source: in the graph, not in the solver yet. */
export function gitUnsupported(v: GitVertex): KilnError {
  return new KilnError(`ADD from a git repository is not supported yet: ${v.remote}`, { hint: 'clone it in an earlier stage with RUN git clone' });
}

/**
 * Fetches `url` into `dir`; with ADD --checksum, the content must have that digest (as
 * BuildKit checks). Its key is what the layer gets: the name, the content and the time.
 */
async function download(url: string, dir: string, checksum?: string): Promise<Fetched> {
  let res: HttpResponse;
  try {
    res = await httpGet(url);
  } catch (e) {
    throw new KilnError(`ADD could not fetch ${url}: ${(e as Error).message}`);
  }
  if (res.status < 200 || res.status > 299) throw new KilnError(`ADD could not fetch ${url}: HTTP ${res.status}`);
  if (checksum !== undefined) {
    const alg = checksum.slice(0, checksum.indexOf(':'));
    const got = `${alg}:${createHash(alg).update(res.body).digest('hex')}`;
    if (got !== checksum) throw new KilnError(`ADD ${url}: digest mismatch ${got}: ${checksum}`, { hint: 'the file changed, or --checksum is wrong' });
  }
  const name = path.posix.basename(new URL(url).pathname) || 'index.html';
  const file = path.join(dir, name);
  await fs.writeFile(file, res.body, { mode: 0o600 });
  const lm = res.headers['last-modified'];
  let time = '';
  if (lm) {
    const t = new Date(lm);
    if (!Number.isNaN(t.getTime())) {
      await fs.utimes(file, t, t);
      time = t.toISOString();
    }
  }
  const content = `sha256:${createHash('sha256').update(res.body).digest('hex')}`;
  return { file, name, key: hash(['http', name, content, time]) };
}
