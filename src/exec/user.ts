import { readFileSync, statSync } from 'node:fs';
import { KilnError } from '../errors.js';
import { rootPathSync } from '../fsroot.js';

/**
 * `unsafe` (an absolute path as seen inside the container) as a host path inside `rootfs`,
 * following symlinks as the container would see them (see src/fsroot.ts).
 */
export async function resolveInRoot(rootfs: string, unsafe: string): Promise<string> {
  return rootPathSync(rootfs, unsafe);
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const MAX_ID = 2 ** 31 - 1;

async function readRootFile(rootfs: string, file: string): Promise<string | undefined> {
  try {
    // resolved inside the root, so the file read is the image's; only a regular file is read
    // (a FIFO or device planted at /etc/passwd would block or read the host's device)
    const abs = rootPathSync(rootfs, file);
    if (!statSync(abs).isFile()) return undefined;
    return readFileSync(abs, 'utf8');
  } catch {
    return undefined;
  }
}

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const f = t.split(':');
    if (f.length < 4) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '' });
  }
  return out;
}

function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const f = t.split(':');
    if (f.length < 3) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid)) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

function numeric(s: string): number | undefined {
  return /^\d+$/.test(s) ? Number(s) : undefined;
}

/**
 * Resolves a Dockerfile/`docker run` user spec ('', 'name', 'uid', 'name:group', 'uid:gid')
 * against the rootfs's /etc/passwd and /etc/group, with docker's semantics.
 */
export async function resolveUser(rootfs: string, user: string): Promise<ResolvedUser> {
  const colon = user.indexOf(':');
  const userArg = colon === -1 ? user : user.slice(0, colon);
  const groupArg = colon === -1 ? '' : user.slice(colon + 1);
  const uidArg = numeric(userArg);
  const gidArg = numeric(groupArg);
  const passwdText = await readRootFile(rootfs, '/etc/passwd');
  const groupText = await readRootFile(rootfs, '/etc/group');
  const passwd = passwdText === undefined ? [] : parsePasswd(passwdText);
  const groups = groupText === undefined ? [] : parseGroup(groupText);

  const result: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: '/' };
  const match = passwd.find((u) => (userArg === '' ? u.uid === 0 : uidArg !== undefined ? u.uid === uidArg : u.name === userArg));
  let matchedName = '';
  if (match) {
    matchedName = match.name;
    result.uid = match.uid;
    result.gid = match.gid;
    result.home = match.home || '/';
  } else if (userArg !== '') {
    if (uidArg === undefined) {
      throw new KilnError(`unable to find user ${userArg}: no matching entries in passwd file`, {
        hint: `add the user to the image (e.g. RUN adduser ${userArg}) or use a numeric uid`,
        code: 'not-found',
      });
    }
    if (uidArg > MAX_ID) throw new KilnError(`user ID ${userArg} is out of range`, { code: 'invalid' });
    result.uid = uidArg;
  }

  if (groupArg !== '') {
    const g = groups.find((gr) => (gidArg !== undefined ? gr.gid === gidArg : gr.name === groupArg));
    if (g) result.gid = g.gid;
    else if (gidArg !== undefined) {
      if (gidArg > MAX_ID) throw new KilnError(`group ID ${groupArg} is out of range`, { code: 'invalid' });
      result.gid = gidArg;
    } else {
      throw new KilnError(`unable to find group ${groupArg}: no matching entries in group file`, {
        hint: `add the group to the image (e.g. RUN addgroup ${groupArg}) or use a numeric gid`,
        code: 'not-found',
      });
    }
  } else if (matchedName !== '') {
    // supplementary groups only in the implicit form, as docker does
    const gids: number[] = [];
    for (const g of groups) {
      if (g.members.includes(matchedName) && !gids.includes(g.gid)) gids.push(g.gid);
    }
    result.additionalGids = gids;
  }
  // the primary group is a supplementary one too, first, as containerd and BuildKit make it
  if (!result.additionalGids.includes(result.gid)) result.additionalGids.unshift(result.gid);
  return result;
}
