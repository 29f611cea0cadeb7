/**
 * What the build context's git checkout says about the image, as OCI annotations:
 * `org.opencontainers.image.revision` (the commit checked out) and
 * `org.opencontainers.image.source` (the origin remote, credentials removed). Nothing when the
 * context is not in a git checkout, git is absent, or BUILDX_GIT_INFO=0 turns it off (as for
 * buildx). Read with the system's git, never writing to the repository.
 */
import { execFile } from 'node:child_process';

export const RevisionAnnotation = 'org.opencontainers.image.revision';
export const SourceAnnotation = 'org.opencontainers.image.source';
export const CreatedAnnotation = 'org.opencontainers.image.created';

function git(dir: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('git', ['-C', dir, ...args], { timeout: 10_000, env: { ...process.env, GIT_OPTIONAL_LOCKS: '0', GIT_TERMINAL_PROMPT: '0' } }, (err, stdout) => resolve(err ? undefined : stdout.trim() || undefined));
  });
}

/** A remote URL without user or password (https://user:token@host/x → https://host/x). */
export function publicRemote(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '';
      u.password = '';
    }
    return u.toString();
  } catch {
    // scp-like (git@host:org/repo.git): no password can be in it
    return url;
  }
}

export async function gitAnnotations(contextDir: string): Promise<Record<string, string>> {
  if (/^(0|false)$/i.test(process.env.BUILDX_GIT_INFO ?? '')) return {};
  if ((await git(contextDir, ['rev-parse', '--is-inside-work-tree'])) !== 'true') return {};
  const out: Record<string, string> = {};
  const revision = await git(contextDir, ['rev-parse', 'HEAD']);
  if (revision) out[RevisionAnnotation] = revision;
  const remote = await git(contextDir, ['config', '--get', 'remote.origin.url']);
  if (remote) out[SourceAnnotation] = publicRemote(remote);
  return out;
}
