/**
 * Reading image archives into the store: the import side of src/export/'s docker and OCI
 * archive exporters (and of docker save, skopeo, buildx --output type=oci). It stays in oci/
 * beside import.ts, as a source of images like a registry pull will be, not a sink.
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describeErrno, fromErrno, isErrnoError, KilnError } from '../errors.js';
import { familiarName, normalizeTagName, parseReference } from './reference.js';
import { storeTarAsLayer } from './layer.js';
import { isIndexType, isManifestType, type ContentStore } from './store.js';
import { tarEntries, TarReadError } from './tar.js';
import { MediaType, RefNameAnnotation, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from './types.js';

/** containerd's and docker's annotation for the full image name in an OCI layout index. */
export const ContainerdImageNameAnnotation = 'io.containerd.image.name';

/** One image of a docker archive's manifest.json. */
export interface DockerManifestItem {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

/**
 * A failure reading an archive as a KilnError that says what is wrong with the file, never
 * the zlib or tar library's words: truncated, not gzip, not tar. System errors (a full
 * disk while storing what was read) keep their own meaning.
 */
export function archiveReadError(e: unknown, what: string, remake = 'write it again, e.g. with kiln save or docker save'): KilnError {
  let inner: unknown = e;
  // tarEntries wraps the library's error; look at the original
  if (inner instanceof TarReadError && inner.cause !== undefined) inner = inner.cause;
  if (inner instanceof KilnError) return inner;
  if (isErrnoError(inner)) return fromErrno(inner);
  const err = inner as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : '';
  const msg = typeof err?.message === 'string' ? err.message : String(inner);
  const hint = `the file is incomplete or damaged (an interrupted download or copy?): ${remake}`;
  if (code.startsWith('Z_') || /unexpected end of file|incorrect header check|invalid (block type|distance|code|stored block)/i.test(msg)) {
    return new KilnError(`${what} is not a complete gzip stream: it is truncated or corrupt`, { code: 'invalid', hint, cause: inner });
  }
  if (/unexpected end of data/i.test(msg)) return new KilnError(`${what} is truncated: the tar data ends inside an entry`, { code: 'invalid', hint, cause: inner });
  if (/invalid (tar )?header/i.test(msg)) return new KilnError(`${what} is not a valid tar archive (a header is corrupt)`, { code: 'invalid', hint, cause: inner });
  return new KilnError(`${what} cannot be read as an archive: ${msg}`, { code: 'invalid', hint, cause: inner });
}

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
