/**
 * The cataloguer: what packages one platform's image contains, and which layer brought each.
 *
 * The layers are read in order as tar entries (never the host filesystem, so a symlink in a
 * layer is only a name here). Whiteouts (`.wh.NAME`, `.wh..wh..opq`) and entries that replace
 * a path delete what lower layers had there, so the final filesystem decides what is present.
 * Only files of interest are read, each as it streams past:
 *   - text databases (dpkg status and status.d/, apk's installed, package.json, package-lock.json,
 *     METADATA/PKG-INFO, copyright, os-release) whole, up to TEXT_MAX each (larger ones are skipped);
 *   - Java archives into memory up to ARCHIVE_MAX (members up to java.ts NESTED_MAX);
 *   - executables streamed through the Go build-info scanner in constant memory (golang.ts).
 * What is kept is the packages each file declares, not the file.
 *
 * Layer attribution: every time a file of interest is written again (a RUN rewriting dpkg's
 * status), a package it still declares with the same version keeps the layer it had; a new one
 * (or a new version) gets this layer. A package's first location is therefore the layer from
 * which it is continuously present, with that version, up to the final image.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Provider } from '../oci/content.js';
import { KilnError } from '../errors.js';
import { readLayer } from '../oci/layer.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../oci/types.js';
import { parseApkInstalled, parseDpkgStatus, parseNpmLock, parseNpmPackageJson, parseOsRelease, parsePythonMetadata, type Found } from './ecosystems.js';
import { debianCopyrightLicenses } from './licenses.js';
import { GoBuildInfoScanner, goPackages } from './golang.js';
import { javaPackages } from './java.js';
import { purlOf } from './purl.js';
import type { Catalog, CatalogPackage, Ecosystem, OsRelease, PackageLocation } from './types.js';

/** Largest text database read (dpkg's status of a large image is a few MiB). */
export const TEXT_MAX = 64 << 20;
/** Largest Java archive read into memory. */
export const ARCHIVE_MAX = 256 << 20;
/** Executables smaller than this are not scanned for Go build info (a Go binary is over 1 MiB). */
const ELF_MIN = 64 << 10;
/** Symlinks followed when resolving a path in the image's view before giving up (a loop). */
const MAX_LINKS = 40;

type Kind = 'dpkg' | 'apk' | 'npm' | 'npm-lock' | 'python' | 'copyright' | 'os-release' | 'java' | 'go';

interface Held extends Found {
  /** The layer from which this package is continuously present in this file. */
  since: number;
}

interface Rec {
  layer: number;
  kind: Kind;
  found: Held[];
  /** copyright: the licences; os-release: the parsed release. */
  licenses?: string[];
  os?: OsRelease;
}

const NPM_PACKAGE = /^(?:(?:@[^/]+\/)?[^/@.][^/]*\/node_modules\/)*(?:@[^/]+\/)?[^/@.][^/]*\/package\.json$/;

/** Which cataloguer reads the file at `p` (absolute, normalised), by its path alone. */
function kindOf(p: string): Kind | undefined {
  if (p === '/var/lib/dpkg/status' || (p.startsWith('/var/lib/dpkg/status.d/') && !p.endsWith('.md5sums') && p.indexOf('/', 23) === -1)) return 'dpkg';
  if (/^\/usr\/share\/doc\/[^/]+\/copyright$/.test(p)) return 'copyright';
  if (p === '/lib/apk/db/installed' || p === '/usr/lib/apk/db/installed') return 'apk';
  if (p === '/etc/os-release' || p === '/usr/lib/os-release') return 'os-release';
  const nm = p.indexOf('/node_modules/');
  if (nm >= 0 && p.endsWith('/package.json') && NPM_PACKAGE.test(p.slice(nm + '/node_modules/'.length))) return 'npm';
  if (p.endsWith('/package-lock.json') && nm < 0) return 'npm-lock';
  if (/\.dist-info\/METADATA$|\.egg-info\/PKG-INFO$|\.egg-info$/.test(p)) return 'python';
  if (/\.(jar|war|ear)$/i.test(p)) return 'java';
  return undefined;
}

/** A tar entry name → an absolute, normalised path inside the image; undefined for the root or a name with '..' (kiln's unpacker refuses those). */
function imagePath(name: string): string | undefined {
  if (name.split('/').includes('..')) return undefined;
  const p = path.posix.normalize(`/${name}`).replace(/\/+$/, '');
  return p === '' || p === '/' ? undefined : p;
}

/** Feeds every chunk of an entry's stream to `onChunk` and resolves at its end (the stream is read to the end, never destroyed: the tar reader owns it). */
function consume(stream: Readable, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('data', onChunk);
    stream.once('end', resolve);
    stream.once('error', reject);
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await consume(stream, (c) => chunks.push(c));
  return Buffer.concat(chunks);
}

const keyOf = (f: Found): string => `${f.ecosystem}\0${f.name}\0${f.version}\0${f.arch ?? ''}\0${f.inner ?? ''}`;

/** The filesystem as the layers read so far make it, as far as the cataloguer needs it. */
class View {
  readonly records = new Map<string, Rec>();
  readonly links = new Map<string, { target: string; layer: number }>();
  /** Every directory above a record or link (a superset): a non-directory landing on one hides what is below. */
  private readonly dirs = new Set<string>();

  private noteDirs(p: string): void {
    for (let d = path.posix.dirname(p); d !== '/' && !this.dirs.has(d); d = path.posix.dirname(d)) this.dirs.add(d);
  }

  /** Removes what lower layers (below `layer`) had at `p` and, when `under`, below it. */
  remove(p: string, layer: number, under: boolean): void {
    for (const map of [this.records, this.links] as Array<Map<string, { layer: number }>>) {
      const at = map.get(p);
      if (at && at.layer < layer) map.delete(p);
      if (!under || !this.dirs.has(p)) continue;
      const prefix = `${p}/`;
      for (const [k, v] of map) if (v.layer < layer && k.startsWith(prefix)) map.delete(k);
    }
  }

  /** A new version of the file at `p` in `layer`: packages it declares as `previous` (the file it replaces) did keep their layer. */
  set(p: string, layer: number, kind: Kind, found: Found[], extra: Partial<Rec>, previous: Rec | undefined): void {
    const before = new Map((previous?.found ?? []).map((h) => [keyOf(h), h.since]));
    this.records.set(p, { layer, kind, found: found.map((f) => ({ ...f, since: before.get(keyOf(f)) ?? layer })), ...extra });
    this.noteDirs(p);
  }

  link(p: string, target: string, layer: number): void {
    this.links.set(p, { target, layer });
    this.noteDirs(p);
  }

  /** `p` with the symlinks in the image's view followed, within the image (an absolute target is the image's root). */
  resolve(p: string): string | undefined {
    let parts = p.split('/').filter(Boolean);
    let followed = 0;
    for (let i = 0; i < parts.length; i++) {
      const at = `/${parts.slice(0, i + 1).join('/')}`;
      const link = this.links.get(at);
      if (!link) continue;
      if (++followed > MAX_LINKS) return undefined;
      const base = link.target.startsWith('/') ? [] : parts.slice(0, i);
      const joined = path.posix.normalize(`/${[...base, link.target, ...parts.slice(i + 1)].join('/')}`);
      // '..' above the root stays at the root, as the kernel resolves it inside a chroot
      parts = joined.split('/').filter((s) => s !== '' && s !== '..');
      i = -1;
    }
    return `/${parts.join('/')}`;
  }

  lookup(p: string): Rec | undefined {
    const r = this.resolve(p);
    return r === undefined ? undefined : this.records.get(r);
  }
}

/** Reads one entry of interest into the view. */
async function readEntry(
  view: View,
  p: string,
  kind: Kind | undefined,
  entry: { header: { mode?: number; size?: number }; stream: Readable },
  layer: number,
  previous: Rec | undefined,
): Promise<void> {
  const set = (found: Found[], extra: Partial<Rec> = {}): void => view.set(p, layer, kind ?? 'go', found, extra, previous);
  const size = entry.header.size ?? 0;
  if (kind === undefined) {
    // an executable may be a Go binary: its build info is found while the bytes stream past
    if (((entry.header.mode ?? 0) & 0o111) === 0 || size < ELF_MIN) return;
    const scanner = new GoBuildInfoScanner();
    await consume(entry.stream, (c) => scanner.push(c));
    const info = scanner.result();
    if (info) set(goPackages(info));
    return;
  }
  if (size > (kind === 'java' ? ARCHIVE_MAX : TEXT_MAX)) return;
  const data = await readAll(entry.stream);
  if (kind === 'java') {
    set(javaPackages(data));
    return;
  }
  const text = data.toString('utf8');
  switch (kind) {
    case 'dpkg':
      return set(parseDpkgStatus(text));
    case 'apk':
      return set(parseApkInstalled(text));
    case 'npm':
      return set(parseNpmPackageJson(text));
    case 'npm-lock':
      return set(parseNpmLock(text));
    case 'python':
      return set(parsePythonMetadata(text));
    case 'copyright':
      return set([], { licenses: debianCopyrightLicenses(text) });
    case 'os-release':
      return set([], { os: parseOsRelease(text) });
  }
}

/** Applies one layer's entries to the view. */
async function applyLayer(view: View, store: Pick<Provider, 'openBlob'>, descriptor: Descriptor, layer: number): Promise<void> {
  for await (const entry of readLayer(store, descriptor)) {
    const p = imagePath(entry.header.name);
    if (!p) continue;
    const base = path.posix.basename(p);
    if (base === '.wh..wh..opq') {
      view.remove(path.posix.dirname(p), layer, true);
      // the directory itself stays
      continue;
    }
    if (base.startsWith('.wh.')) {
      view.remove(path.posix.join(path.posix.dirname(p), base.slice(4)), layer, true);
      continue;
    }
    const type = entry.header.type ?? 'file';
    // whatever lower layers had at p is replaced; a non-directory also hides what was below p
    const previous = view.records.get(p);
    view.remove(p, layer, type !== 'directory');
    if (type === 'symlink') view.link(p, entry.header.linkname ?? '', layer);
    else if (type === 'link') {
      // a hard link: the same file as an earlier entry of this layer (or, in a broken layer, a lower one)
      const target = imagePath(entry.header.linkname ?? '');
      const rec = target ? view.records.get(target) : undefined;
      if (rec) view.set(p, layer, rec.kind, rec.found, { licenses: rec.licenses, os: rec.os }, previous);
    } else if (type === 'file' || type === 'contiguous-file') {
      await readEntry(view, p, kindOf(p), entry, layer, previous);
    }
  }
}

function mergeLicenses(a: string[], b: string[] | undefined): string[] {
  return b?.length ? [...new Set([...a, ...b])].sort() : a;
}

const ECOSYSTEM_ORDER: Ecosystem[] = ['deb', 'apk', 'npm', 'pypi', 'golang', 'maven'];

function comparePackages(a: CatalogPackage, b: CatalogPackage): number {
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return (
    ECOSYSTEM_ORDER.indexOf(a.ecosystem) - ECOSYSTEM_ORDER.indexOf(b.ecosystem) ||
    cmp(a.name, b.name) ||
    cmp(a.version, b.version) ||
    cmp(a.locations[0]?.path ?? '', b.locations[0]?.path ?? '') ||
    cmp(a.purl, b.purl)
  );
}

function compareLocations(a: PackageLocation, b: PackageLocation): number {
  return a.layer - b.layer || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

/** The final view → the catalogue's packages, merged by purl (one package, every place it is found). */
function assemble(view: View, diffIds: string[], os: OsRelease | undefined): CatalogPackage[] {
  const byPurl = new Map<string, CatalogPackage>();
  const npmDirs = new Set<string>();
  for (const [p, rec] of view.records) if (rec.kind === 'npm' && rec.found.length) npmDirs.add(p.slice(0, p.indexOf('/node_modules/')));
  for (const [p, rec] of view.records) {
    // a lock file only speaks for a project whose node_modules is not installed (the installed packages are the truth)
    if (rec.kind === 'npm-lock' && npmDirs.has(path.posix.dirname(p))) continue;
    for (const f of rec.found) {
      let licenses = f.licenses ?? [];
      if (f.ecosystem === 'deb') licenses = mergeLicenses(licenses, view.lookup(`/usr/share/doc/${f.name}/copyright`)?.licenses);
      const purl = purlOf(f, os);
      const location: PackageLocation = { layer: f.since, diffId: diffIds[f.since], path: f.inner ? `${p}!/${f.inner}` : p };
      const have = byPurl.get(purl);
      if (have) {
        have.locations.push(location);
        have.licenses = mergeLicenses(have.licenses, licenses);
        continue;
      }
      const pkg: CatalogPackage = { name: f.name, version: f.version, ecosystem: f.ecosystem, purl, licenses: [...licenses].sort(), locations: [location] };
      if (f.sourceName) pkg.sourceName = f.sourceName;
      if (f.sourceVersion) pkg.sourceVersion = f.sourceVersion;
      if (f.arch) pkg.arch = f.arch;
      if (f.goVersion) pkg.goVersion = f.goVersion;
      if (f.groupId) pkg.groupId = f.groupId;
      byPurl.set(purl, pkg);
    }
  }
  const packages = [...byPurl.values()];
  for (const pkg of packages) pkg.locations.sort(compareLocations);
  return packages.sort(comparePackages);
}

/**
 * Catalogues one platform's image manifest: its packages as present in the final filesystem,
 * each with the layer that brought it in, and the OS from /etc/os-release.
 */
export async function catalogImage(store: Provider, manifest: Descriptor): Promise<Catalog> {
  const m = await store.readJSON<ImageManifest>(manifest.digest);
  if (!m || typeof m !== 'object' || !m.config || !Array.isArray(m.layers)) {
    throw new KilnError(`manifest ${manifest.digest} is not an image manifest (no config or layers)`, { code: 'invalid', hint: 'catalogue one platform: pass its image manifest, not an index' });
  }
  const config = await store.readJSON<ImageConfig>(m.config.digest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== m.layers.length) {
    throw new KilnError(`image ${manifest.digest} lists ${m.layers.length} layers but its config ${diffIds.length} diff ids`, {
      code: 'invalid',
      hint: 'the image is malformed: rebuild it, or pull/load it again',
    });
  }
  const view = new View();
  for (let i = 0; i < m.layers.length; i++) await applyLayer(view, store, m.layers[i], i);
  const os = (view.lookup('/etc/os-release') ?? view.lookup('/usr/lib/os-release'))?.os;
  const platform: Platform | undefined = config.os && config.architecture ? { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) } : manifest.platform;
  const catalog: Catalog = { manifestDigest: manifest.digest, diffIds: [...diffIds], packages: assemble(view, diffIds, os) };
  if (platform) catalog.platform = platform;
  if (os) catalog.os = os;
  return catalog;
}
