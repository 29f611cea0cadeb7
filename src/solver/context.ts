/**
 * The local build context: one walk honouring .dockerignore, content checksums kept
 * against (path, size, mtime, ctime, inode) so an unchanged context is not read again.
 *
 * A no-op rebuild is made cheap in three ways:
 * - the walk runs in a child process (GNU find, its output through a pipe), started by `open()` so it overlaps with
 *   the rest of start-up; a JS walk is the fallback when find is missing or misbehaves;
 * - a fingerprint of find's raw output (which includes inode, size, mtime, ctime, mode,
 *   owner and link target of every entry) and of the .dockerignore patterns keys a small
 *   side file of memoised `checksum()` results: when nothing changed, a checksum is a
 *   lookup, with no parsing of entries and no loading of the per-file hash cache;
 * - the per-file hash cache is loaded only when a checksum has to be computed, and is kept
 *   in a NUL-separated format that parses several times faster than JSON objects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, promises as fs, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { excludeMatcher, ignoreMatcher, readIgnorePatterns, type DockerIgnore } from '../dockerignore.js';
import { KilnError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { decodeName, fsPath } from '../fsname.js';
import { hasWildcard, matchPath } from './match.js';

export interface ContextEntry {
  /** Relative path with '/' separators, no leading './'. */
  rel: string;
  /** 'other': a socket or device node (copied as an empty file, as BuildKit's context transfer does). */
  type: 'file' | 'directory' | 'symlink' | 'fifo' | 'other';
  mode: number;
  size: number;
  mtimeMs: number;
  /** Status-change time: moves on every content write, and cannot be set back by a user. */
  ctimeMs?: number;
  ino: number;
  uid: number;
  gid: number;
  linkname?: string;
}

/** A COPY source as resolved: the entry copied, and the path it was named or matched as. */
export type ResolvedSource = ContextEntry & { matched: string };

export interface ResolvedSources {
  pattern: string;
  roots: ResolvedSource[];
  /** Every entry the roots bring (a root directory's own entry excluded), in walk order. */
  files: ContextEntry[];
}

const CONTEXT_ROOT: ContextEntry = { rel: '', type: 'directory', mode: 0o755, size: 0, mtimeMs: 0, ino: 0, uid: 0, gid: 0 };
/** Symlinks followed while resolving one path, as Linux allows. */
const MAX_LINK_HOPS = 40;

/**
 * `rel` resolved within the context's entries, every symlink on it (the last one included)
 * interpreted as if the context were `/`; undefined when a part is missing or excluded.
 */
export function resolveEntry(entries: Map<string, ContextEntry>, rel: string): string | undefined {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  const cur: string[] = [];
  let hops = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === '..') {
      cur.pop();
      continue;
    }
    const candidate = cur.length === 0 ? part : `${cur.join('/')}/${part}`;
    const e = entries.get(candidate);
    if (!e) return undefined;
    if (e.type === 'symlink') {
      if (++hops > MAX_LINK_HOPS) return undefined;
      const target = e.linkname ?? '';
      if (target.startsWith('/')) cur.length = 0;
      parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    cur.push(part);
  }
  return cur.join('/');
}

/**
 * The entries a wildcard pattern matches, as BuildKit's copy resolves them: the part before
 * the first wildcard segment is resolved (symlinks followed), the rest is matched segment
 * by segment below it. Matches are the unfollowed paths, in walk order.
 */
function wildcardMatches(entries: Map<string, ContextEntry>, pattern: string): string[] {
  const segs = pattern.split('/');
  const first = segs.findIndex((s) => hasWildcard(s));
  const prefix = first === 0 ? '' : resolveEntry(entries, segs.slice(0, first).join('/'));
  if (prefix === undefined) return [];
  const rest = segs.slice(first);
  const base = prefix === '' ? '' : `${prefix}/`;
  const out: string[] = [];
  for (const e of entries.values()) {
    if (!e.rel.startsWith(base)) continue;
    const tail = e.rel.slice(base.length).split('/');
    if (tail.length === rest.length && tail.every((t, i) => matchPath(rest[i], t))) out.push(e.rel);
  }
  return out;
}

/** Which walk produced the entries; `open({ walker })` forces one (tests compare them). */
export type ContextWalker = 'find' | 'js';

/** Bumped whenever what the fingerprint or the memoised sums mean changes. */
const FORMAT = 'kiln-context-sums-v3';
const HASH_CACHE_HEADER = 'kiln-hashcache-v2';
/** type, inode, size, mtime, ctime, permission bits (incl. 07000), uid, gid, path, link target. */
const FIND_FORMAT = '%y\\0%i\\0%s\\0%T@\\0%C@\\0%m\\0%U\\0%G\\0%P\\0%l\\0';
const FIND_FIELDS = 10;
/**
 * A file whose ctime is this close to the start of the walk may change again within the
 * same timestamp granule (a jiffy on Linux, a second on some filesystems) without its
 * stat changing, so its digest is neither persisted nor allowed into a memoised sum.
 */
const RACY_MS = 1100;
const HEX_DIGEST = /^[a-f0-9]{64}$/;
/** Per-file maps kept beside the hash caches (all contexts of a root share them), most recently used first. */
export const FILE_MAPS_KEPT = 50;

interface FindWalk {
  /** find's stdout when it exited 0 with well-framed output, else undefined. */
  output: Promise<Buffer | undefined>;
  /** Keeps the event loop alive for the child while someone waits for it. */
  ref(): void;
}

interface StoredSums {
  v: string;
  fingerprint: string;
  sums: Record<string, string>;
}

export class BuildContext {
  readonly dir: string;
  readonly ignorePatterns: string[];
  /** What the checksums of this context did: for tests and KILN_TRACE. */
  readonly stats = { fastPath: 0, slowPath: 0, filesHashed: 0, walker: undefined as ContextWalker | undefined };
  private readonly ignore: DockerIgnore;
  private find?: FindWalk;
  private walkStartMs = Date.now();
  private entries?: Promise<Map<string, ContextEntry>>;
  private storedSums?: Promise<StoredSums | undefined>;
  private memo?: Promise<Map<string, string> | undefined>;
  private memoDirty = false;
  /** Set when find's output could not be parsed: its fingerprint must not key anything. */
  private memoDisabled = false;
  private fingerprint?: string;
  private hashCache?: Promise<Map<string, string>>;
  private hashCacheDirty = false;
  /** Per-file maps (by hex digest) this process's checksums stand for, and whether it wrote one. */
  private readonly usedMaps = new Set<string>();
  private wroteMap = false;
  /** Digests of racy files: used in this process, never persisted. */
  private readonly volatileDigests = new Map<string, string>();

  private constructor(
    dir: string,
    patterns: string[],
    private readonly hashCacheFile?: string,
  ) {
    this.dir = dir;
    this.ignorePatterns = patterns;
    this.ignore = ignoreMatcher(patterns);
  }

  /** Opens a context directory and starts walking it in the background. */
  static async open(dir: string, options: { hashCacheFile?: string; ignoreFile?: string; walker?: ContextWalker } = {}): Promise<BuildContext> {
    const abs = path.resolve(dir);
    const st = await fs.stat(abs).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new KilnError(`build context "${dir}" is not a directory`, { hint: 'pass the directory to build from, e.g. kiln build .' });
    }
    // read (and checked) before the walk starts: a bad pattern leaves no walker behind
    const ignoreFile = options.ignoreFile ?? path.join(abs, '.dockerignore');
    const patterns = await readIgnorePatterns(ignoreFile, path.relative(process.cwd(), ignoreFile) || ignoreFile);
    const walkStartMs = Date.now();
    const find = options.walker === 'js' ? undefined : startFind(abs);
    const ctx = new BuildContext(abs, patterns, options.hashCacheFile);
    ctx.walkStartMs = walkStartMs;
    ctx.find = find;
    if (options.hashCacheFile && find) ctx.storedSums = readSums(sumsFileOf(options.hashCacheFile));
    return ctx;
  }

  isIgnored(rel: string): boolean {
    return rel !== '' && this.ignore.ignores(rel);
  }

  /** All entries of the context not excluded by .dockerignore, in walk order (sorted per directory). */
  list(): Promise<Map<string, ContextEntry>> {
    this.entries ??= (async () => {
      this.find?.ref();
      const out = this.find ? await this.find.output : undefined;
      const raw = out ? parseFindOutput(out) : undefined;
      if (raw) {
        this.stats.walker = 'find';
        return this.applyIgnore(raw);
      }
      // find is missing, failed or printed something unexpected: its fingerprint means nothing
      if (out) this.memoDisabled = true;
      this.stats.walker = 'js';
      this.walkStartMs = Date.now();
      return this.walkJs();
    })();
    return this.entries;
  }

  /** The JS walk: synchronous, as a sync readdir/lstat walk is several times faster than the async one. */
  private walkJs(): Map<string, ContextEntry> {
    const hasExceptions = this.ignorePatterns.some((p) => p.startsWith('!'));
    const out = new EntryCollector();
    const walk = (relDir: string): void => {
      const absDir = relDir ? path.join(this.dir, relDir) : this.dir;
      for (const name of readdirSync(fsPath(absDir), { encoding: 'buffer' }).map(decodeName).sort()) {
        const rel = relDir ? `${relDir}/${name}` : name;
        const abs = path.join(absDir, name);
        const st = lstatSync(fsPath(abs));
        const ignored = this.isIgnored(rel);
        if (st.isDirectory()) {
          if (ignored && !hasExceptions) continue;
          out.enter(entryOf(rel, st, 'directory'), ignored);
          walk(rel);
          out.leave();
          continue;
        }
        if (ignored) continue;
        if (st.isSymbolicLink()) out.add({ ...entryOf(rel, st, 'symlink'), linkname: decodeName(readlinkSync(fsPath(abs), { encoding: 'buffer' })) });
        else out.add(entryOf(rel, st, st.isFile() ? 'file' : st.isFIFO() ? 'fifo' : 'other'));
      }
    };
    walk('');
    return out.entries;
  }

  /** Orders find's entries as the JS walk does (each directory's names sorted, parents first) and applies .dockerignore. */
  private applyIgnore(raw: ContextEntry[]): Map<string, ContextEntry> {
    const children = new Map<string, ContextEntry[]>();
    for (const e of raw) {
      const slash = e.rel.lastIndexOf('/');
      const parent = slash < 0 ? '' : e.rel.slice(0, slash);
      const list = children.get(parent);
      if (list) list.push(e);
      else children.set(parent, [e]);
    }
    const hasExceptions = this.ignorePatterns.some((p) => p.startsWith('!'));
    const noPatterns = this.ignorePatterns.length === 0;
    const out = new EntryCollector();
    // siblings share their parent's prefix, so comparing whole paths compares names as readdir().sort() does
    const byPath = (a: ContextEntry, b: ContextEntry): number => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0);
    const visit = (parent: string): void => {
      const list = children.get(parent);
      if (!list) return;
      list.sort(byPath);
      for (const e of list) {
        const ignored = !noPatterns && this.isIgnored(e.rel);
        if (e.type === 'directory') {
          if (ignored && !hasExceptions) continue;
          out.enter(e, ignored);
          visit(e.rel);
          out.leave();
          continue;
        }
        if (!ignored) out.add(e);
      }
    };
    visit('');
    return out.entries;
  }

  /** Memoised sums for the current fingerprint; undefined when there is no fingerprint (no find). */
  private memoised(): Promise<Map<string, string> | undefined> {
    this.memo ??= (async () => {
      if (!this.find) return undefined;
      this.find.ref();
      const out = await this.find.output;
      if (!out) return undefined;
      const h = createHash('sha256');
      h.update(`${FORMAT}\0${this.dir}\0${JSON.stringify(this.ignorePatterns)}\0`);
      h.update(out);
      this.fingerprint = h.digest('hex');
      const stored = await this.storedSums;
      if (stored && stored.fingerprint === this.fingerprint) return new Map(Object.entries(stored.sums));
      return new Map();
    })();
    return this.memo;
  }

  private loadHashCache(): Promise<Map<string, string>> {
    this.hashCache ??= this.hashCacheFile ? readHashCache(this.hashCacheFile) : Promise.resolve(new Map<string, string>());
    return this.hashCache;
  }

  private isRacy(e: ContextEntry): boolean {
    return e.ctimeMs === undefined || e.ctimeMs >= this.walkStartMs - RACY_MS;
  }

  /** Content digest (hex) of a regular file, from the stat-keyed cache when unchanged. */
  async fileDigest(e: ContextEntry): Promise<string> {
    const cache = await this.loadHashCache();
    return this.cachedDigest(cache, e) ?? this.hashFile(cache, e);
  }

  private cachedDigest(cache: Map<string, string>, e: ContextEntry): string | undefined {
    const stamp = stampOf(e);
    const cached = this.volatileDigests.get(e.rel) ?? cache.get(e.rel);
    if (cached !== undefined && cached.length === stamp.length + 65 && cached.startsWith(stamp) && cached[stamp.length] === ' ') {
      return cached.slice(stamp.length + 1);
    }
    return undefined;
  }

  private async hashFile(cache: Map<string, string>, e: ContextEntry): Promise<string> {
    const h = createHash('sha256');
    await new Promise<void>((resolve, reject) => {
      createReadStream(fsPath(path.join(this.dir, e.rel)))
        .on('data', (c) => h.update(c))
        .on('end', resolve)
        .on('error', reject);
    });
    const digest = h.digest('hex');
    this.stats.filesHashed++;
    if (this.isRacy(e)) {
      this.volatileDigests.set(e.rel, `${stampOf(e)} ${digest}`);
    } else {
      cache.set(e.rel, `${stampOf(e)} ${digest}`);
      this.hashCacheDirty = true;
    }
    return digest;
  }

  /**
   * Resolves COPY sources against the context as BuildKit does: each pattern to the entries
   * it names, symlinks on the way and at the end followed within the context (a named or
   * matched link copies what it points to), a directory bringing everything below it. A
   * wildcard that matches nothing resolves to nothing; a missing plain path, or one that
   * leads out of what the context holds, throws a KilnError naming it.
   */
  async resolveSources(patterns: string[], excludes: string[] = []): Promise<ResolvedSources[]> {
    const entries = await this.list();
    const out: ResolvedSources[] = [];
    const excluded = excludeMatcher(excludes);
    for (const pattern of patterns) {
      const clean = path.posix.normalize(`/${pattern}`).slice(1).replace(/\/+$/, '');
      let matches: string[];
      if (hasWildcard(clean)) {
        matches = wildcardMatches(entries, clean);
      } else {
        matches = [clean === '.' ? '' : clean];
      }
      const roots: ResolvedSource[] = [];
      for (const matched of matches) {
        const rel = resolveEntry(entries, matched);
        const e = rel === '' ? CONTEXT_ROOT : rel === undefined ? undefined : entries.get(rel);
        if (!e) {
          if (!hasWildcard(clean) && this.isIgnored(clean) && (await fs.lstat(fsPath(path.join(this.dir, clean))).then(() => true, () => false))) {
            throw new KilnError(`COPY source "${pattern}" is excluded by .dockerignore`, { hint: 'remove it from .dockerignore or copy something else' });
          }
          throw new KilnError(`COPY source "${pattern}" not found in the build context ${this.dir}${matched !== clean ? ` (${matched} leads nowhere)` : ''}`, {
            hint: 'check the path is relative to the context directory, not excluded, and that the symlinks on it point inside the context',
          });
        }
        if (e.type !== 'directory' && (excluded(matched) || excluded(path.posix.basename(matched)))) continue;
        roots.push({ ...e, matched });
      }
      const files: ContextEntry[] = [];
      for (const r of roots) {
        if (r.type === 'directory') {
          const prefix = r.rel === '' ? '' : `${r.rel}/`;
          // --exclude patterns are relative to the directory being copied
          for (const e of entries.values()) if (e.rel.startsWith(prefix) && e.type !== 'fifo' && !excluded(e.rel.slice(prefix.length))) files.push(e);
        } else if (r.type !== 'fifo') {
          files.push(r);
        }
      }
      out.push({ pattern, roots, files });
    }
    return out;
  }

  /**
   * Digest of everything the patterns name: paths, types, modes, contents, link targets, and
   * with `owners` the uid/gid of each entry; never mtimes. Key what the step will see: a COPY
   * writes context files as 0:0 (or its --chown), so its key leaves owners out (as BuildKit's,
   * whose client resets them to 0:0 before the context is sent), and two checkouts owned by
   * different users share a cache hit; a RUN bind mount shows the real owners, so it keeps
   * them. An unchanged context answers from the memoised sums; otherwise the per-file map
   * behind the digest is kept for `readChecksumFiles` (`kiln build --explain`).
   */
  async checksum(patterns: string[], excludes: string[] = [], options: { owners?: boolean } = {}): Promise<{ digest: string }> {
    const owners = options.owners === true;
    const key = JSON.stringify(owners ? [patterns, excludes, 'owners'] : [patterns, excludes]);
    const memo = await this.memoised();
    const hit = memo?.get(key);
    if (hit !== undefined) {
      this.stats.fastPath++;
      this.usedMaps.add(hit.slice('sha256:'.length));
      return { digest: hit };
    }
    this.stats.slowPath++;
    const resolved = await this.resolveSources(patterns, excludes);
    const cache = await this.loadHashCache();
    // digests of the files in order: from the stat-keyed cache, the rest hashed several at once
    const toHash = resolved.flatMap((r) => r.files.filter((e) => e.type === 'file'));
    const digests: string[] = new Array<string>(toHash.length);
    const misses: number[] = [];
    for (let i = 0; i < toHash.length; i++) {
      const d = this.cachedDigest(cache, toHash[i]);
      if (d === undefined) misses.push(i);
      else digests[i] = d;
    }
    let next = 0;
    const hashWorker = async (): Promise<void> => {
      while (next < misses.length) {
        const i = misses[next++];
        digests[i] = await this.hashFile(cache, toHash[i]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, misses.length) }, hashWorker));
    const files: Record<string, string> = {};
    const h = createHash('sha256');
    let pending = '';
    let k = 0;
    for (const r of resolved) {
      h.update(`pattern:${r.pattern}\0roots:${r.roots.map((x) => `${x.matched === x.rel ? '' : `${x.matched}>`}${x.rel}:${x.type}`).join(',')}\0`);
      for (const e of r.files) {
        let content = '';
        if (e.type === 'file') content = digests[k++];
        else if (e.type === 'symlink') content = `link:${e.linkname}`;
        const mode = (e.mode & 0o7777).toString(8);
        const line = owners ? `${e.type}:${mode}:${e.uid}:${e.gid}:${content}` : `${e.type}:${mode}:${content}`;
        files[e.rel] = line;
        // the same bytes as one update per entry, in fewer calls
        pending += `${e.rel}\0${line}\0`;
        if (pending.length > 65536) {
          h.update(pending);
          pending = '';
        }
      }
      h.update(pending);
      pending = '';
    }
    const hex = h.digest('hex');
    this.usedMaps.add(hex);
    if (this.hashCacheFile && (await writeFilesMap(this.hashCacheFile, hex, files).catch(() => false))) this.wroteMap = true;
    if (memo && !this.memoDisabled && !toHash.some((e) => this.isRacy(e))) {
      memo.set(key, `sha256:${hex}`);
      this.memoDirty = true;
    }
    return { digest: `sha256:${hex}` };
  }

  /** Persists the hash cache and the memoised sums (each only when changed); atomic. */
  async saveHashCache(): Promise<void> {
    if (!this.hashCacheFile) return;
    await this.tendFileMaps(this.hashCacheFile).catch(() => undefined);
    if (this.memoDirty && this.fingerprint && !this.memoDisabled) {
      const memo = await this.memo;
      if (memo) {
        const stored: StoredSums = { v: FORMAT, fingerprint: this.fingerprint, sums: Object.fromEntries(memo) };
        await writeFileAtomic(sumsFileOf(this.hashCacheFile), JSON.stringify(stored));
      }
      this.memoDirty = false;
    }
    if (!this.hashCacheDirty || !this.hashCache) return;
    const cache = await this.hashCache;
    const entries = this.entries ? await this.entries.catch(() => undefined) : undefined;
    const parts: string[] = [HASH_CACHE_HEADER];
    for (const [rel, value] of cache) {
      // files gone from the context (or now ignored) are dropped
      if (entries && !entries.has(rel)) continue;
      parts.push(rel, value);
    }
    await writeFileAtomic(this.hashCacheFile, `${parts.join('\0')}\0`);
    this.hashCacheDirty = false;
  }

  /**
   * Marks the maps this build stands for as recently used, and when it added one, drops
   * the least recently used beyond FILE_MAPS_KEPT (a 20,000-file context's map is ~2 MB).
   */
  private async tendFileMaps(hashCacheFile: string): Promise<void> {
    const now = new Date();
    for (const hex of this.usedMaps) await fs.utimes(filesMapFile(hashCacheFile, hex), now, now).catch(() => undefined);
    if (!this.wroteMap) return;
    this.wroteMap = false;
    const dir = path.dirname(filesMapFile(hashCacheFile, '0'));
    const names = (await fs.readdir(dir)).filter((n) => n.endsWith('.json'));
    if (names.length <= FILE_MAPS_KEPT) return;
    const aged = await Promise.all(names.map(async (n) => ({ n, t: (await fs.stat(path.join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })));
    aged.sort((a, b) => b.t - a.t);
    for (const { n } of aged.slice(FILE_MAPS_KEPT)) {
      if (!this.usedMaps.has(n.slice(0, -'.json'.length))) await fs.rm(path.join(dir, n), { force: true });
    }
  }
}

/**
 * The per-file map (`rel → "type:mode:content"`, or `"type:mode:uid:gid:content"` for a sum
 * with owners) behind a checksum digest computed
 * with this `hashCacheFile`; undefined when it was never computed here or is gone.
 */
export async function readChecksumFiles(hashCacheFile: string, digest: string): Promise<Record<string, string> | undefined> {
  const hex = digest.replace(/^sha256:/, '');
  if (!HEX_DIGEST.test(hex)) return undefined;
  try {
    const parsed: unknown = JSON.parse(await fs.readFile(filesMapFile(hashCacheFile, hex), 'utf8'));
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
    return parsed as Record<string, string>;
  } catch {
    return undefined;
  }
}

function filesMapFile(hashCacheFile: string, hex: string): string {
  return path.join(path.dirname(hashCacheFile), 'files', `${hex}.json`);
}

function sumsFileOf(hashCacheFile: string): string {
  return `${hashCacheFile.replace(/\.json$/, '')}.sums.json`;
}

/** Writes the map unless it is there already (content-addressed: the same digest is the same map); true when written. */
async function writeFilesMap(hashCacheFile: string, hex: string, files: Record<string, string>): Promise<boolean> {
  const file = filesMapFile(hashCacheFile, hex);
  if (await fs.access(file).then(() => true, () => false)) return false;
  await writeFileAtomic(file, JSON.stringify(files));
  return true;
}

async function readSums(file: string): Promise<StoredSums | undefined> {
  try {
    const s = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<StoredSums> | null;
    if (!s || s.v !== FORMAT || typeof s.fingerprint !== 'string' || !s.sums || typeof s.sums !== 'object') return undefined;
    for (const v of Object.values(s.sums)) if (typeof v !== 'string' || !v.startsWith('sha256:')) return undefined;
    return s as StoredSums;
  } catch {
    return undefined;
  }
}

/** rel → "stamp hexdigest"; an unreadable, corrupt or older-format file is an empty cache. */
async function readHashCache(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const raw = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (!raw) return out;
  const parts = raw.split('\0');
  if (parts[0] !== HASH_CACHE_HEADER || parts.length % 2 !== 0 || parts[parts.length - 1] !== '') return out;
  for (let i = 1; i < parts.length - 1; i += 2) out.set(parts[i], parts[i + 1]);
  return out;
}

/** What a cached digest is valid for; ctime catches in-place edits that restore size and mtime. */
function stampOf(e: ContextEntry): string {
  return `${e.size}:${e.mtimeMs}:${e.ctimeMs ?? '-'}:${e.ino}`;
}

/**
 * find's output comes through a pipe: nothing is written to disk, so no listing can be left
 * behind by a build that stops early. While this process is busy find may fill the pipe and
 * wait; it is drained whenever the event loop turns, and the walk is read only once needed.
 */
function startFind(dir: string): FindWalk | undefined {
  let child: ChildProcess;
  try {
    // -H: a context given as a symlink to a directory is walked, as readdir would
    child = spawn('find', ['-H', dir, '-mindepth', '1', '-printf', FIND_FORMAT], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, LC_ALL: 'C' },
    });
  } catch {
    return undefined;
  }
  const stdout = child.stdout as (NodeJS.ReadableStream & { ref?(): void; unref?(): void }) | null;
  if (!stdout) return undefined;
  let done = false;
  const chunks: Buffer[] = [];
  const output = new Promise<Buffer | undefined>((resolve) => {
    const finish = (out: Buffer | undefined): void => {
      done = true;
      resolve(out);
    };
    stdout.on('data', (c: Buffer) => chunks.push(c));
    stdout.on('error', () => undefined);
    child.on('error', () => finish(undefined));
    child.on('close', (code) => {
      if (code !== 0) return finish(undefined);
      const out = Buffer.concat(chunks);
      finish(wellFramed(out) ? out : undefined);
    });
  });
  // a build that never reads the context must not wait for the walk to exit
  child.unref();
  stdout.unref?.();
  return {
    output,
    ref() {
      if (done) return;
      child.ref();
      stdout.ref?.();
    },
  };
}

/**
 * Cheap check before the output keys anything. A full check would cost as much as the
 * parse; it is not needed, as a fingerprint only ever matches sums stored after the same
 * bytes parsed cleanly (a parse failure disables storing).
 */
function wellFramed(out: Buffer): boolean {
  return out.length === 0 || out[out.length - 1] === 0;
}

/** Entries from find's -printf output, or undefined when any field is not what was asked for. */
export function parseFindOutput(out: Buffer): ContextEntry[] | undefined {
  const text = out.toString('utf8');
  // names that are not UTF-8 are decoded field by field, losslessly (src/fsname.ts)
  const f = text.includes('\ufffd') ? splitNames(out) : text.split('\0');
  if (f.length % FIND_FIELDS !== 1 || f[f.length - 1] !== '') return undefined;
  const entries: ContextEntry[] = [];
  for (let i = 0; i + FIND_FIELDS <= f.length; i += FIND_FIELDS) {
    const y = f[i];
    const rel = f[i + 8];
    const ino = count(f[i + 1]);
    const size = count(f[i + 2]);
    const mtimeMs = timeMs(f[i + 3]);
    const ctimeMs = timeMs(f[i + 4]);
    const mode = f[i + 5] === '' ? NaN : Number(`0o${f[i + 5]}`);
    const uid = count(f[i + 6]);
    const gid = count(f[i + 7]);
    if (y.length !== 1 || rel === '' || rel.startsWith('/')) return undefined;
    if (Number.isNaN(ino + size + mtimeMs + ctimeMs + mode + uid + gid)) return undefined;
    const type: ContextEntry['type'] = y === 'f' ? 'file' : y === 'd' ? 'directory' : y === 'l' ? 'symlink' : y === 'p' ? 'fifo' : 'other';
    const e: ContextEntry = { rel, type, mode: mode & 0o7777, size, mtimeMs, ctimeMs, ino, uid, gid };
    if (type === 'symlink') e.linkname = f[i + 9];
    entries.push(e);
  }
  return entries;
}

/** find's NUL-separated fields, each decoded as a file name. */
function splitNames(out: Buffer): string[] {
  const fields: string[] = [];
  let start = 0;
  for (let end = out.indexOf(0, start); end >= 0; end = out.indexOf(0, start)) {
    fields.push(decodeName(out.subarray(start, end)));
    start = end + 1;
  }
  fields.push(decodeName(out.subarray(start)));
  return fields;
}

/** A decimal count from find, NaN when it is anything else. */
function count(s: string): number {
  const n = s === '' ? NaN : Number(s);
  return Number.isInteger(n) && n >= 0 ? n : NaN;
}

/** "sec.nnnnnnnnn" (find prints tv_sec and tv_nsec) to milliseconds exactly as Node's Stats computes mtimeMs. */
function timeMs(s: string): number {
  const dot = s.indexOf('.');
  if (dot < 0) return s === '' ? NaN : Number(s) * 1e3;
  const sec = s.slice(0, dot);
  const frac = s.slice(dot + 1, dot + 10);
  if (sec === '' || sec === '-' || frac === '' || frac.includes('-')) return NaN;
  return Number(sec) * 1e3 + Number(frac.padEnd(9, '0')) / 1e6;
}

/**
 * Collects walk entries in order. A directory .dockerignore excludes is still walked when
 * patterns have exceptions, and is listed (with its own stat, as BuildKit's context
 * transfer sends it) just before the first entry below it that is included.
 */
class EntryCollector {
  readonly entries = new Map<string, ContextEntry>();
  private readonly pending: Array<ContextEntry | undefined> = [];

  enter(dir: ContextEntry, ignored: boolean): void {
    if (ignored) this.pending.push(dir);
    else {
      this.add(dir);
      this.pending.push(undefined);
    }
  }

  leave(): void {
    this.pending.pop();
  }

  add(e: ContextEntry): void {
    for (let i = 0; i < this.pending.length; i++) {
      const dir = this.pending[i];
      if (dir) {
        this.entries.set(dir.rel, dir);
        this.pending[i] = undefined;
      }
    }
    this.entries.set(e.rel, e);
  }
}

function entryOf(rel: string, st: import('node:fs').Stats, type: ContextEntry['type']): ContextEntry {
  return { rel, type, mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, uid: st.uid, gid: st.gid };
}
