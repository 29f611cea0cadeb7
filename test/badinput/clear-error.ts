/** The check every bad-input case makes of kiln's stderr. */
import assert from 'node:assert/strict';
import type { CliResult } from '../helpers.js';

/** What no error a user sees may contain. */
const FORBIDDEN: Array<[RegExp, string]> = [
  [/^\s+at /m, 'a stack trace'],
  [/\b(ENOENT|EACCES|EPERM|EROFS|EISDIR|ENOTDIR|ENAMETOOLONG|EEXIST|EMFILE|EIO|ELOOP)\b|ENOSPC:|errno/, 'a raw errno code'],
  [/internal error/i, '"internal error"'],
  [/^(Type|Range|Syntax|Reference)?Error:|\nError:|\[ERR_[A-Z_]+\]/, 'an uncaught node error'],
  [/unexpected end of (file|data)|incorrect header check|Invalid regular expression|Unterminated character class|Z_(BUF|DATA)_ERROR/i, 'a zlib, tar or regex message'],
];

/** A non-zero exit with an error that names what and where (`where`), a hint, and nothing raw. */
export function assertClearError(r: CliResult, where: RegExp, label: string): void {
  assert.notEqual(r.code, 0, `${label}: expected a failure, got exit 0\n${r.stderr}`);
  assert.match(r.stderr, /^error: /m, `${label}: no "error:" line\n${r.stderr}`);
  assert.match(r.stderr, where, `${label}: stderr does not name what/where\n${r.stderr}`);
  assert.match(r.stderr, /\nhint: \S/, `${label}: no hint\n${r.stderr}`);
  for (const [re, what] of FORBIDDEN) assert.doesNotMatch(r.stderr, re, `${label}: stderr has ${what}\n${r.stderr}`);
}
