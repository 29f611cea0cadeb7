/**
 * A build's base images (FROM, COPY --from, RUN --mount from=): from the store, and pulled
 * from their registry when missing, when --pull asks, or when the store holds a pulled tag
 * for another platform. What build.ts gives the planner as its resolveImage.
 */
import { errorCode, isKilnError, KilnError } from './errors.js';
import { formatPlatform, platformMatches } from './oci/platform.js';
import type { ContentStore } from './oci/store.js';
import { chooseManifest, loadImage, type LoadedImage } from './oci/image.js';
import { isDigest } from './oci/digest.js';
import { canonicalName, displayName, tryParseCanonicalReference } from './oci/reference.js';
import type { ImageConfig, ImageIndex, Platform } from './oci/types.js';
import { networkFailure, pullImage } from './registry/pull.js';
import { repoDigests } from './registry/sources.js';
import { registryClient } from './registry/settings.js';
import type { RegistryClient } from './registry/client.js';
import type { ProgressEvent } from './solver/solver.js';

export interface BaseImageOptions {
  root: string;
  /** Re-resolve tags against their registry (build --pull). */
  pull?: boolean;
  insecureRegistries?: string[];
  signal?: AbortSignal;
  /** Each pull is a progress step: start, a log line per blob, done or error. */
  progress?: (ev: ProgressEvent) => void;
  warn?: (message: string) => void;
}

/**
 * The build's base images: from the store, and pulled from their registry when missing (with
 * `pull`, every tag is re-resolved against its registry and what changed is pulled; a
 * reference by digest present in the store is used as it is). One resolution per reference
 * and platform per build; each pull is a progress step of its own, numbered before the
 * solver's steps.
 */
export function basePuller(
  opts: BaseImageOptions,
  store: ContentStore,
): { resolve: (ref: string, platform: Platform) => Promise<LoadedImage>; count: () => number; close: () => void } {
  const resolved = new Map<string, Promise<LoadedImage>>();
  let client: RegistryClient | undefined;
  let pulls = 0;
  const pull = async (ref: string, platform: Platform): Promise<LoadedImage> => {
    client ??= registryClient({ root: opts.root, insecureRegistries: opts.insecureRegistries, signal: opts.signal });
    const id = ++pulls;
    const name = `[internal] pull ${canonicalName(ref)}`;
    const started = Date.now();
    const log = (line: string): void => opts.progress?.({ type: 'log', id, stream: 'stderr', data: Buffer.from(`${line}\n`) });
    opts.progress?.({ type: 'start', id, name, time: started });
    try {
      const pulled = await pullImage({
        root: opts.root,
        store,
        client,
        ref,
        platform,
        signal: opts.signal,
        progress: (ev) => {
          if (ev.type === 'transfer-done') log(`${ev.id}: ${ev.how === 'exists' ? 'already in the store' : 'downloaded'}`);
        },
      });
      log(`${pulled.name}: ${pulled.digest}${pulled.indexDigest ? ` (${formatPlatform(platform)}: ${pulled.manifestDescriptor.digest})` : ''}`);
      opts.progress?.({ type: 'done', id, name, ms: Date.now() - started });
      return { ...(await loadImage(store, pulled.manifestDescriptor.digest, platform)), name: pulled.name };
    } catch (e) {
      opts.progress?.({ type: 'error', id, name, message: (e as Error).message });
      throw e;
    }
  };
  const resolveOne = async (ref: string, platform: Platform): Promise<LoadedImage> => {
    const canonical = tryParseCanonicalReference(ref);
    // an image ID or a bare digest names nothing a registry serves: the store's answer stands
    const remote = 'reference' in canonical && !isDigest(ref) ? canonical.reference : undefined;
    if (!remote) return loadImage(store, ref, platform);
    let local: LoadedImage | { missing: unknown } | undefined;
    // with --pull a tag is asked of the registry; a digest never needs to be
    if (!opts.pull || remote.digest !== undefined) local = await loadImage(store, ref, platform).catch((e: unknown) => {
      if (errorCode(e) !== 'not-found') throw e;
      return { missing: e };
    });
    if (local && !('missing' in local)) {
      if (remote.digest !== undefined || !(await pulledForAnotherPlatform(opts.root, local, platform))) return local;
      // a tag pulled for another platform (kiln pull --platform, or the other half of a
      // multi-platform build): this platform's manifest of the same index, when an earlier pull
      // stored it; else it is pulled
      const sibling = await siblingManifest(store, opts.root, remote.repository, local, platform);
      if (sibling) return sibling;
      const stored = local;
      return pull(ref, platform).catch((e: unknown) => {
        opts.warn?.(`base image ${stored.name} in the store is for ${platformOf(stored.config)}, not ${formatPlatform(platform)}, and pulling that failed: ${(e as Error).message}`);
        return stored;
      });
    }
    try {
      return await pull(ref, platform);
    } catch (e) {
      if (local) throw missingBaseImage(ref, remote.domain, e);
      if (!(e instanceof KilnError)) throw e;
      throw new KilnError(`cannot pull ${displayName(ref)} (--pull): ${e.message}`, {
        code: networkFailure(e) ? 'unavailable' : e.code,
        hint: `${e.hint ? `${e.hint}; or ` : ''}build without --pull to use the copy in the store`,
        cause: e,
      });
    }
  };
  return {
    resolve: (ref, platform) => {
      const key = `${ref}\0${formatPlatform(platform)}`;
      let p = resolved.get(key);
      if (!p) {
        p = resolveOne(ref, platform);
        resolved.set(key, p);
      }
      return p;
    },
    count: () => pulls,
    // the registry's keep-alive connections: base images are all resolved while planning
    close: () => client?.close(),
  };
}

function platformOf(config: ImageConfig): string {
  return formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) });
}

/** Whether a stored image is a registry's manifest for another platform than `platform` (a name by tag points at one manifest). */
async function pulledForAnotherPlatform(root: string, img: LoadedImage, platform: Platform): Promise<boolean> {
  if (img.indexDescriptor) return false;
  const have = { os: img.config.os, architecture: img.config.architecture, ...(img.config.variant ? { variant: img.config.variant } : {}) };
  if (platformMatches(platform, have)) return false;
  return (await repoDigests(root, img.manifestDescriptor.digest)).length > 0;
}

/**
 * The manifest for `platform` of the index `img` was pulled from (its repo digest names the
 * index), when the store holds both: a tag names one platform's manifest, and this finds the
 * others pulled under it without asking the registry again.
 */
async function siblingManifest(store: ContentStore, root: string, repository: string, img: LoadedImage, platform: Platform): Promise<LoadedImage | undefined> {
  for (const rd of await repoDigests(root, img.manifestDescriptor.digest)) {
    // the newest first; only the index of the tag's own repository
    if (rd.slice(0, rd.lastIndexOf('@')) !== repository) continue;
    const digest = rd.slice(rd.lastIndexOf('@') + 1);
    if (digest === img.manifestDescriptor.digest || !(await store.hasBlob(digest))) continue;
    try {
      const index = await store.readJSON<ImageIndex>(digest);
      if (!Array.isArray(index.manifests)) continue;
      const pick = chooseManifest(index, platform, img.name);
      if (!(await store.hasBlob(pick.digest))) continue;
      const found = await loadImage(store, pick.digest, platform);
      return { ...found, name: img.name };
    } catch {
      // not an index, or not for this platform: pulled as usual
    }
  }
  return undefined;
}

/** A base image neither in the store nor pullable: both said, with what the registry answered. */
function missingBaseImage(ref: string, host: string, e: unknown): unknown {
  if (!(e instanceof Error) || errorCode(e) === 'cancelled') return e;
  const code = networkFailure(e) ? 'unavailable' : errorCode(e);
  const shown = displayName(ref);
  const elsewhere = 'or kiln load / kiln import the image';
  if (code === 'not-found') {
    return new KilnError(`image ${shown} not found in the store, nor in the registry: ${e.message}`, {
      code,
      hint: `check the name and tag (kiln inspect docker://${ref} shows what ${host} has), ${elsewhere}`,
      cause: e,
    });
  }
  if (code === 'unauthorized' || code === 'denied') {
    return new KilnError(`image ${shown} not found in the store, and the registry ${host} refused it: ${e.message}`, {
      code,
      hint: `kiln login ${host} with an account that may read it, ${elsewhere}`,
      cause: e,
    });
  }
  if (code === 'invalid' || code === 'unsupported') {
    return new KilnError(`image ${shown} not found in the store, and pulling it from ${host} failed: ${e.message}`, { code, hint: isKilnError(e) ? e.hint : undefined, cause: e });
  }
  return new KilnError(`image ${shown} not found in the store, and the registry ${host} could not be reached: ${e.message}`, {
    code: 'unavailable',
    hint: `kiln pull ${ref} once ${host} answers (--insecure-registry ${host} if it speaks plain HTTP), ${elsewhere}`,
    cause: e,
  });
}
