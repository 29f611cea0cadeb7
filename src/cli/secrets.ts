/** `kiln build --secret`: parsed as buildx does, each value read into memory once. */
import { promises as fs } from 'node:fs';
import { errnoCode, errorCode, KilnError } from '../errors.js';
import { splitCsvFields } from '../csv.js';

const USAGE = 'use --secret id=ID,src=PATH or --secret id=ID,env=VAR';

/**
 * One `--secret` value: comma-separated key=value fields (a field may be double-quoted, to hold
 * a comma); each field is cut at its first `=` only, so a path may hold `=`.
 */
export function parseSecretFlag(value: string): { id: string; src?: string; env?: string } {
  const fields = splitCsvFields(value);
  let id: string | undefined;
  let src: string | undefined;
  let env: string | undefined;
  let type: string | undefined;
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw new KilnError(`invalid --secret "${value}": field "${field}" must be a key=value pair`, { code: 'invalid', hint: USAGE });
    const key = field.slice(0, eq).toLowerCase();
    const val = field.slice(eq + 1);
    if (key === 'id') id = val;
    else if (key === 'src' || key === 'source') src = val;
    else if (key === 'env') env = val;
    else if (key === 'type') {
      if (val !== 'file' && val !== 'env') throw new KilnError(`invalid --secret "${value}": unsupported secret type "${val}"`, { code: 'invalid', hint: 'use type=file or type=env' });
      type = val;
    } else throw new KilnError(`invalid --secret "${value}": unexpected key "${key}"`, { code: 'invalid', hint: USAGE });
  }
  if (type === 'env' && env === undefined) {
    env = src;
    src = undefined;
  }
  if (src !== undefined && env !== undefined) throw new KilnError(`invalid --secret "${value}": give src= or env=, not both`, { code: 'invalid', hint: USAGE });
  // as buildx: the id defaults to the variable's name, or the file's name
  id ??= env ?? (src === undefined ? undefined : src.split('/').filter(Boolean).pop());
  if (!id) throw new KilnError(`invalid --secret "${value}": no id`, { code: 'invalid', hint: USAGE });
  if (src === undefined && env === undefined) {
    // a bare id: the environment variable of that name when set, else a file of that name
    if (process.env[id] !== undefined) env = id;
    else src = id;
  }
  return { id, src, env };
}

/** Reads every `--secret` into memory: a clear error names the secret and its source when it cannot. */
export async function loadSecrets(values: string[]): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const v of values) {
    const s = parseSecretFlag(v);
    if (s.env !== undefined) {
      const value = process.env[s.env];
      if (value === undefined) throw new KilnError(`secret ${s.id}: environment variable ${s.env} is not set`, { code: 'not-found', hint: `export ${s.env}, or pass the secret from a file with --secret id=${s.id},src=PATH` });
      out[s.id] = Buffer.from(value, 'utf8');
      continue;
    }
    const src = s.src!;
    const st = await fs.stat(src).catch((e: NodeJS.ErrnoException) => e);
    if (st instanceof Error) {
      const why = st.code === 'ENOENT' ? 'no such file' : st.code === 'EACCES' ? 'permission denied' : st.message;
      throw new KilnError(`secret ${s.id}: cannot read ${src}: ${why}`, { code: errnoCode(st.code ?? ''), hint: `pass an existing file: --secret id=${s.id},src=PATH` });
    }
    if (!st.isFile()) throw new KilnError(`secret ${s.id}: ${src} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`, { code: 'invalid', hint: 'a secret is one file; pass its path' });
    try {
      out[s.id] = await fs.readFile(src);
    } catch (e) {
      throw new KilnError(`secret ${s.id}: cannot read ${src}: ${(e as Error).message}`, { code: errorCode(e) ?? 'failed', cause: e });
    }
  }
  return out;
}
