/**
 * Named build contexts (`kiln build --build-context NAME=VALUE`, BuildKit's `context:NAME`):
 * a local directory, an image (`docker-image://REF`, resolved through the store and the
 * registry as FROM is) or an image in an OCI layout directory (`oci-layout://PATH[:TAG][@DIGEST]`,
 * its blobs verified into the store). The frontend asks for a name when a stage, a FROM,
 * COPY --from or RUN --mount from= uses it, so a context the build never reads is never
 * resolved (BuildKit's testEagerNamedContextLookup).
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { describeErrno, isErrnoError, KilnError } from './errors.js';
import type { NamedContextState, ResolvedImage } from './frontend/plan.js';
import { namedLocalSource } from './graph/types.js';
import { chooseManifest, loadImage } from './oci/image.js';
import { digestHex, isDigest } from './oci/digest.js';
import { formatPlatform } from './oci/platform.js';
import { canonicalName, familiarName } from './oci/reference.js';
import type { ContentStore, Lease } from './oci/store.js';
import { isIndexType, isManifestType } from './oci/walk.js';
import { RefNameAnnotation, type Descriptor, type ImageIndex, type ImageManifest, type Platform } from './oci/types.js';

export type NamedContextSpec =
  | { kind: 'local'; dir: string }
  | { kind: 'image'; ref: string }
  | { kind: 'scratch' }
  | { kind: 'oci-layout'; dir: string; tag?: string; digest?: string };

const FORMS = 'NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG][@sha256:DIGEST]';

/**
 * The name a Dockerfile's reference and a --build-context key are matched by (BuildKit's):
 * the familiar form without ":latest" (`docker.io/library/alpine:latest` → `alpine`). A
 * platform suffix (`NAME::linux/arm64`) is kept as it is.
 */
export function contextName(name: string): string {
  const [base, platform] = name.split('::', 2);
  let out = base.toLowerCase();
  try {
    out = familiarName(canonicalName(base)).replace(/:latest$/, '');
  } catch {
    // not a reference (a stage name may be anything the Dockerfile allows): matched as written
  }
  return platform === undefined ? out : `${out}::${platform}`;
}

/** Parses one --build-context value as BuildKit's dockerui reads it. */
export function parseContextValue(name: string, value: string): NamedContextSpec {
  const bad = (why: string) => new KilnError(`invalid --build-context ${name}=${value}: ${why}`, { code: 'invalid', hint: `write ${FORMS}` });
  if (value === '') throw bad('the value is empty');
  const scheme = /^([a-z][a-z0-9+.-]*):(.*)$/i.exec(value);
  if (scheme && !/^[a-z]:[\\/]/i.test(value)) {
    const kind = scheme[1].toLowerCase();
    const rest = scheme[2].replace(/^\/\//, '');
    if (kind === 'docker-image') {
      if (rest === '') throw bad('docker-image:// needs an image reference');
      return rest === 'scratch' ? { kind: 'scratch' } : { kind: 'image', ref: rest };
    }
    if (kind === 'oci-layout') return parseLayoutRef(rest, bad);
    if (kind === 'local') return { kind: 'local', dir: path.resolve(rest) };
    if (['http', 'https', 'git', 'ssh'].includes(kind) || value.startsWith('git@')) {
      throw new KilnError(`--build-context ${name}=${value}: a remote context (git or http) is not supported yet`, {
        code: 'unsupported',
        hint: `clone or download it first and give the directory: ${name}=./dir`,
      });
    }
    if (kind === 'input') throw new KilnError(`--build-context ${name}=${value}: input: contexts come from a frontend's gateway, which kiln has not`, { code: 'unsupported', hint: `write ${FORMS}` });
    // "c:" style drive letters aside, anything else with a colon is a path that happens to hold one
  }
  return { kind: 'local', dir: path.resolve(value) };
}

function parseLayoutRef(rest: string, bad: (why: string) => KilnError): NamedContextSpec {
  let dir = rest;
  let digest: string | undefined;
  const at = dir.lastIndexOf('@');
  if (at !== -1 && /^sha256:/.test(dir.slice(at + 1))) {
    digest = dir.slice(at + 1);
    dir = dir.slice(0, at);
    if (!isDigest(digest)) throw bad(`${digest} is not a sha256 digest`);
  }
  let tag: string | undefined;
  const colon = dir.lastIndexOf(':');
  if (colon > dir.lastIndexOf('/') && /^[\w][\w.-]{0,127}$/.test(dir.slice(colon + 1))) {
    tag = dir.slice(colon + 1);
    dir = dir.slice(0, colon);
  }
  if (dir === '') throw bad('oci-layout:// needs the path of an OCI layout directory');
  return { kind: 'oci-layout', dir: path.resolve(dir), tag, digest };
}

/** The CLI's repeated `--build-context NAME=VALUE` flags, by name (a later one of a name wins, as in buildx). */
export function buildContextFlags(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new KilnError(`invalid --build-context "${item}": expected NAME=VALUE`, { code: 'invalid', hint: `write ${FORMS}` });
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** --build-context values by name, checked (a bad value fails the build before anything runs). */
export function parseBuildContexts(raw: Record<string, string>): Map<string, NamedContextSpec> {
  const out = new Map<string, NamedContextSpec>();
  for (const [name, value] of Object.entries(raw)) {
    if (name === '' || /[\s=]/.test(name)) {
      throw new KilnError(`invalid --build-context name ${JSON.stringify(name)}`, { code: 'invalid', hint: `write ${FORMS}` });
    }
    if (/^(context|scratch)$/i.test(name)) {
      throw new KilnError(`--build-context cannot be named "${name}": that name is reserved`, {
        code: 'invalid',
        hint: name.toLowerCase() === 'context' ? 'the build context is the directory given to kiln build' : 'FROM scratch is always the empty image',
      });
    }
    out.set(contextName(name), parseContextValue(name, value));
  }
  return out;
}

export interface NamedContextDeps {
  store: ContentStore;
  /** FROM's image resolution (the store, then the registry): base-images.ts. */
  resolveImage: (ref: string, platform: Platform) => Promise<ResolvedImage>;
}

/**
 * Resolves named contexts on demand for the planner, once per name and platform; remembers
 * which local directories the plan reads, for the solver.
 */
export class NamedContexts {
  private readonly resolved = new Map<string, Promise<NamedContextState>>();
  private readonly locals = new Map<string, string>();
  /** Holds the blobs copied from OCI layouts against a concurrent prune until the build ends. */
  private lease?: Promise<Lease>;

  constructor(
    private readonly specs: Map<string, NamedContextSpec>,
    private readonly deps: NamedContextDeps,
  ) {}

  /** Releases what resolving took (the lease on blobs copied from OCI layouts). */
  async close(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await (await lease).release();
  }

  /** The named contexts' local directories the plan uses, by source name (graph/types.ts namedLocalSource). */
  usedDirectories(): Map<string, string> {
    return this.locals;
  }

  /** For the planner (PlanOptions.namedContext): the context `name` stands for, or undefined. */
  lookup(name: string, platform: Platform): Promise<NamedContextState | undefined> {
    const key = contextName(name);
    // BuildKit asks for NAME::PLATFORM first, then NAME
    const withPlatform = `${key}::${formatPlatform(platform)}`;
    const found = this.specs.has(withPlatform) ? withPlatform : this.specs.has(key) ? key : undefined;
    if (found === undefined) return Promise.resolve(undefined);
    const memo = `${found}\0${formatPlatform(platform)}`;
    let p = this.resolved.get(memo);
    if (!p) {
      p = this.resolve(found, this.specs.get(found)!, platform);
      this.resolved.set(memo, p);
    }
    return p;
  }

  private async resolve(name: string, spec: NamedContextSpec, platform: Platform): Promise<NamedContextState> {
    switch (spec.kind) {
      case 'scratch':
        return { kind: 'scratch' };
      case 'image': {
        const image = await this.deps.resolveImage(spec.ref, platform).catch((e: unknown) => {
          if (!(e instanceof KilnError)) throw e;
          throw new KilnError(`named context ${name} (docker-image://${spec.ref}): ${e.message}`, { code: e.code, hint: e.hint, cause: e });
        });
        return { kind: 'image', image, label: image.ref };
      }
      case 'oci-layout': {
        this.lease ??= this.deps.store.lease();
        const image = await importFromLayout(this.deps.store, spec, platform, name, await this.lease);
        return { kind: 'image', image, label: `oci-layout://${spec.dir}${spec.tag ? `:${spec.tag}` : ''}@${image.manifestDigest}` };
      }
      case 'local': {
        const st = await fsp.stat(spec.dir).catch((e: unknown) => {
          throw new KilnError(`named context ${name}: cannot read ${spec.dir}: ${isErrnoError(e) ? describeErrno(e).what : String(e)}`, {
            code: 'not-found',
            hint: `give an existing directory: --build-context ${name}=./dir`,
          });
        });
        if (!st.isDirectory()) throw new KilnError(`named context ${name}: ${spec.dir} is not a directory`, { code: 'invalid', hint: `give a directory: --build-context ${name}=./dir` });
        const source = namedLocalSource(name);
        this.locals.set(source.source, spec.dir);
        return { kind: 'local', source, label: `local ${spec.dir}` };
      }
    }
  }
}

/**
 * Copies the image an OCI layout directory names (by digest, by tag, or its only manifest)
 * into the store, every blob verified against its digest, and loads it for `platform`. The
 * image gets no name in the store; the build's lease keeps its blobs until the build ends.
 */
export async function importFromLayout(store: ContentStore, spec: Extract<NamedContextSpec, { kind: 'oci-layout' }>, platform: Platform, name: string, lease?: Lease): Promise<ResolvedImage> {
  const where = `the OCI layout ${spec.dir} (named context ${name})`;
  const fail = (message: string, hint = 'give a directory written by an OCI exporter (kiln save --format oci, then untar; buildx --output type=oci,tar=false)') =>
    new KilnError(`${where}: ${message}`, { code: 'invalid', hint });
  let index: ImageIndex;
  try {
    index = JSON.parse(await fsp.readFile(path.join(spec.dir, 'index.json'), 'utf8')) as ImageIndex;
  } catch (e) {
    if (isErrnoError(e) && e.code === 'ENOENT') throw new KilnError(`${where} has no index.json`, { code: 'not-found', hint: 'give the directory that holds oci-layout, index.json and blobs/' });
    throw fail(`index.json cannot be read: ${(e as Error).message}`);
  }
  const manifests = Array.isArray(index.manifests) ? index.manifests : [];
  let root: Descriptor | undefined;
  if (spec.digest !== undefined) {
    root = manifests.find((m) => m.digest === spec.digest) ?? { mediaType: '', digest: spec.digest, size: -1 };
  } else {
    const tag = spec.tag ?? 'latest';
    // the ref name is a tag ("latest", as buildx writes it) or a whole name ("app:latest", as kiln save and containerd write it)
    const ref = (m: Descriptor) => m.annotations?.[RefNameAnnotation] ?? '';
    root = manifests.find((m) => ref(m) === tag) ?? manifests.find((m) => ref(m).endsWith(`:${tag}`) && !ref(m).endsWith(`/${tag}`));
    if (!root && spec.tag === undefined && manifests.length === 1) root = manifests[0];
    if (!root) {
      throw new KilnError(`${where} has no image tagged ${tag}`, {
        code: 'not-found',
        hint: `name one: oci-layout://${spec.dir}:TAG or oci-layout://${spec.dir}@sha256:DIGEST (index.json lists ${manifests.length} image(s))`,
      });
    }
  }
  const copy = async (digest: string): Promise<void> => {
    if (!isDigest(digest)) throw fail(`${JSON.stringify(digest)} is not a sha256 digest`);
    const file = path.join(spec.dir, 'blobs', 'sha256', digestHex(digest));
    await lease?.add(digest);
    if (!(await store.hasBlob(digest))) {
      await fsp.access(file).catch(() => {
        throw fail(`blob ${digest} is missing`, 'the layout is incomplete: export it again');
      });
      await store.writeBlobFromStream(createReadStream(file), digest);
    }
  };
  const readDoc = async <T>(digest: string): Promise<T> => {
    await copy(digest);
    try {
      return await store.readJSON<T>(digest);
    } catch (e) {
      throw fail(`${digest} is not a JSON document: ${(e as Error).message}`);
    }
  };
  let doc = await readDoc<ImageIndex & ImageManifest & { mediaType?: string }>(root.digest);
  let manifestDigest = root.digest;
  const mediaType = root.mediaType || doc.mediaType || (Array.isArray(doc.manifests) ? 'application/vnd.oci.image.index.v1+json' : '');
  if (isIndexType(mediaType)) {
    const chosen = chooseManifest(doc, platform, where);
    manifestDigest = chosen.digest;
    doc = await readDoc(chosen.digest);
  } else if (!isManifestType(mediaType) && !Array.isArray(doc.layers)) {
    throw fail(`${root.digest} is neither an image manifest nor an index`);
  }
  if (!doc.config || !Array.isArray(doc.layers)) throw fail(`manifest ${manifestDigest} has no config or layers`);
  await copy(doc.config.digest);
  for (const l of doc.layers) await copy(l.digest);
  const loaded = await loadImage(store, manifestDigest, platform);
  return { ref: `${name}@${manifestDigest}`, manifestDigest, config: loaded.config, layers: loaded.manifest.layers };
}
