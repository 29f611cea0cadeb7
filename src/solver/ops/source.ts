/**
 * Source ops: the states and files no step makes. An image's layers come from an
 * ImageResolver (the local store now; a registry later), a URL's content from one fetch
 * per build (its content keys the step that adds it), a git repository's checkout (sources/git.ts).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../errors.js';
import type { GitVertex, HttpVertex, ImageVertex } from '../../graph/types.js';
import { GitRepos, type GitOptions, type ResolvedGit } from '../../sources/git.js';
import { HttpCache } from '../../sources/http.js';
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

/**
 * URLs fetched once per build, whichever steps add them, through the root's http cache
 * (sources/http.ts: revalidated, not downloaded again); each build links what it uses into
 * a temp dir of its own, removed when the solve settles.
 */
export class HttpSources {
  private readonly fetched = new Map<string, Promise<Fetched>>();
  private readonly dirs: string[] = [];
  private readonly cache: HttpCache;

  constructor(
    private readonly tempPath: (kind: string) => string,
    cacheDir: string,
    private readonly signal?: AbortSignal,
  ) {
    this.cache = new HttpCache(cacheDir, tempPath);
  }

  fetch(v: HttpVertex): Promise<Fetched> {
    let p = this.fetched.get(v.digest);
    if (!p) {
      const dir = this.tempPath('http');
      this.dirs.push(dir);
      p = fs.mkdir(dir, { recursive: true }).then(() => this.download(v, dir));
      p.catch(() => undefined);
      this.fetched.set(v.digest, p);
    }
    return p;
  }

  /**
   * The URL's content as the layer gets it: mode 0600 and, when the server sent one,
   * Last-Modified as its mtime (as BuildKit). Its key is the name, the content and the time.
   */
  private async download(v: HttpVertex, dir: string): Promise<Fetched> {
    for (let attempt = 0; ; attempt++) {
      const got = await this.cache.fetch(v.url, v.checksum, this.signal);
      const file = path.join(dir, got.name);
      try {
        await fs.copyFile(got.file, file);
      } catch (e) {
        // another build replaced this URL's content between the two: ask again
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 2) continue;
        throw e;
      }
      await fs.chmod(file, 0o600);
      if (got.lastModified) await fs.utimes(file, got.lastModified, got.lastModified);
      return { file, name: got.name, key: hash(['http', got.name, got.digest, got.lastModified?.toISOString() ?? '']) };
    }
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled([...this.fetched.values()]);
    await Promise.all(this.dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
    this.fetched.clear();
  }
}

/**
 * Git repositories for this build: each ref resolved once (its key), each commit checked
 * out once into a temp dir, whichever steps add it; the checkouts removed when the solve settles.
 */
export class GitSources {
  private readonly repos: GitRepos;
  private readonly resolved = new Map<string, Promise<ResolvedGit>>();
  private readonly checkouts = new Map<string, Promise<string>>();
  private readonly dirs: string[] = [];

  constructor(private readonly opts: GitOptions) {
    this.repos = new GitRepos({ ...opts, onTemp: (f) => this.dirs.push(f) });
  }

  /** The key of what the vertex's checkout holds: its ref's commit (ls-remote), subdir and flags. */
  async key(v: GitVertex): Promise<string> {
    return hash(['git', (await this.resolve(v)).key]);
  }

  /** The directory to copy the vertex's files from. */
  checkout(v: GitVertex): Promise<string> {
    const run = async (): Promise<string> => {
      const r = await this.resolve(v);
      let p = this.checkouts.get(r.key);
      if (!p) {
        const dir = this.opts.tempPath('git');
        this.dirs.push(dir);
        p = this.repos.checkout(v, r, dir);
        p.catch(() => undefined);
        this.checkouts.set(r.key, p);
      }
      return p;
    };
    return run();
  }

  private resolve(v: GitVertex): Promise<ResolvedGit> {
    let p = this.resolved.get(v.digest);
    if (!p) {
      p = this.repos.resolve(v);
      p.catch(() => undefined);
      this.resolved.set(v.digest, p);
    }
    return p;
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled([...this.checkouts.values()]);
    await Promise.all(this.dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
    this.checkouts.clear();
    this.resolved.clear();
  }
}
