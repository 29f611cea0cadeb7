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

/**
 * What kind of failure an error is, for code that decides what to do about it (retry, fall back,
 * report) without reading its words. Messages are for people and may change; codes may not.
 *
 * - invalid: the input is wrong (a Dockerfile, a flag, a reference, an archive); fix it and retry.
 * - not-found: the thing named does not exist (a file, an image, a stage, a blob).
 * - unauthorized: credentials are missing or were refused (a registry's 401).
 * - denied: the caller may not do this (EACCES/EPERM, a read-only file system, a registry's 403).
 * - conflict: the operation clashes with the current state (a lock held, an image in use).
 * - unavailable: a resource is temporarily unavailable (busy, a network error, a registry's 503);
 *   trying again later may succeed.
 * - cancelled: the operation was stopped (Ctrl-C, an aborted signal).
 * - exists: the thing to create already exists.
 * - unsupported: this host, file system or kiln cannot do it.
 * - resource-exhausted: out of space, quota, file descriptors, or over a rate limit.
 * - failed: it failed for another reason (a RUN step exited non-zero, an I/O error).
 */
export type ErrorCode =
  | 'invalid'
  | 'not-found'
  | 'unauthorized'
  | 'denied'
  | 'conflict'
  | 'unavailable'
  | 'cancelled'
  | 'exists'
  | 'unsupported'
  | 'resource-exhausted'
  | 'failed';

export interface KilnErrorOptions {
  /** What kind of failure this is (see ErrorCode); undefined when the thrower did not say. */
  code?: ErrorCode;
  /**
   * When the failure is temporary and the other side said when to try again (HTTP Retry-After),
   * how long to wait, in milliseconds. Makes a resource-exhausted error retryable (a rate limit).
   */
  retryAfterMs?: number;
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
  readonly code?: ErrorCode;
  readonly retryAfterMs?: number;
  readonly hint?: string;
  readonly location?: SourceLocation;
  readonly exitCode: number;
  readonly detail?: string;

  constructor(message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KilnError';
    this.code = options.code;
    this.retryAfterMs = options.retryAfterMs;
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

/**
 * The code of any error: a KilnError's own code; a node system error's errno mapped by errnoCode
 * (network and DNS codes included); an aborted operation (AbortError, ABORT_ERR) is cancelled; any
 * other error without a code takes its cause's (a KilnError wrapping an ENOENT is not-found, fetch's
 * "fetch failed" over ECONNRESET is unavailable). Undefined when nothing in the chain has one.
 */
export function errorCode(e: unknown): ErrorCode | undefined {
  return codeSource(e)?.code;
}

/** The error in e's cause chain that gives it its code (see errorCode), and that code. */
function codeSource(e: unknown): { code: ErrorCode; from: Error } | undefined {
  for (let cur = e, depth = 0; cur !== undefined && cur !== null && depth < 8; depth++) {
    if (cur instanceof KilnError) {
      if (cur.code !== undefined) return { code: cur.code, from: cur };
      cur = cur.cause;
      continue;
    }
    if (!(cur instanceof Error)) return undefined;
    const sys = (cur as NodeJS.ErrnoException).code;
    if (cur.name === 'AbortError' || sys === 'ABORT_ERR') return { code: 'cancelled', from: cur };
    if (typeof sys === 'string' && (Object.hasOwn(ERRNO_CODES, sys) || isErrnoError(cur))) return { code: errnoCode(sys), from: cur };
    // an error without a code of its own that wraps one (fetch's "fetch failed" over ECONNRESET)
    cur = cur.cause;
  }
  return undefined;
}

/** Whether an error is a KilnError carrying this code (or, with no code of its own, whose cause maps to it). */
export function hasCode(e: unknown, code: ErrorCode): boolean {
  return errorCode(e) === code;
}

/**
 * Whether trying the same operation again, unchanged, may succeed: an unavailable resource (busy,
 * a dropped connection, a registry's 503), or a resource-exhausted error that says when to retry
 * (a rate limit with Retry-After). Everything else is fatal: bad input, missing things, refused
 * credentials, a full disk (resource-exhausted without retryAfterMs), a cancelled build.
 * A wrapper without a code of its own is judged by what it wraps (see errorCode).
 */
export function retryable(e: unknown): boolean {
  const source = codeSource(e);
  if (source?.code === 'unavailable') return true;
  return source?.code === 'resource-exhausted' && source.from instanceof KilnError && source.from.retryAfterMs !== undefined;
}

/** The ErrorCode of each errno (and of the network and DNS codes node gives); 'failed' for the rest. */
const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOENT: 'not-found', ENOTDIR: 'not-found', ENXIO: 'not-found', ENODEV: 'not-found', ESRCH: 'not-found', ENOTFOUND: 'not-found',
  EACCES: 'denied', EPERM: 'denied', EROFS: 'denied',
  EEXIST: 'exists', ENOTEMPTY: 'exists',
  ENOSPC: 'resource-exhausted', EDQUOT: 'resource-exhausted', EMFILE: 'resource-exhausted', ENFILE: 'resource-exhausted',
  ENOMEM: 'resource-exhausted', EFBIG: 'resource-exhausted',
  EBUSY: 'unavailable', EAGAIN: 'unavailable', EWOULDBLOCK: 'unavailable', ETXTBSY: 'unavailable', EINTR: 'unavailable',
  ECONNREFUSED: 'unavailable', ECONNRESET: 'unavailable', ECONNABORTED: 'unavailable', ETIMEDOUT: 'unavailable', EPIPE: 'unavailable',
  EHOSTUNREACH: 'unavailable', ENETUNREACH: 'unavailable', ENETDOWN: 'unavailable', EAI_AGAIN: 'unavailable',
  EINVAL: 'invalid', ENAMETOOLONG: 'invalid', ELOOP: 'invalid', EISDIR: 'invalid', EBADF: 'invalid',
  EXDEV: 'unsupported', ENOSYS: 'unsupported', EOPNOTSUPP: 'unsupported', ENOTSUP: 'unsupported',
  ECANCELED: 'cancelled',
};

/** The ErrorCode an errno stands for (ENOENT → not-found, EACCES → denied, ...); 'failed' when none fits. */
export function errnoCode(errno: string): ErrorCode {
  return Object.hasOwn(ERRNO_CODES, errno) ? ERRNO_CODES[errno] : 'failed';
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
 * which path, while doing what, and what to do. Its code is errnoCode(errno) unless
 * options.code says otherwise. `action` ("writing the layer of ...")
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
  return new KilnError(doing ? `${what} while ${doing}` : what, { hint, code: errnoCode(e.code ?? ''), ...rest, cause: e });
}

/** A system error's meaning in words (never the raw code), and what to do when that is obvious. */
export function describeErrno(e: NodeJS.ErrnoException): { what: string; hint?: string } {
  const known = ERRNO_TEXT[e.code ?? ''];
  if (known) return known;
  // node's own text without its "CODE: " prefix and ", syscall 'path'" suffix
  const plain = (e.message ?? '').replace(/^E[A-Z0-9]+: /, '').replace(/, \w+( '.*')?$/, '');
  return { what: plain || 'a system call failed' };
}
