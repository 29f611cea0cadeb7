/** Where in a source file (a Dockerfile) an error points. Lines and columns are 1-based. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
  /** The text of the line, for the caret display. */
  sourceLine?: string;
  /** How many characters the caret underline spans (default 1). */
  length?: number;
}

export interface KilnErrorOptions {
  /** An obvious fix, shown as "hint: ...". */
  hint?: string;
  location?: SourceLocation;
  cause?: unknown;
  /** Process exit code the CLI uses for this error (default 1). */
  exitCode?: number;
  /** More lines shown after the location (e.g. the last output of a failed RUN). */
  detail?: string;
}

/**
 * An error a user can cause (bad Dockerfile, missing file, failed RUN, ...).
 * The CLI prints `format()` and exits non-zero; never a stack trace.
 */
export class KilnError extends Error {
  readonly hint?: string;
  readonly location?: SourceLocation;
  readonly exitCode: number;
  readonly detail?: string;

  constructor(message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KilnError';
    this.hint = options.hint;
    this.location = options.location;
    this.exitCode = options.exitCode ?? 1;
    this.detail = options.detail;
  }

  /** "file:line:col: message", the offending line with a caret, then the hint. */
  format(): string {
    const out: string[] = [];
    const loc = this.location;
    out.push(loc ? `${loc.file}:${loc.line}:${loc.column}: ${this.message}` : this.message);
    if (loc?.sourceLine !== undefined) {
      const gutter = String(loc.line);
      out.push(` ${gutter} | ${loc.sourceLine}`);
      const pad = ' '.repeat(gutter.length);
      const caretCol = Math.max(1, loc.column);
      out.push(` ${pad} | ${' '.repeat(caretCol - 1)}${'^'.repeat(Math.max(1, loc.length ?? 1))}`);
    }
    if (this.detail) out.push(this.detail);
    if (this.hint) out.push(`hint: ${this.hint}`);
    return out.join('\n');
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** A system error from node (fs, child_process): it has an errno code such as ENOENT. */
export function isErrnoError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((e as NodeJS.ErrnoException).code!);
}

const SYSCALL_VERBS: Record<string, string> = {
  open: 'opening', write: 'writing', read: 'reading', close: 'closing', mkdir: 'creating the directory', mkdtemp: 'creating a temporary directory',
  rename: 'renaming', stat: 'looking at', lstat: 'looking at', fstat: 'looking at', access: 'looking at', scandir: 'listing', opendir: 'listing',
  unlink: 'removing', rmdir: 'removing', rm: 'removing', copyfile: 'copying', symlink: 'creating the symlink', link: 'creating the hard link',
  readlink: 'reading the symlink', chmod: 'changing the mode of', chown: 'changing the owner of', lchown: 'changing the owner of', utime: 'setting the times of',
  lutimes: 'setting the times of', futime: 'setting the times of', truncate: 'truncating', ftruncate: 'truncating', fsync: 'syncing', fdatasync: 'syncing',
  spawn: 'starting', mount: 'mounting', setxattr: 'setting extended attributes on', lsetxattr: 'setting extended attributes on',
};

/** What each errno means, in words, with what to do where there is an obvious fix. */
const ERRNO_TEXT: Record<string, { what: string; hint?: string }> = {
  ENOSPC: { what: 'no space left on device', hint: 'free space on that filesystem (kiln prune removes unused build cache), or use --root on another one' },
  EDQUOT: { what: 'disk quota exceeded', hint: 'free space within your quota, or use --root elsewhere' },
  ENAMETOOLONG: { what: 'a file name is too long', hint: 'names are at most 255 bytes and paths 4096 bytes: shorten it' },
  ENOENT: { what: 'no such file or directory', hint: 'check that the path exists' },
  ENOTDIR: { what: 'a part of the path is not a directory', hint: 'check the path' },
  EISDIR: { what: 'it is a directory', hint: 'name a file, not a directory' },
  EEXIST: { what: 'it already exists' },
  ENOTEMPTY: { what: 'the directory is not empty' },
  EACCES: { what: 'permission denied', hint: 'check the permissions, or run as a user who may write there' },
  EPERM: { what: 'operation not permitted', hint: 'check the permissions, or run as root' },
  EROFS: { what: 'the file system is read-only', hint: 'choose a writable place' },
  ELOOP: { what: 'too many levels of symbolic links', hint: 'check for a symlink loop' },
  EMFILE: { what: 'too many open files', hint: 'raise the open-file limit (ulimit -n)' },
  ENFILE: { what: 'too many open files in the system', hint: 'raise the system open-file limit' },
  EIO: { what: 'an input/output error (the disk or file system failed)', hint: 'check the disk (dmesg)' },
  EXDEV: { what: 'source and target are on different file systems' },
  EBUSY: { what: 'the resource is busy' },
  ETXTBSY: { what: 'the file is busy (being executed)' },
  EFBIG: { what: 'the file is too large for the file system' },
};

/**
 * A node system error as a KilnError: what happened in words (never the raw code), on
 * which path, while doing what, and what to do. `action` ("writing the layer of ...")
 * replaces the one read from the error's syscall and path.
 */
export function fromErrno(
  e: NodeJS.ErrnoException,
  action?: string,
  options: Omit<KilnErrorOptions, 'cause'> & { showPath?: (p: string) => string } = {},
): KilnError {
  const { showPath = (p: string) => p, ...rest } = options;
  const { what, hint } = describeErrno(e);
  const verb = e.syscall ? (SYSCALL_VERBS[e.syscall] ?? e.syscall) : undefined;
  const dest = (e as { dest?: string }).dest;
  const target = e.path ? (dest ? `${showPath(e.path)} to ${showPath(dest)}` : showPath(e.path)) : undefined;
  const doing = action ?? (verb && target ? `${verb} ${target}` : verb);
  return new KilnError(doing ? `${what} while ${doing}` : what, { hint, ...rest, cause: e });
}

/** A system error's meaning in words (never the raw code), and what to do when that is obvious. */
export function describeErrno(e: NodeJS.ErrnoException): { what: string; hint?: string } {
  const known = ERRNO_TEXT[e.code ?? ''];
  if (known) return known;
  // node's own text without its "CODE: " prefix and ", syscall 'path'" suffix
  const plain = (e.message ?? '').replace(/^E[A-Z0-9]+: /, '').replace(/, \w+( '.*')?$/, '');
  return { what: plain || 'a system call failed' };
}
