/**
 * A file listing made inside a running image (kiln's or docker's) by one busybox script, so
 * both sides are read by the same tool: what a process in the container sees, not what the
 * layers say. Each path under the given roots, sorted: type, mode, owner, link count, inode,
 * and a symlink's target or a regular file's md5. Times are left out (build times differ).
 */
import assert from 'node:assert/strict';
import { runKiln } from '../helpers.js';

/** The script; its arguments ("$@") are the roots. A root that does not exist is left out. */
export const LISTING_SCRIPT = [
  'for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then find "$p"; fi; done | sort | while IFS= read -r f; do',
  '  t=$(stat -c "%F|%a|%u|%g|%h|%i" "$f")',
  '  if [ -L "$f" ]; then x=$(readlink "$f"); elif [ -f "$f" ]; then x=$(md5sum < "$f" | cut -c1-32); else x=""; fi',
  '  echo "$f|$t|$x"',
  'done',
].join('\n');

/** The argv that runs the listing of `roots` in an image. */
export function listingArgv(roots: string[]): string[] {
  return ['sh', '-c', LISTING_SCRIPT, 'sh', ...roots];
}

export interface Listed {
  path: string;
  /** stat's %F: "regular file", "directory", "symbolic link", ... */
  type: string;
  /** stat's %a: the permission bits in octal, as text ("644", "4755") */
  mode: string;
  uid: number;
  gid: number;
  nlink: number;
  inode: string;
  /** a symlink's target */
  target?: string;
  /** a regular file's md5 (hex) */
  md5?: string;
}

/** Parses the script's output. */
export function parseListing(stdout: string): Listed[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [p, type, mode, uid, gid, nlink, inode, ...rest] = line.split('|');
      assert.ok(inode !== undefined && rest.length > 0, `not a listing line: ${line}`);
      const x = rest.join('|'); // a link target may hold "|"
      const e: Listed = { path: p, type, mode, uid: Number(uid), gid: Number(gid), nlink: Number(nlink), inode };
      if (type === 'symbolic link') e.target = x;
      else if (x !== '') e.md5 = x;
      return e;
    });
}

/**
 * One line per path, `path|type|mode|uid:gid|links|x` where x is `-> target` for a symlink and
 * the md5 for a regular file; newline-terminated, as the shell printed it.
 */
export function formatWithLinkCounts(entries: Listed[]): string {
  return entries.map((e) => `${e.path}|${e.type}|${e.mode}|${e.uid}:${e.gid}|${e.nlink}|${e.target !== undefined ? `-> ${e.target}` : (e.md5 ?? '')}\n`).join('');
}

/**
 * One line per path, `path|type|mode|uid|gid|links|group|x`: a directory's link count and group
 * left blank, a hard-linked file's group `=first path with its inode`, x the symlink target or
 * the first 12 hex digits of the md5. Inode numbers differ between runs, groups do not.
 */
export function formatWithLinkGroups(entries: Listed[]): string[] {
  const firstOfInode = new Map<string, string>();
  return entries.map((e) => {
    let links = String(e.nlink);
    let group = '';
    if (e.type === 'directory') links = '';
    else if (e.nlink > 1) {
      if (!firstOfInode.has(e.inode)) firstOfInode.set(e.inode, e.path);
      group = `=${firstOfInode.get(e.inode)}`;
    }
    return [e.path, e.type, e.mode, e.uid, e.gid, links, group, e.target ?? e.md5?.slice(0, 12) ?? ''].join('|');
  });
}

/** The listing of `roots` inside an image of a kiln root (`kiln run --rm`). */
export async function kilnListing(root: string, image: string, roots: string[]): Promise<{ code: number; entries: Listed[]; stderr: string }> {
  const r = await runKiln(['run', '--rm', image, ...listingArgv(roots)], { root });
  return { code: r.code, entries: r.code === 0 ? parseListing(r.stdout) : [], stderr: r.stderr };
}
