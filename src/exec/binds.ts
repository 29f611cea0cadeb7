/**
 * Bind mounts of host paths into a container (`kiln run -v HOST:CONTAINER[:ro]`). The host
 * path must exist; the container path is resolved inside the rootfs as the container would
 * see it (src/fsroot.ts: a symlink in the image, absolute or with `..`, never leads out of
 * it), and the mount point is made there when it is missing. The runtime is given the
 * resolved, symlink-free path.
 */
import { promises as fsp, lstatSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { inRootName, makeDirsSync, rootPathSync } from '../fsroot.js';
import type { RunSpec } from './container.js';

export interface BindSpec {
  /** Host path (absolute, or relative to the working directory). */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readonly?: boolean;
}

/** A bind whose source was found on the host. */
export interface CheckedBind {
  source: string;
  target: string;
  readonly: boolean;
  directory: boolean;
}

const usage = 'use -v /host/path:/container/path[:ro]';

/** `HOST:CONTAINER[:ro|rw]` as docker's -v takes it (named volumes excepted). */
export function parseVolume(spec: string, cwd = process.cwd()): BindSpec {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3 || parts[0] === '' || parts[1] === '') {
    throw new KilnError(`invalid volume ${JSON.stringify(spec)}: expected HOST:CONTAINER[:OPTIONS]`, { hint: usage, code: 'invalid' });
  }
  const [host, target, opts] = parts;
  if (!host.startsWith('/') && !host.startsWith('.')) {
    throw new KilnError(`invalid volume ${JSON.stringify(spec)}: named volumes are not supported, "${host}" must be a host path`, {
      hint: `give an absolute or ./relative host path, e.g. -v ./${host}:${target}`,
      code: 'unsupported',
    });
  }
  let readonly = false;
  for (const o of opts === undefined ? [] : opts.split(',')) {
    if (o === 'ro') readonly = true;
    else if (o === 'rw') readonly = false;
    else throw new KilnError(`invalid volume ${JSON.stringify(spec)}: unknown option "${o}"`, { hint: 'the options are ro and rw', code: 'invalid' });
  }
  return { source: path.resolve(cwd, host), target, readonly };
}

/** Checks each bind before anything is unpacked: the host path exists, the target is absolute, no target twice. */
export async function checkBinds(binds: BindSpec[]): Promise<CheckedBind[]> {
  const seen = new Set<string>();
  const out: CheckedBind[] = [];
  for (const b of binds) {
    if (!b.target.startsWith('/')) throw new KilnError(`invalid bind target "${b.target}": it must be an absolute path inside the container`, { hint: usage, code: 'invalid' });
    const target = path.posix.normalize(b.target).replace(/(.)\/$/, '$1');
    if (target === '/') throw new KilnError('invalid bind target "/": cannot mount over the container\'s root', { hint: usage, code: 'invalid' });
    if (seen.has(target)) throw new KilnError(`duplicate mount point ${target}: two binds have that target`, { hint: 'give each -v its own container path', code: 'invalid' });
    seen.add(target);
    const source = path.resolve(b.source);
    const st = await fsp.stat(source).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') {
        throw new KilnError(`bind source path does not exist: ${source}`, { hint: 'create it first: kiln does not create host paths', code: 'not-found' });
      }
      throw new KilnError(`cannot use ${source} as a bind source: ${e.code === 'EACCES' ? 'permission denied' : 'it cannot be read'}`, {
        code: e.code === 'EACCES' ? 'denied' : 'failed',
        cause: e,
      });
    });
    out.push({ source, target, readonly: b.readonly === true, directory: st.isDirectory() });
  }
  return out;
}

/**
 * The runtime mounts for `binds` in `rootfs`: each target resolved inside the root, its mount
 * point made when missing (a directory, or an empty file for a file), parents before children.
 */
export function placeBinds(rootfs: string, binds: CheckedBind[]): NonNullable<RunSpec['mounts']> {
  const root = path.resolve(rootfs);
  const placed = binds.map((b) => {
    const at = rootPathSync(root, b.target);
    if (at === root) throw new KilnError(`cannot mount ${b.source} at ${b.target}: in the image, that path leads to the container's root`, { hint: usage, code: 'invalid' });
    const st = lstatSync(at, { throwIfNoEntry: false });
    const where = inRootName(root, at);
    const shown = where === b.target ? b.target : `${b.target} (${where} in the image)`;
    if (st && st.isDirectory() !== b.directory) {
      throw new KilnError(`cannot mount the ${b.directory ? 'directory' : 'file'} ${b.source} at ${shown}: the image has a ${st.isDirectory() ? 'directory' : 'file'} there`, {
        hint: 'mount a file on a file and a directory on a directory, or choose another container path',
        code: 'conflict',
      });
    }
    if (!st) {
      if (b.directory) makeDirsSync(root, at);
      else {
        makeDirsSync(root, path.dirname(at));
        writeFileSync(at, '', { flag: 'wx', mode: 0o644 });
      }
    }
    return { destination: where, type: 'bind' as const, source: b.source, options: b.readonly ? ['rbind', 'ro'] : ['rbind'] };
  });
  const depth = (p: string): number => p.split('/').length;
  return placed.sort((a, b) => depth(a.destination) - depth(b.destination));
}
