/**
 * A real pseudo-terminal for CLI tests: a shell command run under util-linux `script`, whose
 * pty becomes the command's controlling terminal (stdin, stdout and stderr). What the test
 * writes is typed on that terminal; what the command prints comes back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { kilnBin } from '../helpers.js';

export interface Pty {
  child: ChildProcess;
  /** What came out of the terminal so far. */
  output(): string;
  /** Types `text` on the terminal. */
  type(text: string): void;
  /** Resolves once the output matches (rejects after timeoutMs, or when the command ended without it). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  /** The command's exit code (script -e passes it on; 128+N when killed by signal N). */
  exited: Promise<number>;
  /** Kills the script process if it still runs. */
  stop(): Promise<void>;
}

/** Single-quotes a word for sh. */
export function shq(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `node kiln.js --root ROOT ARGS...`, quoted for sh. */
export function kilnCommand(root: string, args: string[]): string {
  return [process.execPath, kilnBin, '--root', root, ...args].map(shq).join(' ');
}

export function inPty(command: string, env: Record<string, string> = {}): Pty {
  const child = spawn('script', ['-qefc', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (c: Buffer): void => {
    out += c.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<number>((resolve) =>
    child.on('close', (code, signal) => {
      for (const w of waiters.splice(0)) w();
      resolve(code ?? 128 + (signal ? 9 : 0));
    }),
  );
  let over = false;
  void exited.then(() => (over = true));
  return {
    child,
    output: () => out,
    type: (text) => child.stdin?.write(text),
    exited,
    waitFor(re, timeoutMs = 60_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${JSON.stringify(out)}`)), timeoutMs);
        const check = (): void => {
          if (re.test(out)) {
            clearTimeout(timer);
            resolve();
          } else if (over) {
            clearTimeout(timer);
            reject(new Error(`the command ended before ${re}: ${JSON.stringify(out)}`));
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The terminal device (/dev/pts/N) a process has as its stdin. */
export function terminalOf(pid: number): string {
  return readlinkSync(`/proc/${pid}/fd/0`);
}

/** The pids of a process's children. */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}
