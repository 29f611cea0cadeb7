/** Option helpers shared by the commands. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeErrno, errnoCode, KilnError } from '../errors.js';

/** commander accumulator for repeatable options. */
export function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

/** K=V pairs; a bare K takes its value from the environment, as docker does. */
export function parseKeyValues(items: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    if (i === 0) throw new KilnError(`invalid ${what} "${item}": expected KEY=VALUE`, { code: 'invalid', hint: `write ${what} KEY=VALUE, or ${what} KEY to take the value from the environment` });
    if (i === -1) {
      const v = process.env[item];
      if (v !== undefined) out[item] = v;
      continue;
    }
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Checks, before any work, that `file` (given with `flag`) can be written: its directory
 * exists and it is not a directory itself. A KilnError saying which flag and what to do.
 */
export async function checkOutputFile(file: string, flag: string): Promise<void> {
  if (file === '') throw new KilnError(`${flag} needs a file name`, { code: 'invalid', hint: `write ${flag} FILE` });
  const dir = path.dirname(path.resolve(file));
  const dst = await fs.stat(dir).catch(() => undefined);
  if (!dst?.isDirectory()) throw new KilnError(`${flag} ${file}: the directory ${dir} does not exist`, { code: 'not-found', hint: `create it first (mkdir -p ${dir}), or name a file in an existing directory` });
  const st = await fs.stat(file).catch(() => undefined);
  if (st?.isDirectory()) throw new KilnError(`${flag} ${file}: it is a directory`, { code: 'invalid', hint: `name a file, e.g. ${flag} ${path.join(file, 'out')}` });
}

/** Writes a small result file named by `flag` (--iidfile, --metadata-file); a KilnError when it cannot. */
export async function writeOutputFile(file: string, data: string, flag: string): Promise<void> {
  await fs.writeFile(file, data).catch((e: NodeJS.ErrnoException) => {
    const { what, hint } = describeErrno(e);
    throw new KilnError(`cannot write ${flag} ${file}: ${what}`, { hint: hint ?? 'name a writable file', code: errnoCode(e.code ?? ''), cause: e });
  });
}
