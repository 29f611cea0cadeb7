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

/** "pid starttime" identifying this process. */
export function ownerToken(): string {
  return `${process.pid} ${processStartTime(process.pid) ?? '0'}`;
}

/** True when the owner recorded by `ownerToken()` in `token` is still running. */
export function ownerAlive(token: string): boolean {
  const [pidStr, start] = token.trim().split(/\s+/);
  const pid = Number(pidStr);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processStartTime(pid);
  return now !== undefined && (start === undefined || start === '0' || now === start);
}
