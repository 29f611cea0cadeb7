/**
 * Which process owns a lock, a lease, a mount or a container: "pid starttime", so a
 * reused pid does not look like the owner still running.
 */
import { readFileSync } from 'node:fs';

/** Process start time (clock ticks since boot) from /proc, or undefined when the process is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may contain spaces and parentheses: fields start after the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]; // field 22 overall
  } catch {
    return undefined;
  }
}

/** "pid starttime" identifying process `pid` (a helper kiln started and records, say). */
export function processToken(pid: number): string {
  return `${pid} ${processStartTime(pid) ?? '0'}`;
}

/** "pid starttime" identifying this process. */
export function ownerToken(): string {
  return processToken(process.pid);
}

/**
 * Kills (SIGKILL) the process a `processToken` names if that very process still runs: its
 * start time must match, and an unknown one never does, so a reused pid is never killed
 * (stricter than `ownerAlive`, which errs towards "alive"). True when the signal was sent.
 */
export function killRecorded(token: string): boolean {
  const [pidText, start] = token.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || start === undefined || processStartTime(pid) !== start) return false;
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false; // gone meanwhile
  }
}

/** True when the owner recorded by `ownerToken()` in `token` is still running. */
export function ownerAlive(token: string): boolean {
  const [pidStr, start] = token.trim().split(/\s+/);
  const pid = Number(pidStr);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processStartTime(pid);
  return now !== undefined && (start === undefined || start === '0' || now === start);
}
