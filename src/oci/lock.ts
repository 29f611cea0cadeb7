import { AsyncLocalStorage } from 'node:async_hooks';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KilnError } from '../errors.js';

/**
 * Inter-process exclusive locks: a lock file created with O_EXCL holding "pid\nhost\ntime".
 * A lock whose owner process is gone (same host) is stale and gets broken; breaking is itself
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
}

export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const key = path.resolve(lockPath);
  const current = held.getStore();
  if (current?.has(key)) return fn();

  const previous = queues.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => (release = resolve));
  const tail = previous.then(() => mine);
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

function isStale(info: { content: string; mtimeMs: number }): boolean {
  const [pidText, host] = info.content.split('\n');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) {
    // being written right now, or garbage left by a crash between create and write
    return Date.now() - info.mtimeMs > 30_000;
  }
  if (host !== undefined && host !== '' && host !== hostname) return false;
  return !isAlive(pid);
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

async function acquire(file: string, options: LockOptions): Promise<string> {
  const token = `${process.pid}\n${hostname}\n${Date.now()}-${Math.random().toString(36).slice(2)}\n`;
  const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
  let delay = 2;
  for (;;) {
    try {
      const fh = await fsp.open(file, 'wx');
      try {
        await fh.writeFile(token);
      } finally {
        await fh.close();
      }
      return token;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        await fsp.mkdir(path.dirname(file), { recursive: true });
        continue;
      }
      if (code !== 'EEXIST') throw e;
    }
    const info = await readLock(file);
    if (info === undefined) continue;
    if (isStale(info)) {
      await breakStale(file, info.content);
      continue;
    }
    if (Date.now() > deadline) {
      const pid = info.content.split('\n')[0];
      throw new KilnError(`timed out waiting for the lock on ${options.what ?? file}, held by process ${pid}`, {
        hint: `if no other kiln process is running, remove ${file}`,
      });
    }
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
}

async function releaseLock(file: string, token: string): Promise<void> {
  const info = await readLock(file);
  if (info?.content === token) await fsp.rm(file, { force: true });
}
