/**
 * Container names (`kiln run --name NAME`): unique among the containers running on a kiln
 * root, across processes. A name is held as an inter-process lock (oci/lock.ts) for as long as
 * its container runs, so everything that takes locks away takes names away too: the run's end,
 * a signal (main.ts releases held locks), and after kill -9 the next command's sweep of dead
 * owners' locks (lifecycle.ts) or the next claim, which breaks a lock whose owner is gone.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { hasCode, KilnError } from './errors.js';
import { registerProcess } from './lifecycle.js';
import { withFileLock } from './oci/lock.js';
import { kilnPaths } from './paths.js';

/** Docker's rule for container names (and short enough for a file name). */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,199}$/;

/** The names this process's containers hold (the lock queues callers within one process instead of refusing them). */
const mine = new Set<string>();

export function validateContainerName(name: string): void {
  if (!NAME.test(name)) {
    throw new KilnError(`invalid container name ${JSON.stringify(name)}: use 2 to 200 of a-z A-Z 0-9 _ . - and begin with a letter or digit`, {
      code: 'invalid',
    });
  }
}

/** The lock file holding a container name on the root. */
export function containerNameLock(root: string, name: string): string {
  return path.join(kilnPaths(root).locks, `container-name-${name}.lock`);
}

/**
 * The holder of a name lock ("pid\nhost\nnonce\nstart\nsince\ncommand", see oci/lock.ts) by its
 * pid and since when: not its command line, which may hold values given with -e.
 */
function describeHolder(content: string): string {
  const [pid, , , , since] = content.split('\n');
  return /^\d+$/.test(pid ?? '') ? `kiln process ${pid}${since ? ` since ${since}` : ''}` : 'a process that is just taking it';
}

function inUse(name: string, by: string): KilnError {
  return new KilnError(`the container name "${name}" is already in use by a running container (${by})`, {
    hint: 'choose another --name, or stop that container first',
    code: 'conflict',
  });
}

/** Runs `fn` holding `name` on the root; a name already held by a live process is a conflict error. */
export async function withContainerName<T>(root: string, name: string, fn: () => Promise<T>): Promise<T> {
  validateContainerName(name);
  const key = `${path.resolve(root)}\0${name}`;
  if (mine.has(key)) throw inUse(name, `started by this process, pid ${process.pid}`);
  // registered before the lock is taken: after kill -9 the next command sweeps this process's locks
  registerProcess(root);
  const lock = containerNameLock(root, name);
  mine.add(key);
  let holding = false;
  try {
    return await withFileLock(
      lock,
      () => {
        holding = true;
        return fn();
      },
      { timeoutMs: 0, what: `the container name "${name}"` },
    );
  } catch (e) {
    // not taken: a live process holds it (a dead one's lock is broken, and taken)
    if (!holding && hasCode(e, 'conflict')) {
      let holder = 'a process that is just taking it';
      try {
        holder = describeHolder(readFileSync(lock, 'utf8'));
      } catch {
        // released meanwhile
      }
      throw inUse(name, holder);
    }
    throw e;
  } finally {
    mine.delete(key);
  }
}
