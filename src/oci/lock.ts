import { AsyncLocalStorage } from 'node:async_hooks';
import { promises as fsp, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { processStartTime } from '../owner.js';
import { ownedName } from '../lifecycle.js';

/**
 * Inter-process exclusive locks: a lock file created with O_EXCL holding
 * "pid\nhost\nnonce\nstarttime\nsince\ncommand\n". A lock whose owner process is gone (same
 * host) is stale and gets broken; the owner is the pid *and* its start time, so a pid reused
 * by an unrelated process does not keep the lock alive. Breaking is itself
 * guarded by a short-lived "<lock>.break" file so two waiters cannot both break a lock and one of
 * them delete the other's fresh lock. Within one process, callers of the same lock queue on a
 * promise chain, and a nested call for a lock the current async context already holds runs
 * directly (re-entrant) instead of deadlocking.
 */

const held = new AsyncLocalStorage<ReadonlySet<string>>();
const queues = new Map<string, Promise<unknown>>();
const hostname = os.hostname();

export interface LockOptions {
  /** How long to wait for another process before giving up (default 10 minutes). */
  timeoutMs?: number;
  /** Shown in the timeout error ("the image index"). */
  what?: string;
  /** Stops waiting (rejects with its reason). */
  signal?: AbortSignal;
}

/** Lock files this process holds, with their content: released when it is interrupted. */
const mine = new Map<string, string>();

let reportWait: ((message: string) => void) | undefined;
/** Where "waiting for the lock held by …" goes (the CLI: stderr). Nothing by default. */
export function setLockWaitReporter(fn: ((message: string) => void) | undefined): void {
  reportWait = fn;
}

/** Removes the lock files this process holds (synchronous: for a signal handler before exit). */
export function releaseHeldLocks(): void {
  for (const [file, token] of mine) {
    try {
      if (readFileSync(file, 'utf8') === token) rmSync(file, { force: true });
    } catch {
      // gone already
    }
  }
  mine.clear();
}

export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const key = path.resolve(lockPath);
  const current = held.getStore();
  if (current?.has(key)) return fn();

  const previous = queues.get(key) ?? Promise.resolve();
  let release!: () => void;
  const turn = new Promise<void>((resolve) => (release = resolve));
  const tail = previous.then(() => turn);
  queues.set(key, tail);
  try {
    await previous.catch(() => undefined);
    const token = await acquire(key, options);
    try {
      const next = new Set(current ?? []);
      next.add(key);
      return await held.run(next, fn);
    } finally {
      await releaseLock(key, token);
    }
  } finally {
    release();
    if (queues.get(key) === tail) queues.delete(key);
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLock(file: string): Promise<{ content: string; mtimeMs: number } | undefined> {
  try {
    const [content, st] = await Promise.all([fsp.readFile(file, 'utf8'), fsp.stat(file)]);
    return { content, mtimeMs: st.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

interface Holder {
  pid: number;
  host?: string;
  start?: string;
  since?: string;
  command?: string;
}

function parseHolder(content: string): Holder | undefined {
  const [pidText, host, , start, since, command] = content.split('\n');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, host: host || undefined, start: start || undefined, since: since || undefined, command: command || undefined };
}

function isStale(info: { content: string; mtimeMs: number }): boolean {
  const holder = parseHolder(info.content);
  if (!holder) {
    // being written right now, or garbage left by a crash between create and write
    return Date.now() - info.mtimeMs > 30_000;
  }
  if (holder.host !== undefined && holder.host !== hostname) return false;
  // this process queues its own callers, so a lock file with its pid is from an earlier process
  if (holder.pid === process.pid) return true;
  if (!isAlive(holder.pid)) return true;
  // the pid is taken: by the holder, or by an unrelated process that got the pid after it died
  return holder.start !== undefined && processStartTime(holder.pid) !== holder.start;
}

/** "process 123 (kiln build .) since 10:02:03", from the lock file or, for old ones, from /proc. */
function describeHolder(content: string): string {
  const h = parseHolder(content);
  if (!h) return 'a process that is just taking it';
  let command = h.command;
  if (command === undefined) {
    try {
      command = readFileSync(`/proc/${h.pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 200);
    } catch {
      command = undefined;
    }
  }
  const host = h.host && h.host !== hostname ? ` on ${h.host}` : '';
  return `process ${h.pid}${host}${command ? ` (${command})` : ''}${h.since ? ` since ${h.since}` : ''}`;
}

async function breakStale(file: string, staleContent: string): Promise<void> {
  const guard = `${file}.break`;
  try {
    const fh = await fsp.open(guard, 'wx');
    await fh.close();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const st = await fsp.stat(guard).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 10_000) await fsp.rm(guard, { force: true });
    return;
  }
  try {
    const now = await readLock(file);
    if (now && now.content === staleContent) await fsp.rm(file, { force: true });
  } finally {
    await fsp.rm(guard, { force: true });
  }
}

/** How long a waiter is quiet before saying whom it waits for, and then how often it repeats. */
const FIRST_REPORT_MS = 1000;
const REPORT_EVERY_MS = 30_000;

async function acquire(file: string, options: LockOptions): Promise<string> {
  const program = path.basename(process.argv[1] ?? 'node').replace(/^kiln\.c?js$/, 'kiln');
  const command = [program, ...process.argv.slice(2)].join(' ').replace(/\s+/g, ' ').slice(0, 200);
  const token = `${process.pid}\n${hostname}\n${Date.now()}-${Math.random().toString(36).slice(2)}\n${processStartTime(process.pid) ?? ''}\n${new Date().toISOString()}\n${command}\n`;
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? 10 * 60_000);
  let nextReport = started + FIRST_REPORT_MS;
  let delay = 2;
  // The lock file appears whole (a hard link to a temp file holding the token), so a
  // process interrupted while taking it never leaves an empty lock nobody can attribute.
  const tmp = path.join(path.dirname(file), ownedName('locking'));
  await fsp.writeFile(tmp, token).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(tmp, token);
  });
  try {
    for (;;) {
      if (options.signal?.aborted) throw options.signal.reason instanceof Error ? options.signal.reason : new KilnError('interrupted while waiting for a lock', { code: 'cancelled' });
      mine.set(file, token);
      try {
        await fsp.link(tmp, file);
        return token;
      } catch (e) {
        mine.delete(file);
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      await waitTurn();
    }
  } finally {
    await fsp.rm(tmp, { force: true });
  }

  async function waitTurn(): Promise<void> {
    const info = await readLock(file);
    if (info === undefined) return;
    if (isStale(info)) {
      await breakStale(file, info.content);
      return;
    }
    const now = Date.now();
    if (now > deadline) {
      throw new KilnError(`timed out waiting for the lock on ${options.what ?? file}, held by ${describeHolder(info.content)}`, {
        code: 'conflict',
        hint: `if that process is not kiln, or hangs, stop it or remove ${file}`,
      });
    }
    if (now >= nextReport) {
      nextReport = now + REPORT_EVERY_MS;
      reportWait?.(`waiting for the lock on ${options.what ?? file}, held by ${describeHolder(info.content)}`);
    }
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
}

async function releaseLock(file: string, token: string): Promise<void> {
  mine.delete(file);
  const info = await readLock(file);
  if (info?.content === token) await fsp.rm(file, { force: true });
}
