/**
 * The local build context: one walk honouring .dockerignore, content checksums kept
 * against (path, size, mtime, inode) so an unchanged context is not read again.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, promises as fs, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { dockerignore, excludeMatcher, type DockerIgnore } from '../dockerignore.js';
import { KilnError } from '../errors.js';
import { hasWildcard, matchPath } from './match.js';

export interface ContextEntry {
  /** Relative path with '/' separators, no leading './'. */
  rel: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  mode: number;
  size: number;
  mtimeMs: number;
  ino: number;
  uid: number;
  gid: number;
  linkname?: string;
}

interface HashCacheEntry {
  size: number;
  mtimeMs: number;
  ino: number;
  digest: string;
}

export class BuildContext {
  readonly dir: string;
  private entries?: Map<string, ContextEntry>;
  private hashCache: Map<string, HashCacheEntry> = new Map();
  private hashCacheDirty = false;
  private readonly ignore: DockerIgnore;
  readonly ignorePatterns: string[];

  private constructor(
    dir: string,
    patterns: string[],
    private readonly hashCacheFile?: string,
  ) {
    this.dir = dir;
    this.ignorePatterns = patterns;
    this.ignore = dockerignore({ ignorecase: false }).add(patterns);
  }

  /** Opens a context directory; `dockerfileRel` is excluded from ignoring as docker does. */
  static async open(dir: string, options: { hashCacheFile?: string; ignoreFile?: string } = {}): Promise<BuildContext> {
    const abs = path.resolve(dir);
    const st = await fs.stat(abs).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new KilnError(`build context "${dir}" is not a directory`, { hint: 'pass the directory to build from, e.g. kiln build .' });
    }
    let patterns: string[] = [];
    const ignoreFile = options.ignoreFile ?? path.join(abs, '.dockerignore');
    const text = await fs.readFile(ignoreFile, 'utf8').catch(() => undefined);
    if (text !== undefined) {
      patterns = text
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'));
    }
    const ctx = new BuildContext(abs, patterns, options.hashCacheFile);
    if (options.hashCacheFile) {
      const raw = await fs.readFile(options.hashCacheFile, 'utf8').catch(() => undefined);
      if (raw) {
        try {
          ctx.hashCache = new Map(Object.entries(JSON.parse(raw) as Record<string, HashCacheEntry>));
        } catch {
          ctx.hashCache = new Map();
        }
      }
    }
    return ctx;
  }

  isIgnored(rel: string): boolean {
    return rel !== '' && this.ignore.ignores(rel);
  }

  /** All entries of the context not excluded by .dockerignore, sorted by path. */
  async list(): Promise<Map<string, ContextEntry>> {
    if (this.entries) return this.entries;
    const hasExceptions = this.ignorePatterns.some((p) => p.startsWith('!'));
    const out = new Map<string, ContextEntry>();
    // Synchronous on purpose: for a context of tens of thousands of files, a sync
    // readdir/lstat walk is several times faster than the same calls through the threadpool
    // (measured 250 ms against 800+ ms for 20,000 files), and nothing else runs meanwhile.
    const walk = (relDir: string): void => {
      const absDir = relDir ? path.join(this.dir, relDir) : this.dir;
      for (const name of readdirSync(absDir).sort()) {
        const rel = relDir ? `${relDir}/${name}` : name;
        const abs = path.join(absDir, name);
        const st = lstatSync(abs);
        const ignored = this.isIgnored(rel);
        if (st.isDirectory()) {
          if (ignored && !hasExceptions) continue;
          if (!ignored) out.set(rel, entryOf(rel, st, 'directory'));
          walk(rel);
          continue;
        }
        if (ignored) continue;
        if (st.isSymbolicLink()) out.set(rel, { ...entryOf(rel, st, 'symlink'), linkname: readlinkSync(abs) });
        else out.set(rel, entryOf(rel, st, st.isFile() ? 'file' : 'other'));
      }
    };
    walk('');
    this.entries = out;
    return out;
  }

  /** Content digest of a regular file, from the stat-keyed cache when unchanged. */
  async fileDigest(e: ContextEntry): Promise<string> {
    const cached = this.hashCache.get(e.rel);
    if (cached && cached.size === e.size && cached.mtimeMs === e.mtimeMs && cached.ino === e.ino) return cached.digest;
    const h = createHash('sha256');
    await new Promise<void>((resolve, reject) => {
      createReadStream(path.join(this.dir, e.rel))
        .on('data', (c) => h.update(c))
        .on('end', resolve)
        .on('error', reject);
    });
    const digest = h.digest('hex');
    this.hashCache.set(e.rel, { size: e.size, mtimeMs: e.mtimeMs, ino: e.ino, digest });
    this.hashCacheDirty = true;
    return digest;
  }

  /**
   * Resolves COPY sources against the context: each pattern to the entries it names
   * (a directory brings everything below it). Throws a KilnError naming a missing source.
   */
  async resolveSources(patterns: string[], excludes: string[] = []): Promise<{ pattern: string; roots: ContextEntry[]; files: ContextEntry[] }[]> {
    const entries = await this.list();
    const out: { pattern: string; roots: ContextEntry[]; files: ContextEntry[] }[] = [];
    const excluded = excludeMatcher(excludes);
    for (const pattern of patterns) {
      const clean = path.posix.normalize(`/${pattern}`).slice(1).replace(/\/+$/, '');
      let roots: ContextEntry[];
      if (clean === '' || clean === '.') {
        roots = [{ rel: '', type: 'directory', mode: 0o755, size: 0, mtimeMs: 0, ino: 0, uid: 0, gid: 0 }];
      } else if (hasWildcard(clean)) {
        roots = [...entries.values()].filter((e) => matchPath(clean, e.rel));
      } else {
        const e = entries.get(clean);
        roots = e ? [e] : [];
        if (!e && this.isIgnored(clean)) {
          const exists = await fs.lstat(path.join(this.dir, clean)).then(() => true, () => false);
          if (exists) {
            throw new KilnError(`COPY source "${pattern}" is excluded by .dockerignore`, { hint: 'remove it from .dockerignore or copy something else' });
          }
        }
      }
      if (roots.length === 0) {
        throw new KilnError(`COPY source "${pattern}" not found in the build context ${this.dir}`, {
          hint: hasWildcard(clean) ? 'no file matches the pattern' : 'check the path is relative to the context directory and not excluded',
        });
      }
      const files: ContextEntry[] = [];
      for (const r of roots) {
        if (r.type === 'directory') {
          const prefix = r.rel === '' ? '' : `${r.rel}/`;
          // --exclude patterns are relative to the directory being copied
          for (const e of entries.values()) if (e.rel.startsWith(prefix) && !excluded(e.rel.slice(prefix.length))) files.push(e);
        } else if (!excluded(r.rel) && !excluded(path.posix.basename(r.rel))) {
          files.push(r);
        }
      }
      out.push({ pattern, roots: roots.filter((r) => r.type === 'directory' || (!excluded(r.rel) && !excluded(path.posix.basename(r.rel)))), files });
    }
    return out;
  }

  /** Digest of everything the patterns name: paths, types, modes, contents, link targets (not mtimes). */
  async checksum(patterns: string[], excludes: string[] = []): Promise<{ digest: string; files: Record<string, string> }> {
    const resolved = await this.resolveSources(patterns, excludes);
    // hash the files not in the stat-keyed cache several at once, then combine in order
    const toHash = resolved.flatMap((r) => r.files.filter((e) => e.type === 'file'));
    let next = 0;
    const hashWorker = async (): Promise<void> => {
      while (next < toHash.length) await this.fileDigest(toHash[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(8, toHash.length) }, hashWorker));
    const files: Record<string, string> = {};
    const h = createHash('sha256');
    for (const r of resolved) {
      h.update(`pattern:${r.pattern}\0roots:${r.roots.map((x) => `${x.rel}:${x.type}`).join(',')}\0`);
      for (const e of r.files) {
        let content = '';
        if (e.type === 'file') content = await this.fileDigest(e);
        else if (e.type === 'symlink') content = `link:${e.linkname}`;
        // owner is part of what a step reads, as BuildKit's context checksum counts it
        const line = `${e.type}:${(e.mode & 0o7777).toString(8)}:${e.uid}:${e.gid}:${content}`;
        files[e.rel] = line;
        h.update(`${e.rel}\0${line}\0`);
      }
    }
    return { digest: `sha256:${h.digest('hex')}`, files };
  }

  async saveHashCache(): Promise<void> {
    if (!this.hashCacheFile || !this.hashCacheDirty) return;
    const tmp = `${this.hashCacheFile}.${process.pid}.tmp`;
    await fs.mkdir(path.dirname(this.hashCacheFile), { recursive: true });
    await fs.writeFile(tmp, JSON.stringify(Object.fromEntries(this.hashCache)));
    await fs.rename(tmp, this.hashCacheFile);
    this.hashCacheDirty = false;
  }
}

function entryOf(rel: string, st: import('node:fs').Stats, type: ContextEntry['type']): ContextEntry {
  return { rel, type, mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, uid: st.uid, gid: st.gid };
}
