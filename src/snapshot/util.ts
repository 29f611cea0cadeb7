import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export interface CommandResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs a host tool, feeding `input` to its stdin; never throws for a non-zero exit. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { input?: Buffer | string; cwd?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString('utf8').trim(),
      });
    });
    child.stdin.on('error', () => {
      /* the tool may exit before reading all input; its exit code tells */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Escapes a path the way getfattr prints it (and setfattr --restore reads it): octal for odd bytes. */
export function escapeAttrPath(p: string): string {
  const bytes = Buffer.from(p, 'utf8');
  let out = '';
  for (const b of bytes) {
    if (b <= 0x20 || b >= 0x7f || b === 0x5c /* \ */ || b === 0x3d /* = */) {
      out += '\\' + b.toString(8).padStart(3, '0');
    } else {
      out += String.fromCharCode(b);
    }
  }
  return out;
}

/**
 * A `setfattr --restore` dump setting each file's attributes (values in base64, so binary
 * ones such as security.capability keep their bytes); paths as given (relative ones are
 * taken from setfattr's working directory).
 */
export function xattrRestoreDump(files: Iterable<readonly [string, Record<string, string | Buffer>]>): string {
  let dump = '';
  for (const [file, attrs] of files) {
    dump += `# file: ${escapeAttrPath(file)}\n`;
    for (const [k, v] of Object.entries(attrs)) dump += `${k}=0s${(typeof v === 'string' ? Buffer.from(v, 'utf8') : v).toString('base64')}\n`;
    dump += '\n';
  }
  return dump;
}

/** Reverses getfattr's octal escaping of a path, returning the raw bytes as a UTF-8 string. */
export function unescapeAttrPath(s: string): string {
  const bytes: number[] = [];
  const src = Buffer.from(s, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const b = src[i];
    if (b === 0x5c && i + 3 < src.length + 0 && /^[0-7]{3}$/.test(src.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(src.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export { ownerAlive, ownerToken, processStartTime } from '../owner.js';

/** The mount points listed in /proc/self/mountinfo (unescaped). */
export async function mountPoints(): Promise<Set<string>> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const set = new Set<string>();
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 4) set.add(fields[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return set;
}

export async function isMountPoint(p: string): Promise<boolean> {
  return (await mountPoints()).has(path.resolve(p));
}
