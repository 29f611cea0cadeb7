import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, promises as fsp, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { diffUpper, dropUnchangedDirs } from './diff.js';
import type { ActiveMount, LayerEntry } from './types.js';
import { extractLayer, type ByteSource } from './unpack.js';
import { isMountPoint, ownerToken, runCommand } from './util.js';
import { ownedName, registerProcess, sweepStale } from '../lifecycle.js';

const DIFF_ID_RE = /^sha256:([a-f0-9]{64})$/;

/** Overlay options that keep the upper dir a plain, self-describing diff. */
const OVERLAY_FIXED_OPTIONS = ['index=off', 'redirect_dir=off', 'metacopy=off'];

/**
 * Unpacked layers and upper dirs are written without fsync (a volatile overlay skips the
 * sync at unmount, which costs seconds for a large step). They are a cache of what the
 * store holds durably, so each layer dir records the boot it was written in, and one from
 * an earlier boot (maybe a crash, with data not yet on disk) is thrown away and unpacked
 * again from its blob.
 */
const BOOT_ID = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
})();
let volatileSupported: boolean | undefined;

/** The kernel copies mount data into one page; stay well below it. */
const MAX_MOUNT_DATA = 4000;

function hexOf(diffId: string): string {
  const m = DIFF_ID_RE.exec(diffId);
  if (!m) throw new KilnError(`invalid layer diff ID "${diffId}": expected sha256:<64 hex digits>`, { code: 'invalid' });
  return m[1];
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Unpacked layers and overlayfs mounts under `<kilnRoot>/snapshots/`:
 * `layers/<hex>/fs` holds one extracted layer (whiteouts in overlayfs form),
 * `active/<id>/` one mount (merged, upper, work, owner pid).
 */
export class Snapshotter {
  readonly root: string;
  readonly layersRoot: string;
  readonly activeRoot: string;
  /** Layer dirs this process found usable or made: not checked on disk again. */
  private readonly usable = new Set<string>();

  constructor(kilnRoot: string) {
    this.root = path.join(path.resolve(kilnRoot), 'snapshots');
    this.layersRoot = path.join(this.root, 'layers');
    this.activeRoot = path.join(this.root, 'active');
  }

  /** Where the extracted filesystem of a layer lives (whether or not it is there yet). */
  layerDir(diffId: string): string {
    return path.join(this.layersRoot, hexOf(diffId), 'fs');
  }

  async hasLayer(diffId: string): Promise<boolean> {
    return this.usableLayer(path.join(this.layersRoot, hexOf(diffId)));
  }

  /** A layer dir is usable when complete and written in this boot; a stale one is removed. */
  private async usableLayer(finalDir: string): Promise<boolean> {
    if (this.usable.has(finalDir)) return true;
    // synchronous: two tiny local reads, once per layer and process
    if (!existsSync(path.join(finalDir, 'fs'))) return false;
    let boot = '';
    try {
      boot = readFileSync(path.join(finalDir, 'boot'), 'utf8');
    } catch {
      /* no marker: not usable */
    }
    if (boot.trim() === BOOT_ID) {
      this.usable.add(finalDir);
      return true;
    }
    // from an earlier boot: move it aside atomically, then delete
    const trash = path.join(this.layersRoot, `.tmp-stale-${randomBytes(6).toString('hex')}`);
    await fsp.rename(finalDir, trash).catch(() => undefined);
    await fsp.rm(trash, { recursive: true, force: true });
    return false;
  }

  /**
   * Extracts a layer once (idempotent, atomic via temp dir + rename, safe against a concurrent
   * unpack of the same layer by another process) and returns its directory.
   */
  async unpackLayer(diffId: string, tarStream: () => ByteSource): Promise<string> {
    const hex = hexOf(diffId);
    const finalDir = path.join(this.layersRoot, hex);
    const fsDir = path.join(finalDir, 'fs');
    if (await this.usableLayer(finalDir)) return fsDir;
    registerProcess(path.dirname(this.root));
    await fsp.mkdir(this.layersRoot, { recursive: true });
    const tmp = path.join(this.layersRoot, `.tmp-${hex.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
    await fsp.mkdir(path.join(tmp, 'fs'), { recursive: true, mode: 0o755 });
    await fsp.writeFile(path.join(tmp, 'owner'), ownerToken());
    await fsp.writeFile(path.join(tmp, 'boot'), BOOT_ID);
    try {
      await extractLayer(tarStream(), path.join(tmp, 'fs'), diffId.slice(0, 19), diffId);
      await fsp.rm(path.join(tmp, 'owner'));
      try {
        await fsp.rename(tmp, finalDir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // another process finished the same layer first: theirs is as good as ours
        if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await exists(fsDir))) return fsDir;
        throw e;
      }
      return fsDir;
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Mounts an overlay of `lowerDirs` (lowest first) with a fresh upper dir. `readonly` mounts
   * the lowers only (no upper; writes fail with EROFS).
   */
  async mount(lowerDirs: string[], options: { readonly?: boolean } = {}): Promise<ActiveMount> {
    // synchronous: a handful of local metadata calls, each cheaper than a threadpool round trip
    const dir = this.newActiveDir();
    const merged = path.join(dir, 'merged');
    const upper = path.join(dir, 'upper');
    const work = path.join(dir, 'work');
    try {
      for (const d of [merged, upper, work]) mkdirSync(d, { mode: 0o755 });
      for (const l of lowerDirs) {
        if (this.usable.has(path.dirname(path.resolve(l)))) continue;
        const st = await fsp.stat(l).catch(() => undefined);
        if (!st?.isDirectory()) throw new KilnError(`cannot mount snapshot: layer directory ${l} does not exist`, { code: 'not-found' });
      }
      let lowers = topmostOnce(lowerDirs.map((l) => path.resolve(l)));
      // overlay needs one lower, or two when there is no upper
      for (let n = 0; lowers.length < (options.readonly ? 2 : 1); n++) {
        const empty = path.join(dir, `empty${n}`);
        mkdirSync(empty, { mode: 0o755 });
        lowers = [empty, ...lowers];
      }
      // Short names keep the option string small: l/<n> -> layer dir, resolved by the kernel
      // relative to the cwd of the mount process.
      const links = path.join(dir, 'l');
      mkdirSync(links);
      const names: string[] = [];
      for (let i = 0; i < lowers.length; i++) {
        const name = `l/${i.toString(36)}`;
        symlinkSync(lowers[i], path.join(dir, name));
        names.push(name);
      }
      const opts = [`lowerdir=${names.reverse().join(':')}`];
      if (!options.readonly) opts.push('upperdir=upper', 'workdir=work');
      opts.push(...OVERLAY_FIXED_OPTIONS);
      if (!options.readonly && volatileSupported !== false) opts.push('volatile');
      let data = opts.join(',');
      if (data.length > MAX_MOUNT_DATA) {
        throw new KilnError(`cannot mount ${lowerDirs.length} layers: overlay options exceed one page`, {
          hint: 'squash the base image or reduce the number of layers',
          code: 'unsupported',
        });
      }
      let res = await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', data, 'merged'], { cwd: dir });
      if (res.code !== 0 && data.endsWith(',volatile')) {
        // kernels before 5.10 have no volatile overlays
        data = data.slice(0, -',volatile'.length);
        res = await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', data, 'merged'], { cwd: dir });
        if (res.code === 0) volatileSupported = false;
      } else if (res.code === 0 && data.endsWith(',volatile')) {
        volatileSupported = true;
      }
      if (res.code !== 0) {
        throw new KilnError(`cannot mount overlayfs at ${merged}: ${res.stderr}`, {
          hint: 'kiln needs root and a kernel with overlayfs; the kiln root must be on ext4 or xfs (not overlay or tmpfs without xattrs)',
          code: 'failed',
        });
      }
    } catch (e) {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    let released = false;
    return {
      merged,
      upper,
      work,
      dir,
      lowers: lowerDirs.map((l) => path.resolve(l)),
      release: async (options?: { keepUpperAs?: string }) => {
        if (released) return;
        released = true;
        await releaseMountDir(dir, options?.keepUpperAs ? (upperDir) => this.adoptLayer(options.keepUpperAs!, upperDir) : undefined);
      },
    };
  }

  /** A new dir under active/ owned by this process (cleanupStale removes it once we are gone). */
  private newActiveDir(): string {
    registerProcess(path.dirname(this.root));
    mkdirSync(this.activeRoot, { recursive: true });
    const dir = path.join(this.activeRoot, randomBytes(8).toString('hex'));
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(path.join(dir, 'owner'), ownerToken());
    return dir;
  }

  /**
   * A fresh, empty upper dir with nothing mounted: for a file operation that only adds paths
   * absent from every layer below, writing there gives the same upper dir an overlay mount
   * would, without the mount. `merged` is the upper dir itself.
   */
  scratch(): ActiveMount {
    const dir = this.newActiveDir();
    const upper = path.join(dir, 'upper');
    mkdirSync(upper, { mode: 0o755 });
    let released = false;
    return {
      merged: upper,
      upper,
      work: upper,
      lowers: [],
      release: async (options?: { keepUpperAs?: string }) => {
        if (released) return;
        released = true;
        if (options?.keepUpperAs) await this.adoptLayer(options.keepUpperAs, upper).catch(() => undefined);
        await discardDir(dir);
      },
    };
  }

  /**
   * Makes a finished upper dir the unpacked form of the layer it was diffed into (it is
   * already in overlay form: whiteouts as 0/0 devices, opaque xattrs), so the next step
   * does not extract the layer it just wrote. A layer already unpacked is kept as it is.
   */
  private async adoptLayer(diffId: string, upperDir: string): Promise<void> {
    const finalDir = path.join(this.layersRoot, hexOf(diffId));
    if (await this.usableLayer(finalDir)) return;
    // synchronous: a mkdir, a small write and two renames
    const tmp = path.join(this.layersRoot, `.tmp-${hexOf(diffId).slice(0, 16)}-${randomBytes(6).toString('hex')}`);
    mkdirSync(tmp, { recursive: true });
    try {
      writeFileSync(path.join(tmp, 'owner'), ownerToken());
      writeFileSync(path.join(tmp, 'boot'), BOOT_ID);
      renameSync(upperDir, path.join(tmp, 'fs'));
      rmSync(path.join(tmp, 'owner'));
      try {
        renameSync(tmp, finalDir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      }
      this.usable.add(finalDir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Turns an overlay upper dir into sorted layer entries. `noNewXattrs` (a file operation:
   * nothing in the step sets xattrs) lets the xattr read be skipped when no directory of
   * `lowers` was copied up, as then no entry can carry one.
   */
  async diff(upper: string, options: { noNewXattrs?: boolean; lowers?: string[] } = {}): Promise<LayerEntry[]> {
    const entries = await diffUpper(upper, options.noNewXattrs && options.lowers ? { skipXattrs: (dirs) => !dirs.some((d) => options.lowers!.some((l) => existsSync(path.join(l, d)))) } : {});
    return dropUnchangedDirs(upper, entries, options.lowers ?? []);
  }

  /**
   * Unmounts and removes mounts and half-unpacked layers whose owner process is gone (with
   * everything else such a process left on the root: see lifecycle.ts).
   */
  async cleanupStale(): Promise<void> {
    sweepStale(path.dirname(this.root));
  }
}

/**
 * `lowers` (lowest first) with only the topmost occurrence of each dir kept. overlayfs refuses
 * a mount naming one lower dir twice (EINVAL, "wrong fs type"), and a chain repeats a layer
 * whenever steps make identical layers (`RUN true` twice: both empty). Dropping the lower
 * copies gives the same merged view: the merged view of a path comes from the topmost layer
 * that has an entry for it (a directory also shows what the layers below it add, down to an
 * opaque one), so every entry, whiteout or opaque marker the lower copy holds is also in the
 * upper copy, which shadows or hides the same things and more; the layers between the two
 * copies are unaffected where that layer has no entry, and hidden by the upper copy where it
 * has one, as they were before.
 */
export function topmostOnce(lowers: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (let i = lowers.length - 1; i >= 0; i--) {
    if (seen.has(lowers[i])) continue;
    seen.add(lowers[i]);
    out.unshift(lowers[i]);
  }
  return out;
}

/**
 * Unmounts `<dir>/merged` (lazily if busy) and removes the mount's directory; `adopt`
 * may first take the upper dir away once nothing is mounted on it.
 */
async function releaseMountDir(dir: string, adopt?: (upper: string) => Promise<void>): Promise<void> {
  // a step's secrets tmpfs (src/exec/secrets.ts), left mounted when its process was killed
  const secrets = path.join(dir, 'secrets');
  if (existsSync(secrets) && (await isMountPoint(secrets))) await runCommand('umount', ['-l', secrets]);
  const merged = path.join(dir, 'merged');
  // one umount is the usual case; the mount table is read only when it fails (not mounted,
  // busy, or a half-made mount dir)
  const first = await runCommand('umount', [merged]);
  if (first.code !== 0 && (await isMountPoint(merged))) {
    const res = await runCommand('umount', ['-l', merged]);
    if (res.code !== 0 && (await isMountPoint(merged))) {
      throw new KilnError(`cannot unmount ${merged}: ${res.stderr}`, { hint: 'check for processes using it (fuser -m)', code: 'unavailable' });
    }
  }
  // never remove through a live mount: that would delete files from the layers below
  if (first.code !== 0 && (await isMountPoint(merged))) return;
  if (adopt) await adopt(path.join(dir, 'upper')).catch(() => undefined);
  await discardDir(dir);
}

/**
 * Removes an active dir (`<root>/snapshots/active/<id>`): first renamed into `<root>/tmp`
 * under a name that carries this process as owner, so a removal cut short (a signal, a
 * kill) leaves something the reaper can attribute, not an active dir without its owner file.
 */
async function discardDir(dir: string): Promise<void> {
  const trash = path.join(path.dirname(path.dirname(path.dirname(dir))), 'tmp', ownedName('trash'));
  let target = dir;
  try {
    renameSync(dir, trash);
    target = trash;
  } catch {
    // no tmp dir (a root made by hand) or already gone: remove in place
  }
  await fsp.rm(target, { recursive: true, force: true });
}
