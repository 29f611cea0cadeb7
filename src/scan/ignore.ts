/**
 * Trivy's ignore file (`.trivyignore`): one advisory id per line, `#` starts a comment, blank
 * lines are nothing; an id may be followed by `exp:YYYY-MM-DD`, after which (from 00:00 UTC on
 * that day) the entry no longer ignores. An id ignores a finding whose advisory id or any alias
 * is that id.
 */
import { promises as fs } from 'node:fs';
import { KilnError, fromErrno, isErrnoError } from '../errors.js';

export interface IgnoreEntry {
  id: string;
  /** The expiry date as written (YYYY-MM-DD). */
  expires?: string;
  /** The expiry as epoch milliseconds (00:00 UTC of that day). */
  expiresAt?: number;
  line: number;
}

export interface IgnoreList {
  source: string;
  entries: IgnoreEntry[];
}

export function parseIgnoreFile(text: string, source: string): IgnoreList {
  const entries: IgnoreEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const [id, ...rest] = line.split(/\s+/);
    const entry: IgnoreEntry = { id, line: i + 1 };
    for (const field of rest) {
      const m = /^exp:(\d{4})-(\d{2})-(\d{2})$/.exec(field);
      const at = m === null ? NaN : Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
      const valid = m !== null && new Date(at).getUTCDate() === Number(m[3]);
      if (!valid) throw new KilnError(`${source}:${i + 1}: "${field}" is not an expiry`, { code: 'invalid', hint: 'write an advisory id per line, optionally followed by exp:YYYY-MM-DD (a real date)' });
      entry.expires = field.slice(4);
      entry.expiresAt = at;
    }
    entries.push(entry);
  });
  return { source, entries };
}

export async function readIgnoreFile(file: string): Promise<IgnoreList> {
  try {
    return parseIgnoreFile(await fs.readFile(file, 'utf8'), file);
  } catch (e) {
    if (isErrnoError(e)) {
      if (e.code === 'ENOENT') throw new KilnError(`ignore file ${file} does not exist`, { code: 'not-found' });
      throw fromErrno(e);
    }
    throw e;
  }
}

/** The entry that ignores an advisory with these ids now, if any (expired entries ignore nothing). */
export function ignoredBy(list: IgnoreList | undefined, ids: string[], now = Date.now()): IgnoreEntry | undefined {
  if (list === undefined) return undefined;
  return list.entries.find((e) => ids.includes(e.id) && (e.expiresAt === undefined || now < e.expiresAt));
}
