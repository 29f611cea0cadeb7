/**
 * Which ADD sources are git repositories, and what they name, as BuildKit's Dockerfile
 * frontend reads them: `https://host/repo.git#ref:subdir` (http(s) only with a path ending
 * in .git), `git://host/repo#ref`, `ssh://user@host/repo.git`, `user@host:repo.git`, each
 * with BuildKit's query form `?ref=&tag=&branch=&commit=&subdir=&keep-git-dir=&submodules=
 * &mtime=`. `github.com/...` without a scheme is a local path for ADD, as in BuildKit.
 */
import path from 'node:path';

export interface GitRef {
  /** The repository, without the fragment and the query. */
  remote: string;
  /** The ref: a branch, a tag, a full ref name or a commit; empty for the default branch. */
  ref: string;
  subdir: string;
  /** `commit=` / `checksum=`: what the resolved commit must start with. */
  checksum?: string;
  keepGitDir?: boolean;
  submodules?: boolean;
  mtime?: 'checkout' | 'commit';
  /** Over ssh (`ssh://` or `user@host:path`). */
  ssh: boolean;
}

const SCHEME = /^([a-zA-Z0-9]+):\/\//;
const SCP = /^([a-zA-Z0-9_-]+)@([a-zA-Z0-9.-]+):(.*?)(?:\?(.*?))?(?:#(.*))?$/;

/**
 * The git repository `src` names, undefined when it is not one; throws (a message for the
 * Dockerfile error) when it is one written wrongly.
 */
export function parseGitRef(src: string): GitRef | undefined {
  if (src.startsWith('./') || src.startsWith('../')) return undefined;
  let remote: string;
  let query: string;
  let fragment: string;
  let ssh = false;
  const scheme = SCHEME.exec(src)?.[1].toLowerCase();
  if (scheme !== undefined) {
    if (!['http', 'https', 'git', 'ssh'].includes(scheme)) return undefined;
    let u: URL;
    try {
      u = new URL(src);
    } catch {
      return undefined;
    }
    if ((scheme === 'http' || scheme === 'https') && !u.pathname.endsWith('.git')) return undefined;
    remote = src.replace(/[?#].*$/s, '');
    query = u.search.slice(1);
    fragment = decode(u.hash.slice(1));
    ssh = scheme === 'ssh';
  } else {
    const m = SCP.exec(src);
    if (!m) return undefined;
    remote = `${m[1]}@${m[2]}:${m[3]}`;
    query = m[4] ?? '';
    fragment = m[5] ?? '';
    ssh = true;
  }
  const colon = fragment.indexOf(':');
  const res: GitRef = {
    remote,
    ref: colon < 0 ? fragment : fragment.slice(0, colon),
    subdir: colon < 0 ? '' : cleanSubdir(fragment.slice(colon + 1)),
    ssh,
  };
  if (query !== '') loadQuery(res, new URLSearchParams(query));
  return res;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function cleanSubdir(s: string): string {
  return path.posix.join('/', s).replace(/^\/+|\/+$/g, '');
}

function bool(key: string, v: string | undefined): boolean {
  if (v === undefined) return true;
  const t = ['1', 't', 'T', 'TRUE', 'true', 'True'];
  const f = ['0', 'f', 'F', 'FALSE', 'false', 'False'];
  if (t.includes(v)) return true;
  if (f.includes(v)) return false;
  throw new Error(`invalid ${key} value: "${v}"`);
}

function loadQuery(res: GitRef, q: URLSearchParams): void {
  let tag = '';
  let branch = '';
  for (const k of new Set(q.keys())) {
    const all = q.getAll(k);
    if (all.length > 1) throw new Error(`query "${k}" has multiple values`);
    let v: string | undefined = all[0];
    if (v === '') {
      if (k === 'submodules' || k === 'keep-git-dir' || k === 'fetch-by-commit') v = undefined;
      else throw new Error(`query "${k}" has no value`);
    }
    switch (k) {
      case 'ref':
        if (res.ref !== '' && res.ref !== v) throw new Error(`ref conflicts: "${res.ref}" vs "${v}"`);
        res.ref = v!;
        break;
      case 'tag':
        tag = v!;
        break;
      case 'branch':
        branch = v!;
        break;
      case 'subdir':
        if (res.subdir !== '' && res.subdir !== cleanSubdir(v!)) throw new Error(`subdir conflicts: "${res.subdir}" vs "${v}"`);
        res.subdir = cleanSubdir(v!);
        break;
      case 'checksum':
      case 'commit':
        res.checksum = v;
        break;
      case 'keep-git-dir':
        res.keepGitDir = bool(k, v);
        break;
      case 'submodules':
        res.submodules = bool(k, v);
        break;
      case 'fetch-by-commit':
        // how BuildKit fetches, not what the checkout holds: kiln fetches the ref and checks the commit
        bool(k, v);
        break;
      case 'mtime':
        if (v !== 'checkout' && v !== 'commit') throw new Error(`invalid mtime value: "${v}" (must be "checkout" or "commit")`);
        res.mtime = v;
        break;
      default:
        throw new Error(`unexpected query "${k}"`);
    }
  }
  if (tag !== '') {
    const full = tag.startsWith('refs/tags/') ? tag : `refs/tags/${tag}`;
    if (res.ref !== '' && res.ref !== full) throw new Error(`ref conflicts: "${res.ref}" vs "${full}"`);
    res.ref = full;
  }
  if (branch !== '') {
    if (tag !== '') throw new Error('branch conflicts with tag');
    const full = branch.startsWith('refs/heads/') ? branch : `refs/heads/${branch}`;
    if (res.ref !== '' && res.ref !== full) throw new Error(`ref conflicts: "${res.ref}" vs "${full}"`);
    res.ref = full;
  }
}
