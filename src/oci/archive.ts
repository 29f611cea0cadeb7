import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeErrno, fromErrno, isErrnoError, KilnError } from '../errors.js';
import { familiarName, normalizeName, normalizeTagName, parseReference } from './reference.js';
import { canonicalJSON } from './canonical.js';
import { Digester, digestHex, isDigest } from './digest.js';
import { loadImage } from './image.js';
import { gzipBlobToFile, storeTarAsLayer } from './layer.js';
import { isIndexType, isManifestType, type ContentStore } from './store.js';
import { decompress, tarEntries, tarStream, type TarEntry } from './tar.js';
import { MediaType, RefNameAnnotation, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from './types.js';
import { removeStaleTempsBeside, tempBeside } from '../lifecycle.js';

export type ArchiveFormat = 'docker' | 'oci';

/** containerd's and docker's annotation for the full image name in an OCI layout index. */
export const ContainerdImageNameAnnotation = 'io.containerd.image.name';

interface DockerManifestItem {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

function notFound(name: string): KilnError {
  let shown = name;
  try {
    shown = normalizeName(name);
  } catch {
    // shown as given
  }
  return new KilnError(`image ${shown} not found in the store; build it, or kiln load/import it`, { hint: 'kiln images lists what the store holds' });
}

/**
 * A failure reading an archive as a KilnError that says what is wrong with the file, never
 * the zlib or tar library's words: truncated, not gzip, not tar. System errors (a full
 * disk while storing what was read) keep their own meaning.
 */
export function archiveReadError(e: unknown, what: string, remake = 'write it again, e.g. with kiln save or docker save'): KilnError {
  let inner: unknown = e;
  // tarEntries wraps the library's error; look at the original
  if (inner instanceof KilnError && inner.message.startsWith('cannot read the tar archive') && inner.cause !== undefined) inner = inner.cause;
  if (inner instanceof KilnError) return inner;
  if (isErrnoError(inner)) return fromErrno(inner);
  const err = inner as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : '';
  const msg = typeof err?.message === 'string' ? err.message : String(inner);
  const hint = `the file is incomplete or damaged (an interrupted download or copy?): ${remake}`;
  if (code.startsWith('Z_') || /unexpected end of file|incorrect header check|invalid (block type|distance|code|stored block)/i.test(msg)) {
    return new KilnError(`${what} is not a complete gzip stream: it is truncated or corrupt`, { hint, cause: inner });
  }
  if (/unexpected end of data/i.test(msg)) return new KilnError(`${what} is truncated: the tar data ends inside an entry`, { hint, cause: inner });
  if (/invalid (tar )?header/i.test(msg)) return new KilnError(`${what} is not a valid tar archive (a header is corrupt)`, { hint, cause: inner });
  return new KilnError(`${what} cannot be read as an archive: ${msg}`, { hint, cause: inner });
}

function dirEntry(p: string): TarEntry {
  return { path: p, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 };
}
function fileEntry(p: string, content: Buffer): TarEntry {
  return { path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content };
}

/**
 * Writes the named images to a tar archive: `docker` is what `docker save` writes and
 * `docker load` reads (manifest.json, repositories, <config>.json, <diffid>/layer.tar
 * uncompressed); `oci` is an OCI image layout with the names as ref.name annotations
 * (what `skopeo copy oci-archive:` and `docker buildx --output type=oci` use).
 * A file is written to a temp name and renamed when complete.
 */
export async function saveImages(
  store: ContentStore,
  names: string[],
  out: string | NodeJS.WritableStream,
  format: ArchiveFormat = 'docker',
): Promise<void> {
  if (names.length === 0) throw new KilnError('no images to save', { hint: 'name at least one image' });
  const cleanups: string[] = [];
  try {
    const entries = format === 'oci' ? await ociArchiveEntries(store, names, cleanups) : await dockerArchiveEntries(store, names, cleanups);
    const bytes = Readable.from(tarStream(entries));
    if (typeof out !== 'string') {
      await pipeline(bytes, out as NodeJS.WritableStream, { end: out !== process.stdout });
      return;
    }
    const st = await fsp.stat(out).catch(() => undefined);
    if (st?.isDirectory()) {
      throw new KilnError(`cannot write the archive to ${out}: it is a directory`, { hint: `name a file, e.g. -o ${path.join(out, 'image.tar')}` });
    }
    removeStaleTempsBeside(out);
    const tmp = tempBeside(out);
    try {
      await pipeline(bytes, createWriteStream(tmp, { mode: 0o644 }));
      const fh = await fsp.open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      await fsp.rename(tmp, out);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      if (isErrnoError(e)) {
        const { what, hint } = describeErrno(e);
        const full = e.code === 'ENOSPC' || e.code === 'EDQUOT';
        throw new KilnError(`cannot write the archive to ${out}: ${what}`, {
          hint: full ? 'free space there, or save to another file system' : e.code === 'ENAMETOOLONG' ? hint : `check that ${path.dirname(path.resolve(out))} exists and is writable, or save elsewhere`,
          cause: e,
        });
      }
      throw e;
    }
  } finally {
    for (const f of cleanups) await fsp.rm(f, { force: true });
  }
}

/** The stored "repo:tag" a command-line name refers to; undefined for digests and id prefixes. */
async function tagFor(store: ContentStore, name: string): Promise<string | undefined> {
  if (isDigest(name)) return undefined;
  let ref;
  try {
    ref = parseReference(name);
  } catch {
    return undefined;
  }
  const tagged = ref.tag !== undefined ? `${ref.repository}:${ref.tag}` : ref.digest === undefined ? `${ref.repository}:latest` : undefined;
  if (!tagged) return undefined;
  const refs = await store.listRefs();
  return refs.some((r) => r.name === tagged) ? tagged : undefined;
}

function blobEntry(store: ContentStore, d: Descriptor): TarEntry {
  return {
    path: `blobs/sha256/${digestHex(d.digest)}`,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    size: d.size,
    contentStream: store.openBlob(d.digest),
  };
}

/**
 * An OCI layout of the named images. Layers kept uncompressed in the store (what builds
 * make) are gzipped on the way out, deterministically, so the archive is what a registry
 * would get; their manifests (and any index above them) are rewritten to match.
 */
async function ociArchiveEntries(store: ContentStore, names: string[], cleanups: string[]): Promise<AsyncGenerator<TarEntry>> {
  const refs: Descriptor[] = [];
  /** Blobs to write: from the store, a temp file, or made here (rewritten JSON). */
  const blobs = new Map<string, { descriptor: Descriptor; file?: string; content?: Buffer }>();
  const seen = new Map<string, Descriptor | undefined>();
  const addJSON = (mediaType: string, value: unknown): Descriptor => {
    const content = Buffer.from(canonicalJSON(value));
    const d = new Digester();
    d.update(content);
    const descriptor: Descriptor = { mediaType, digest: d.digest(), size: content.length };
    blobs.set(descriptor.digest, { descriptor, content });
    return descriptor;
  };
  /** The descriptor `d` becomes in the archive (undefined: an optional blob we do not have). */
  const visit = async (d: Descriptor, optional: boolean): Promise<Descriptor | undefined> => {
    if (seen.has(d.digest)) return seen.get(d.digest);
    if (!(await store.hasBlob(d.digest))) {
      if (optional) {
        seen.set(d.digest, undefined);
        return undefined;
      }
      throw new KilnError(`blob ${d.digest} (${d.mediaType}) is missing from the store ${store.root}`, {
        hint: 'the image is incomplete: rebuild, or pull/load it again',
      });
    }
    let out: Descriptor = d;
    if (isIndexType(d.mediaType)) {
      const index = await store.readJSON<ImageIndex>(d.digest);
      // an index may list platforms that were never fetched; the archive carries what we have
      const manifests: Descriptor[] = [];
      let changed = false;
      for (const m of index.manifests) {
        const nm = await visit(m, true);
        if (nm && nm.digest !== m.digest) changed = true;
        manifests.push(nm ? { ...m, mediaType: nm.mediaType, digest: nm.digest, size: nm.size } : m);
      }
      if (changed) out = addJSON(d.mediaType, { ...index, manifests });
      else blobs.set(d.digest, { descriptor: d });
    } else if (isManifestType(d.mediaType)) {
      const manifest = await store.readJSON<ImageManifest>(d.digest);
      await visit(manifest.config, false);
      const layers: Descriptor[] = [];
      let changed = false;
      for (const l of manifest.layers) {
        if (l.mediaType === MediaType.ociLayerTar && (await store.hasBlob(l.digest))) {
          let gz = seen.get(`gzip:${l.digest}`);
          if (!gz) {
            const file = store.tempPath('export');
            cleanups.push(file);
            const { digest, size } = await gzipBlobToFile(store, l.digest, file);
            gz = { ...l, mediaType: MediaType.ociLayerGzip, digest, size };
            blobs.set(digest, { descriptor: gz, file });
            seen.set(`gzip:${l.digest}`, gz);
          }
          layers.push(gz);
          changed = true;
        } else {
          await visit(l, false);
          layers.push(l);
        }
      }
      if (changed) out = addJSON(d.mediaType, { ...manifest, layers });
      else blobs.set(d.digest, { descriptor: d });
    } else {
      blobs.set(d.digest, { descriptor: d });
    }
    seen.set(d.digest, out);
    return out;
  };
  for (const name of names) {
    const desc = await store.resolve(name);
    if (!desc) throw notFound(name);
    const written = (await visit(desc, false))!;
    const annotations: Record<string, string> = { ...(desc.annotations ?? {}) };
    const full = await tagFor(store, name);
    if (full) {
      annotations[ContainerdImageNameAnnotation] = full;
      annotations[RefNameAnnotation] = full;
    }
    refs.push({ mediaType: written.mediaType, digest: written.digest, size: written.size, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) });
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: refs };
  async function* gen(): AsyncGenerator<TarEntry> {
    yield dirEntry('blobs');
    yield dirEntry('blobs/sha256');
    for (const b of [...blobs.values()].sort((a, c) => (a.descriptor.digest < c.descriptor.digest ? -1 : 1))) {
      if (b.content) yield fileEntry(`blobs/sha256/${digestHex(b.descriptor.digest)}`, b.content);
      else if (b.file) {
        const { digest, size } = b.descriptor;
        yield { path: `blobs/sha256/${digestHex(digest)}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size, contentStream: createReadStream(b.file) };
      }
      else yield blobEntry(store, b.descriptor);
    }
    yield fileEntry('index.json', Buffer.from(canonicalJSON(index)));
    yield fileEntry('oci-layout', Buffer.from(canonicalJSON({ imageLayoutVersion: '1.0.0' })));
  }
  return gen();
}

async function dockerArchiveEntries(store: ContentStore, names: string[], cleanups: string[]): Promise<AsyncGenerator<TarEntry>> {
  const items = new Map<string, { manifest: ImageManifest; config: ImageConfig; configDescriptor: Descriptor; tags: string[] }>();
  for (const name of names) {
    const img = await loadImage(store, name);
    const key = img.manifestDescriptor.digest;
    const item = items.get(key) ?? { manifest: img.manifest, config: img.config, configDescriptor: img.configDescriptor, tags: [] };
    const tag = await tagFor(store, name);
    if (tag && !item.tags.includes(tag)) item.tags.push(tag);
    items.set(key, item);
  }
  const manifestJSON: DockerManifestItem[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const layerFiles = new Map<string, { file: string; size: number }>();
  const configs = new Map<string, Descriptor>();
  for (const item of items.values()) {
    const diffIds = item.config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== item.manifest.layers.length) {
      throw new KilnError(`image ${item.tags[0] ?? item.configDescriptor.digest} is malformed: ${item.manifest.layers.length} layers but ${diffIds.length} diff_ids`);
    }
    const layerPaths: string[] = [];
    for (let i = 0; i < diffIds.length; i++) {
      const diffId = diffIds[i];
      if (!isDigest(diffId)) throw new KilnError(`image config ${item.configDescriptor.digest} has an invalid diff_id ${JSON.stringify(diffId)}`);
      const dir = digestHex(diffId);
      layerPaths.push(`${dir}/layer.tar`);
      if (layerFiles.has(dir)) continue;
      // docker load wants the uncompressed tar; its size goes in the header, so unpack to a temp file first
      const tmp = store.tempPath('save');
      cleanups.push(tmp);
      const digester = new Digester();
      await pipeline(
        decompress(store.openBlob(item.manifest.layers[i].digest)),
        async function* (src: AsyncIterable<Buffer>) {
          for await (const chunk of src) {
            digester.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp),
      );
      const actual = digester.digest();
      if (actual !== diffId) {
        throw new KilnError(`layer ${item.manifest.layers[i].digest} uncompresses to ${actual}, but the image config says ${diffId}`, {
          hint: 'the image is inconsistent; rebuild it',
        });
      }
      layerFiles.set(dir, { file: tmp, size: digester.size });
    }
    const configFile = `${digestHex(item.configDescriptor.digest)}.json`;
    configs.set(configFile, item.configDescriptor);
    manifestJSON.push({ Config: configFile, RepoTags: item.tags.length > 0 ? item.tags : null, Layers: layerPaths });
    const top = layerPaths.length > 0 ? layerPaths[layerPaths.length - 1].split('/')[0] : digestHex(item.configDescriptor.digest);
    for (const tag of item.tags) {
      const colon = tag.lastIndexOf(':');
      const repo = tag.slice(0, colon);
      (repositories[repo] ??= {})[tag.slice(colon + 1)] = top;
    }
  }
  async function* gen(): AsyncGenerator<TarEntry> {
    for (const [dir, { file, size }] of layerFiles) {
      yield dirEntry(dir);
      yield fileEntry(`${dir}/VERSION`, Buffer.from('1.0'));
      yield { path: `${dir}/layer.tar`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size, sourcePath: file };
    }
    for (const [file, d] of configs) yield { path: file, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: d.size, contentStream: store.openBlob(d.digest) };
    yield fileEntry('manifest.json', Buffer.from(JSON.stringify(manifestJSON)));
    if (Object.keys(repositories).length > 0) yield fileEntry('repositories', Buffer.from(JSON.stringify(repositories)));
  }
  return gen();
}

// ---- loading ---------------------------------------------------------------------------------

function cleanMemberPath(name: string): string | undefined {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return undefined;
  return parts.join('/');
}

/**
 * Loads a docker archive (docker save, any version) or an OCI archive (a tar of an OCI layout),
 * optionally gzip-compressed, into the store. Every blob is verified; docker layers are stored as
 * gzip OCI layers (uncompressed ones recompressed, diff_ids kept and checked); configs keep their
 * bytes. Names are set only once everything is stored. Returns the names loaded (the manifest
 * digest for an image without a name).
 */
export async function loadArchive(store: ContentStore, file: string | NodeJS.ReadableStream): Promise<string[]> {
  const work = store.tempPath('load');
  await fsp.mkdir(work, { recursive: true });
  const what = typeof file === 'string' ? file : 'the archive';
  try {
    let input: NodeJS.ReadableStream;
    if (typeof file === 'string') {
      const st = await fsp.stat(file).catch((e: NodeJS.ErrnoException) => {
        throw new KilnError(`cannot read ${file}: ${describeErrno(e).what}`, { hint: 'check the path of the archive' });
      });
      if (!st.isFile()) throw new KilnError(`cannot read ${file}: it is not a regular file`, { hint: 'give the path of an archive written by kiln save or docker save' });
      input = createReadStream(file);
    } else {
      input = file;
    }
    const storedBlobs = new Set<string>();
    const members = await unpackMembers(store, input, work, what, storedBlobs).catch((e: unknown) => {
      throw archiveReadError(e, what);
    });
    if (members === 0) throw new KilnError(`${what} is empty`, { hint: 'give a file written by kiln save or docker save' });
    const member = async (p: string): Promise<string> => {
      const clean = cleanMemberPath(p);
      if (!clean) throw new KilnError(`${what} refers to an unsafe path ${JSON.stringify(p)}`);
      const real = await fsp.realpath(path.join(work, clean)).catch(() => undefined);
      if (!real || !real.startsWith(work + path.sep)) throw new KilnError(`${what} is incomplete: ${p} is missing`);
      return real;
    };
    const exists = (p: string) => fsp.access(path.join(work, p)).then(() => true, () => false);
    if (await exists('index.json')) return await loadOCI(store, work, what, storedBlobs);
    if (await exists('manifest.json')) return await loadDocker(store, work, what, member);
    throw new KilnError(`${what} is neither a docker archive (no manifest.json) nor an OCI archive (no index.json)`, {
      hint: 'give a file written by kiln save, docker save or an OCI exporter',
    });
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** Stores the blobs of an archive's members and writes the rest under `work`; returns how many members it had. */
async function unpackMembers(store: ContentStore, input: NodeJS.ReadableStream, work: string, what: string, storedBlobs: Set<string>): Promise<number> {
  let members = 0;
  for await (const { header, stream } of tarEntries(input)) {
    members++;
    const p = cleanMemberPath(header.name);
    if (p === undefined) throw new KilnError(`${what} contains an unsafe path ${JSON.stringify(header.name)}`);
    if (p === '') continue;
    const blob = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p);
    if (blob && (header.type === 'file' || header.type === 'contiguous-file')) {
      await store.writeBlobFromStream(stream as AsyncIterable<Buffer>, `sha256:${blob[1]}`);
      storedBlobs.add(`sha256:${blob[1]}`);
      continue;
    }
    const target = path.join(work, p);
    if (header.type === 'directory') {
      await fsp.mkdir(target, { recursive: true });
    } else if (header.type === 'file' || header.type === 'contiguous-file') {
      await fsp.mkdir(path.dirname(target), { recursive: true });
      await pipeline(stream, createWriteStream(target));
    } else if (header.type === 'symlink' && header.linkname) {
      await fsp.mkdir(path.dirname(target), { recursive: true });
      await fsp.symlink(header.linkname, target);
    } else if (header.type === 'link' && header.linkname) {
      const src = cleanMemberPath(header.linkname);
      if (src) {
        await fsp.mkdir(path.dirname(target), { recursive: true });
        await fsp.link(path.join(work, src), target).catch(() => undefined);
      }
    }
  }
  return members;
}

function nameFromAnnotations(annotations: Record<string, string> | undefined): string | undefined {
  const candidates = [annotations?.[ContainerdImageNameAnnotation], annotations?.[RefNameAnnotation]];
  for (const c of candidates) {
    if (!c) continue;
    try {
      const ref = parseReference(c);
      if (ref.digest === undefined) return normalizeTagName(c);
    } catch {
      // a bare tag ("latest") or something else that is not a full name
    }
  }
  return undefined;
}

async function loadOCI(store: ContentStore, work: string, what: string, storedBlobs: Set<string>): Promise<string[]> {
  let index: ImageIndex;
  try {
    index = JSON.parse(await fsp.readFile(path.join(work, 'index.json'), 'utf8')) as ImageIndex;
    if (!Array.isArray(index.manifests)) throw new Error('manifests is not an array');
  } catch (e) {
    throw new KilnError(`${what} has an invalid index.json: ${(e as Error).message}`);
  }
  const check = async (d: Descriptor, optional: boolean): Promise<void> => {
    if (!(await store.hasBlob(d.digest))) {
      if (optional) return;
      throw new KilnError(`${what} is incomplete: blob ${d.digest} (${d.mediaType}) is missing`);
    }
    if (!storedBlobs.has(d.digest)) storedBlobs.add(d.digest);
    if (isIndexType(d.mediaType)) {
      const child = await store.readJSON<ImageIndex>(d.digest);
      for (const m of child.manifests) await check(m, true);
    } else if (isManifestType(d.mediaType)) {
      const m = await store.readJSON<ImageManifest>(d.digest);
      await check(m.config, false);
      for (const l of m.layers) await check(l, false);
    }
  };
  const loaded: string[] = [];
  const toTag: [string, Descriptor][] = [];
  for (const d of index.manifests) {
    await check(d, false);
    const name = nameFromAnnotations(d.annotations);
    const clean: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}) };
    if (name) toTag.push([name, clean]);
    else loaded.push(d.digest);
  }
  for (const [name, d] of toTag) {
    await store.setRef(name, d);
    loaded.push(name);
  }
  return loaded;
}

async function loadDocker(store: ContentStore, work: string, what: string, member: (p: string) => Promise<string>): Promise<string[]> {
  let items: DockerManifestItem[];
  try {
    items = JSON.parse(await fsp.readFile(path.join(work, 'manifest.json'), 'utf8')) as DockerManifestItem[];
    if (!Array.isArray(items)) throw new Error('not an array');
  } catch (e) {
    throw new KilnError(`${what} has an invalid manifest.json: ${(e as Error).message}`);
  }
  const open = async (p: string): Promise<NodeJS.ReadableStream> => {
    const blob = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(cleanMemberPath(p) ?? '');
    if (blob && (await store.hasBlob(`sha256:${blob[1]}`))) return store.openBlob(`sha256:${blob[1]}`);
    return createReadStream(await member(p));
  };
  const readAll = async (p: string): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of (await open(p)) as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  };
  const layerCache = new Map<string, { descriptor: Descriptor; diffId: string }>();
  const loaded: string[] = [];
  const toTag: [string, Descriptor][] = [];
  for (const item of items) {
    if (typeof item?.Config !== 'string' || !Array.isArray(item.Layers)) {
      throw new KilnError(`${what} has an invalid manifest.json entry (no Config or Layers)`);
    }
    const configBytes = await readAll(item.Config);
    let config: ImageConfig;
    try {
      config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    } catch (e) {
      throw new KilnError(`${what}: image config ${item.Config} is not valid JSON`, { cause: e });
    }
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== item.Layers.length) {
      throw new KilnError(`${what}: image config ${item.Config} lists ${diffIds.length} diff_ids for ${item.Layers.length} layers`);
    }
    const layers: Descriptor[] = [];
    for (let i = 0; i < item.Layers.length; i++) {
      const key = cleanMemberPath(item.Layers[i]) ?? item.Layers[i];
      let layer = layerCache.get(key);
      if (!layer) {
        const stream = await open(item.Layers[i]);
        layer = await storeTarAsLayer(store, () => stream);
        layerCache.set(key, layer);
      }
      if (layer.diffId !== diffIds[i]) {
        throw new KilnError(`${what}: layer ${item.Layers[i]} has diff_id ${layer.diffId}, but its image config says ${diffIds[i]}`, {
          hint: 'the archive is corrupt; save it again',
        });
      }
      layers.push(layer.descriptor);
    }
    const stored = await store.writeBlob(configBytes);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: stored.digest, size: stored.size },
      layers,
    };
    const manifestDescriptor = await store.writeJSON(manifest, MediaType.ociManifest);
    // docker save and skopeo write RepoTags fully qualified (docker.io/library/app:1); docker load shows them familiar, as kiln does
    const tags = (item.RepoTags ?? []).map((t) => familiarName(normalizeTagName(t)));
    if (tags.length === 0) loaded.push(manifestDescriptor.digest);
    for (const t of tags) toTag.push([t, manifestDescriptor]);
  }
  for (const [name, d] of toTag) {
    await store.setRef(name, d);
    loaded.push(name);
  }
  return loaded;
}
