// Daemons the tests start (dockerd, when none was running) are recorded here, one
// "pid starttime name" line each, in the file named by KILN_TEST_DAEMONS, so that
// scripts/run-tests.mjs stops them when the suite ends, fails or is interrupted. A process
// is stopped only if its pid still has the recorded start time: a pid reused by another
// process, or a daemon that was already running before the tests, is never touched.
import { appendFileSync, readFileSync } from 'node:fs';

/** Start time of a process (clock ticks since boot, /proc/PID/stat field 22), or undefined. */
export function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Records a daemon the tests started (no-op outside run-tests.mjs). */
export function recordDaemon(pid, name, file = process.env.KILN_TEST_DAEMONS) {
  const start = startTime(pid);
  if (!file || start === undefined) return false;
  appendFileSync(file, `${pid} ${start} ${name}\n`);
  return true;
}

function alive(pid, start) {
  return startTime(pid) === start;
}

/**
 * Stops every daemon recorded in `file`: SIGTERM, up to `graceMs` to exit, then SIGKILL.
 * Synchronous (it also runs from signal handlers). Returns the names it stopped.
 */
export function stopRecordedDaemons(file, graceMs = 20_000) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const stopped = [];
  for (const line of text.split('\n')) {
    const [pidText, start, name] = line.split(' ');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 1 || !start || !alive(pid, start)) continue;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      continue;
    }
    const deadline = Date.now() + graceMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (alive(pid, start) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 100);
    if (alive(pid, start)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    stopped.push(name ?? String(pid));
  }
  return stopped;
}
