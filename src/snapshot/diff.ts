import { decodeName, encodeName, fsPath } from '../fsname.js';
import { lstatSync, promises as fsp, readdirSync, readlinkSync, type Stats } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type LayerEntry } from './types.js';
import { runCommand, unescapeAttrPath } from './util.js';

/** Kernel-internal xattrs that never belong in a layer (nor in a copy). */
export function skipXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name === 'security.selinux';
}

/** All xattrs under `root` in one getfattr run: absolute path → name → raw value. */
export async function readXattrTree(root: string): Promise<Map<string, Map<string, Buffer>>> {
  let res;
  try {
    res = await runCommand('getfattr', ['-R', '-P', '-h', '--absolute-names', '-m', '-', '-d', '-e', 'base64', root]);
  } catch (e) {
    throw new KilnError(`cannot read extended attributes under ${root}: ${(e as Error).message}`, {
      hint: 'install the attr package (getfattr): apt-get install attr',
      code: 'unsupported',
      cause: e,
    });
  }
  const out = new Map<string, Map<string, Buffer>>();
  let current: Map<string, Buffer> | undefined;
  for (const line of res.stdout.toString('utf8').split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      out.set(path.resolve(unescapeAttrPath(line.slice('# file: '.length))), current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq <= 0) continue;
    const name = line.slice(0, eq);
    const raw = line.slice(eq + 1);
    let value: Buffer;
    if (raw.startsWith('0s')) value = Buffer.from(raw.slice(2), 'base64');
    else if (raw.startsWith('0x')) value = Buffer.from(raw.slice(2), 'hex');
    else if (raw.startsWith('"') && raw.endsWith('"')) value = Buffer.from(raw.slice(1, -1), 'utf8');
    else value = Buffer.from(raw, 'utf8');
    current.set(name, value);
  }
  return out;
}

function devNumbers(rdev: number): { major: number; minor: number } {
  // glibc's gnu_dev_major/minor encoding
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & 0xfff00n);
  return { major, minor };
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(encodeName(a), encodeName(b));
}

/**
 * Turns an overlayfs upper dir into layer entries: parents before children, siblings in byte
 * order, a whiteout where the deleted name sorts, an opaque marker right after its directory.
 */
export async function diffUpper(upper: string, options: { skipXattrs?: (dirs: string[]) => boolean } = {}): Promise<LayerEntry[]> {
  const root = path.resolve(upper);
  const rootSt = await fsp.lstat(root).catch(() => undefined);
  if (!rootSt?.isDirectory()) throw new KilnError(`cannot diff ${upper}: not a directory`, { code: 'not-found' });
  // the walk first; xattrs (and opaque markers) are attached afterwards, unless the caller
  // can tell from the directories that none can be there
  const walked: Array<{ entry: LayerEntry; abs?: string }> = [];
  const dirs: string[] = [];
  const firstLink = new Map<string, string>();

  // synchronous on purpose: an upper dir is local and each call takes microseconds, far less
  // than a threadpool round trip per file
  const walk = (relDir: string): void => {
    const absDir = path.join(root, relDir);
    const names = readdirSync(fsPath(absDir), { encoding: 'buffer' }).map(decodeName).sort(byteCompare);
    for (const name of names) {
      const rel = relDir ? `${relDir}/${name}` : name;
      const abs = path.join(absDir, name);
      let st: Stats;
      try {
        st = lstatSync(fsPath(abs));
      } catch {
        continue;
      }
      const base = {
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
      };
      if (st.isCharacterDevice() && st.rdev === 0) {
        const wh = relDir ? `${relDir}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`;
        // as docker 20.10's layers have them: a regular file of mode 0600, owned by root,
        // with the time of the deletion
        walked.push({ entry: { path: wh, type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: base.mtime, content: Buffer.alloc(0) } });
      } else if (st.isDirectory()) {
        walked.push({ entry: { path: rel, type: 'directory', ...base }, abs });
        dirs.push(rel);
        walk(rel);
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? firstLink.get(key) : undefined;
        if (first !== undefined) {
          walked.push({ entry: { path: rel, type: 'hardlink', ...base, size: 0, linkname: first }, abs });
        } else {
          if (st.nlink > 1) firstLink.set(key, rel);
          walked.push({ entry: { path: rel, type: 'file', ...base, size: st.size, sourcePath: abs }, abs });
        }
      } else if (st.isSymbolicLink()) {
        walked.push({ entry: { path: rel, type: 'symlink', ...base, linkname: decodeName(readlinkSync(fsPath(abs), { encoding: 'buffer' })) }, abs });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const { major, minor } = devNumbers(st.rdev);
        walked.push({ entry: { path: rel, type: st.isCharacterDevice() ? 'char' : 'block', ...base, devmajor: major, devminor: minor }, abs });
      } else if (st.isFIFO()) {
        walked.push({ entry: { path: rel, type: 'fifo', ...base }, abs });
      }
      // sockets cannot be stored in a layer: skipped, as docker does
    }
  };
  walk('');
  if (options.skipXattrs?.(dirs)) return walked.map((w) => w.entry);

  const attrs = await readXattrTree(root);
  const xattrsOf = (abs: string): Record<string, Buffer> | undefined => {
    const m = attrs.get(abs);
    if (!m) return undefined;
    const r: Record<string, Buffer> = {};
    let any = false;
    for (const [k, v] of m) {
      if (skipXattr(k)) continue;
      // the exact bytes: security.capability is binary
      r[k] = v;
      any = true;
    }
    return any ? r : undefined;
  };
  const entries: LayerEntry[] = [];
  for (const { entry, abs } of walked) {
    const xattrs = abs === undefined ? undefined : xattrsOf(abs);
    entries.push(xattrs ? { ...entry, xattrs } : entry);
    if (abs !== undefined && entry.type === 'directory' && attrs.get(abs)?.get('trusted.overlay.opaque')?.toString('utf8') === 'y') {
      // docker 20.10's opaque marker: the directory's permission bits and owner, time zero
      entries.push({ path: `${entry.path}/${OPAQUE_MARKER}`, type: 'file', mode: entry.mode & 0o777, uid: entry.uid, gid: entry.gid, size: 0, mtime: 0, content: Buffer.alloc(0) });
    }
  }
  return entries;
}

/** Whether a directory of an unpacked layer is opaque (hides what the layers below hold in it). */
async function isOpaqueDir(dir: string): Promise<boolean> {
  const res = await runCommand('getfattr', ['-h', '--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', dir]).catch(() => undefined);
  return res?.code === 0 && res.stdout.toString('utf8') === 'y';
}

/**
 * What the merged view of `lowers` (lowest first) holds at `rel`: the topmost layer's entry,
 * or nothing when a whiteout, a non-directory or an opaque directory above hides it. A path
 * no layer has costs one lstat per layer; xattrs are read (once per dir, in `opaque`) only
 * for the ancestors a layer above the one holding the path has.
 */
async function baseEntry(lowers: string[], rel: string, opaque: Map<string, Promise<boolean>>): Promise<Stats | undefined> {
  let hit = -1;
  let st: Stats | undefined;
  for (let i = lowers.length - 1; i >= 0 && !st; i--) {
    st = lstatSync(path.join(lowers[i], rel), { throwIfNoEntry: false });
    if (st) hit = i;
  }
  if (!st || (st.isCharacterDevice() && st.rdev === 0)) return undefined;
  const parts = rel.split('/');
  for (let i = lowers.length - 1; i > hit; i--) {
    for (let k = 1; k < parts.length; k++) {
      const ancestor = path.join(lowers[i], ...parts.slice(0, k));
      const a = lstatSync(ancestor, { throwIfNoEntry: false });
      if (!a) break;
      if (!a.isDirectory()) return undefined;
      let o = opaque.get(ancestor);
      if (!o) opaque.set(ancestor, (o = isOpaqueDir(ancestor)));
      if (await o) return undefined;
    }
  }
  return st;
}

/**
 * Drops the directories a step copied up without changing them (same type, mode, owner and
 * no security.capability, any mtime) and with nothing changed below them, and removes them from
 * the upper dir, which becomes the layer's unpacked form. BuildKit's overlay differ skips such
 * directories, so a step whose only trace is a runtime mount stub it removed again (`RUN true`
 * copies /etc up for /etc/hosts) gives an empty layer. A directory holding a change stays, as a
 * parent entry.
 */
export async function dropUnchangedDirs(upper: string, entries: LayerEntry[], lowers: string[]): Promise<LayerEntry[]> {
  if (lowers.length === 0) return entries;
  const holdsChange = new Set<string>();
  const opaque = new Map<string, Promise<boolean>>();
  const dropped: string[] = [];
  const kept: LayerEntry[] = [];
  // children come right after their directory: walking backwards sees them first
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (e.type === 'directory' && !holdsChange.has(e.path) && e.xattrs?.['security.capability'] === undefined) {
      const base = await baseEntry(lowers, e.path, opaque);
      if (base?.isDirectory() && (base.mode & 0o7777) === e.mode && base.uid === e.uid && base.gid === e.gid) {
        dropped.push(e.path);
        continue;
      }
    }
    kept.push(e);
    const parent = path.posix.dirname(e.path);
    if (parent !== '.') holdsChange.add(parent);
  }
  // children first: each is empty once those below it are gone
  for (const d of dropped) await fsp.rmdir(path.join(upper, d)).catch(() => undefined);
  return kept.reverse();
}
