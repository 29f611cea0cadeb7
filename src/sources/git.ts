/**
 * ADD of a git repository, with the host's git: a ref resolves to a commit with `git
 * ls-remote` (the step's key: the same commit hits the cache, wherever the ref moved); the
 * commit is fetched into a bare repository the root keeps per remote (kilnPaths().cacheGit,
 * one inter-process lock each), and checked out into a temp dir for the step to copy from:
 * without `.git` by default, or with a fresh one (HEAD detached at the commit, origin the
 * remote) for --keep-git-dir. Submodules are checked out unless `?submodules=false`.
 *
 * Git runs with no system or user config, no prompts, only the http(s), git, ssh and file
 * transports, and, over ssh, the build's agent; it is killed when the build is cancelled,
 * and, with everything it started, when kiln dies (see gitWrapper).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { GitVertex } from '../graph/types.js';
import { caList } from '../net.js';
import { withFileLock } from '../oci/lock.js';

/** What a ref resolved to. */
export interface ResolvedGit {
  /** The object the ref names (a commit, or an annotated tag). */
  sha: string;
  /** The full ref name it was found under (refs/heads/…, refs/tags/…), or the commit itself. */
  ref: string;
  /** The key of what the checkout holds (BuildKit's: commit, .git#ref, :subdir, flags). */
  key: string;
}

export interface GitOptions {
  /** The root's bare repositories (kilnPaths().cacheGit) and lock dir (kilnPaths().locks). */
  cacheDir: string;
  locksDir: string;
  /** A fresh temp path on the root's filesystem. */
  tempPath: (kind: string) => string;
  signal?: AbortSignal;
  /** Told of a temp file to remove when the build's sources are cleaned up. */
  onTemp?: (file: string) => void;
  /** The agent socket git over ssh uses (the build's --ssh default), if any. */
  sshAuthSock?: () => Promise<string | undefined>;
}

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * What git runs under so that it, and whatever it starts (remote helpers, ssh), dies with
 * kiln however kiln dies: setpriv's PR_SET_PDEATHSIG kills an `unshare` at once, whose
 * --kill-child kills git, the first process of a pid namespace of its own, with which the
 * kernel kills the rest. Without a pid namespace (not root), setpriv alone (git itself dies).
 */
let wrapper: Promise<string[]> | undefined;
function gitWrapper(): Promise<string[]> {
  wrapper ??= (async () => {
    const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p)) ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
    const ns = ['unshare', '--pid', '--fork', '--kill-child=SIGKILL', '--'];
    const works = await new Promise<boolean>((resolve) => {
      const p = spawn(ns[0], [...ns.slice(1), 'true'], { stdio: 'ignore' });
      p.on('error', () => resolve(false));
      p.on('close', (code) => resolve(code === 0));
    });
    return [...setpriv, ...(works ? ns : [])];
  })();
  return wrapper;
}

export function isCommitSha(s: string | undefined): boolean {
  return s !== undefined && SHA.test(s);
}

/** Hides the password of a URL's user info (https://user:token@host/...). */
export function redact(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*):[^/\s@]*@/gi, '$1:xxxxx@');
}

export class GitRepos {
  private caFile?: Promise<string | undefined>;

  constructor(private readonly opts: GitOptions) {}

  /**
   * The CA bundle git gets when KILN_EXTRA_CA_CERTS is set (as ADD <url> trusts it): node's
   * roots and the extra ones, in a temp file of the build (removed with its checkouts).
   */
  private caBundle(): Promise<string | undefined> {
    this.caFile ??= (async () => {
      const cas = caList();
      if (!cas) return undefined;
      const file = this.opts.tempPath('git-ca');
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, cas.join('\n'));
      this.opts.onTemp?.(file);
      return file;
    })();
    return this.caFile;
  }

  /** Resolves the vertex's ref (the remote's default branch when none) and checks --checksum. */
  async resolve(v: GitVertex): Promise<ResolvedGit> {
    const env = await this.env(v);
    const ref = v.ref ?? '';
    let sha: string;
    let usedRef: string;
    let peeled = '';
    if (isCommitSha(ref)) {
      if (v.checksum && !ref.startsWith(v.checksum.toLowerCase())) throw mismatch(v, ref);
      sha = ref;
      usedRef = ref;
    } else {
      const want = ref || (await this.defaultBranch(v, env));
      const out = await this.git(['ls-remote', '--', v.remote, want, `${want}^{}`], { env, what: `could not read the refs of ${redact(v.remote)}` });
      const bare = want.replace(/^refs\//, '');
      const partial = `refs/${bare}`;
      const head = `refs/heads/${want.replace(/^refs\/heads\//, '')}`;
      const tag = `refs/tags/${want.replace(/^refs\/tags\//, '')}`;
      const found: Record<string, string> = {};
      for (const line of out.split('\n')) {
        const [s, name] = line.split('\t');
        if (name) found[name] = s;
      }
      sha = found[partial] ?? '';
      usedRef = partial;
      if (!sha && found[head]) [sha, usedRef] = [found[head], head];
      if (!sha && found[tag]) [sha, usedRef, peeled] = [found[tag], tag, found[`${tag}^{}`] ?? ''];
      if (!sha) throw new KilnError(`${redact(v.remote)}: repository does not contain ref ${want}`, { code: 'not-found', hint: 'check the branch, tag or commit after # (or ?ref=, ?tag=, ?branch=)' });
      if (!isCommitSha(sha)) throw new KilnError(`invalid commit sha "${sha}" from ${redact(v.remote)}`);
      if (v.checksum) {
        const sum = v.checksum.toLowerCase();
        if (!sha.startsWith(sum) && !peeled.startsWith(sum)) throw mismatch(v, peeled ? `${sha} or ${peeled}` : sha);
      }
    }
    // as BuildKit's key: the commit (an annotated tag's commit without .git), the ref with .git
    let key = peeled && !v.keepGitDir ? peeled : sha;
    if (v.keepGitDir) key += `.git#${usedRef}`;
    if (v.subdir) key += `:${v.subdir}`;
    if (v.submodules === false) key += '(skip-submodules)';
    if (v.mtime === 'commit') key += '(mtime=commit)';
    return { sha, ref: usedRef, key };
  }

  /**
   * Checks the resolved commit out into `dest` (which must not exist), with `.git` for
   * --keep-git-dir; returns the directory to copy (the subdir, checked to be a directory
   * reached without symlinks).
   */
  async checkout(v: GitVertex, r: ResolvedGit, dest: string): Promise<string> {
    const env = await this.env(v);
    const bare = path.join(this.opts.cacheDir, createHash('sha256').update(v.remote).digest('hex').slice(0, 32));
    const lock = path.join(this.opts.locksDir, `git-${path.basename(bare)}.lock`);
    await fs.mkdir(this.opts.locksDir, { recursive: true });
    await withFileLock(
      lock,
      async () => {
        await this.fetchInto(v, r, bare, env);
        await fs.mkdir(dest, { recursive: true });
        // a repository of its own in dest, fetched from the root's copy: its submodules' git
        // dirs land in its .git, which goes unless --keep-git-dir (and no subdir, as BuildKit)
        const g = (args: string[], what = `could not check out ${redact(v.remote)}`) => this.git(args, { cwd: dest, env, what });
        await g(['-c', 'init.defaultBranch=master', 'init', '-q', ...(r.sha.length === 64 ? ['--object-format=sha256'] : [])]);
        await g(['remote', 'add', 'origin', `file://${bare}`]);
        const type = (await this.git(['--git-dir', bare, 'cat-file', '-t', r.sha], { env, what: 'could not read the fetched commit' })).trim();
        const target = r.ref.startsWith('refs/') ? r.ref : type === 'tag' ? `refs/tags/${r.ref}` : '';
        const refName = `refs/kiln/${r.sha}`;
        await g(['fetch', '-q', '-u', '--depth=1', '--no-tags', '--', 'origin', target ? `${refName}:${target}` : refName]);
        await g(['checkout', '-q', '--detach', 'FETCH_HEAD']);
        // relative submodule URLs are relative to the remote, not to the root's copy of it
        await g(['remote', 'set-url', 'origin', v.remote]);
        if (v.submodules !== false && (await exists(path.join(dest, '.gitmodules')))) {
          const what = `could not update the submodules of ${redact(v.remote)}`;
          await g(['submodule', 'update', '-q', '--init', '--recursive', '--depth=1'], what).catch(async (e: unknown) => {
            // a submodule served over dumb http cannot be fetched shallow: fetch it whole
            if (!/does not support shallow/.test((e as Error).message)) throw e;
            await g(['submodule', 'update', '-q', '--init', '--recursive'], what);
          });
        }
        if (v.keepGitDir && !v.subdir) {
          await g(['remote', 'set-url', 'origin', redact(v.remote)]);
          await g(['reflog', 'expire', '--all', '--expire=now']);
          await fs.rm(path.join(dest, '.git', 'FETCH_HEAD'), { force: true });
        } else {
          await fs.rm(path.join(dest, '.git'), { recursive: true, force: true });
          // a submodule's .git file points into the .git just removed
          await removeGitLinks(dest);
        }
        if (v.mtime === 'commit') {
          const t = Number((await this.git(['--git-dir', bare, 'log', '-1', '--format=%ct', `${r.sha}^{commit}`], { env, what: 'could not read the commit time' })).trim());
          await setTimes(dest, new Date(t * 1000));
        }
      },
      { what: `the git cache of ${redact(v.remote)}`, signal: this.opts.signal },
    );
    // last used now (what `kiln du` and prune's LRU read)
    const now = new Date();
    await fs.utimes(bare, now, now).catch(() => undefined);
    await normaliseModes(dest);
    return this.subdir(v, dest);
  }

  /** The commit in the bare repository of the remote, fetched when it is not there yet. */
  private async fetchInto(v: GitVertex, r: ResolvedGit, bare: string, env: NodeJS.ProcessEnv): Promise<void> {
    const g = (args: string[], what = `could not fetch ${redact(v.remote)}`) => this.git(['--git-dir', bare, ...args], { env, what });
    if (!(await exists(path.join(bare, 'HEAD')))) {
      await fs.rm(bare, { recursive: true, force: true });
      await fs.mkdir(bare, { recursive: true });
      await g(['init', '-q', '--bare', ...(r.sha.length === 64 ? ['--object-format=sha256'] : [])]);
      await g(['config', 'gc.auto', '0']);
      await g(['remote', 'add', 'origin', v.remote]);
    }
    // we hold the lock: any git lock file left is from a process that was killed
    await removeLockFiles(bare);
    await g(['remote', 'set-url', 'origin', v.remote]);
    const keep = `refs/kiln/${r.sha}`;
    const has = async (sha: string) =>
      this.git(['--git-dir', bare, 'cat-file', '-e', `${sha}^{object}`], { env, what: '' }).then(
        () => true,
        () => false,
      );
    if (await has(r.sha)) {
      await g(['update-ref', keep, r.sha]);
      return;
    }
    const fetch = async (spec: string[]): Promise<void> => {
      try {
        await g(['fetch', '-q', '--depth=1', '--no-tags', '--force', 'origin', ...spec]);
      } catch (e) {
        // the dumb http transport cannot fetch shallow: fetch the whole history
        if (!/does not support shallow/.test((e as Error).message)) throw e;
        await g(['fetch', '-q', '--no-tags', '--force', 'origin', ...spec]);
      }
    };
    if (r.ref.startsWith('refs/')) await fetch(['--', `${r.ref}:refs/kiln/fetched`]);
    // the ref moved since it was resolved, or is a commit: fetch the commit itself
    if (!(await has(r.sha))) await fetch([r.sha]);
    if (!(await has(r.sha))) throw new KilnError(`fetched ${r.ref} from ${redact(v.remote)} but commit ${r.sha} is not in it`, { code: 'not-found' });
    await g(['update-ref', keep, r.sha]);
  }

  private async subdir(v: GitVertex, dest: string): Promise<string> {
    if (!v.subdir) return dest;
    let dir = dest;
    for (const part of v.subdir.split('/').filter(Boolean)) {
      dir = path.join(dir, part);
      const st = await fs.lstat(dir).catch(() => undefined);
      if (!st?.isDirectory()) {
        throw new KilnError(`invalid subdir ${v.subdir} of ${redact(v.remote)}: ${st ? (st.isSymbolicLink() ? `${part} is a symlink` : `${part} is not a directory`) : `${part} not found`}`, {
          code: st ? 'invalid' : 'not-found',
          hint: 'name a directory of the repository after the ref: #<ref>:<dir>',
        });
      }
    }
    return dir;
  }

  private async defaultBranch(v: GitVertex, env: NodeJS.ProcessEnv): Promise<string> {
    const out = await this.git(['ls-remote', '--symref', '--', v.remote, 'HEAD'], { env, what: `could not read the refs of ${redact(v.remote)}` });
    const m = /^ref: (\S+)\tHEAD$/m.exec(out);
    return m ? m[1] : 'HEAD';
  }

  private async env(v: GitVertex): Promise<NodeJS.ProcessEnv> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: '/nonexistent',
      LC_ALL: 'C',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: 'true',
      GIT_ALLOW_PROTOCOL: 'http:https:git:ssh:file',
      GIT_SSH_COMMAND: 'ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR',
    };
    const ca = (await this.caBundle()) ?? process.env.GIT_SSL_CAINFO;
    if (ca) env.GIT_SSL_CAINFO = ca;
    if (/^ssh:\/\/|^[^/:]+@[^/:]+:/.test(v.remote)) {
      const sock = await this.opts.sshAuthSock?.();
      if (!sock) {
        throw new KilnError(`ADD ${redact(v.remote)} is over ssh, but the build has no ssh agent`, { code: 'invalid', hint: 'build with --ssh default (forwards $SSH_AUTH_SOCK) or --ssh default=<key file>' });
      }
      env.SSH_AUTH_SOCK = sock;
    }
    return env;
  }

  /** Runs git; its stdout, or a KilnError with `what` and git's last words (credentials hidden). */
  private async git(args: string[], o: { cwd?: string; env: NodeJS.ProcessEnv; what: string }): Promise<string> {
    const [cmd, ...argv] = [...(await gitWrapper()), 'git', ...args];
    return new Promise((resolve, reject) => {
      const p = spawn(cmd, argv, { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'], signal: this.opts.signal });
      let out = '';
      let err = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
      p.on('error', (e: NodeJS.ErrnoException) => {
        if (e.name === 'AbortError') reject(new KilnError('cancelled', { code: 'cancelled', cause: e }));
        else if (e.code === 'ENOENT') reject(new KilnError('git is not installed: ADD of a git repository runs the host git', { code: 'unsupported', hint: 'install git (apt-get install git)' }));
        else reject(e);
      });
      p.on('close', (code) => {
        if (code === 0) resolve(out);
        else if (/failed to execute git|execvp.*git/.test(err)) reject(new KilnError('git is not installed: ADD of a git repository runs the host git', { code: 'unsupported', hint: 'install git (apt-get install git)' }));
        else {
          const words = redact(
            err
              .split('\n')
              .map((l) => l.trim())
              .filter(Boolean)
              .slice(-4)
              .join('; '),
          );
          reject(new KilnError(`${o.what}${words ? `: ${words}` : ''}`, { code: 'failed' }));
        }
      });
    });
  }
}

function mismatch(v: GitVertex, got: string): KilnError {
  return new KilnError(`ADD ${redact(v.remote)}: expected checksum to match ${v.checksum}, got ${got}`, { code: 'failed', hint: 'the ref moved, or --checksum (or ?commit=) names another commit' });
}

async function exists(p: string): Promise<boolean> {
  return (await fs.lstat(p).catch(() => undefined)) !== undefined;
}

async function walk(dir: string, visit: (p: string, st: Stats) => Promise<void>): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    const p = path.join(dir, name);
    const st = await fs.lstat(p);
    if (st.isDirectory()) await walk(p, visit);
    await visit(p, st);
  }
}

async function removeLockFiles(gitDir: string): Promise<void> {
  await walk(gitDir, async (p, st) => {
    if (st.isFile() && p.endsWith('.lock')) await fs.rm(p, { force: true });
  });
}

/** Removes `.git` files (a submodule's pointer to its git dir) from a checkout without .git. */
async function removeGitLinks(dir: string): Promise<void> {
  await walk(dir, async (p) => {
    if (path.basename(p) === '.git') await fs.rm(p, { recursive: true, force: true });
  });
}

/** Modes as a checkout under umask 022 makes them (what BuildKit's daemon gives), whatever kiln's umask. */
async function normaliseModes(dir: string): Promise<void> {
  await fs.chmod(dir, 0o755);
  await walk(dir, async (p, st) => {
    if (st.isSymbolicLink()) return;
    const mode = st.mode & 0o7755;
    if ((st.mode & 0o7777) !== mode) await fs.chmod(p, mode);
  });
}

async function setTimes(dir: string, t: Date): Promise<void> {
  await walk(dir, async (p) => {
    await fs.lutimes(p, t, t);
  });
  await fs.utimes(dir, t, t);
}
