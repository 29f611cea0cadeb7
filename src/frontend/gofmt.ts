/**
 * The few Go formatting verbs BuildKit's history text is written with, so kiln's
 * `created_by` strings are byte-for-byte the same: %q of strings and []string, %v of
 * []string, time.Duration's String().
 */

/** Go's strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"': out += '\\"'; continue;
      case '\\': out += '\\\\'; continue;
      case '\x07': out += '\\a'; continue;
      case '\b': out += '\\b'; continue;
      case '\f': out += '\\f'; continue;
      case '\n': out += '\\n'; continue;
      case '\r': out += '\\r'; continue;
      case '\t': out += '\\t'; continue;
      case '\v': out += '\\v'; continue;
    }
    if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp >= 0x80 && cp <= 0x9f) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd';
    else out += ch;
  }
  return `${out}"`;
}

/** fmt's %q of a []string: ["a" "b"]. */
export function goQuoteList(items: string[]): string {
  return `[${items.map(goQuote).join(' ')}]`;
}

/** fmt's %v of a []string: [a b]. */
export function goList(items: string[]): string {
  return `[${items.join(' ')}]`;
}

function fraction(value: number, unit: number, digits: number): string {
  const whole = Math.floor(value / unit);
  const frac = String(value % unit).padStart(digits, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : String(whole);
}

/** Go's time.Duration.String() for a number of nanoseconds: 0s, 500ms, 1m30s, 1h0m0s. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  let u = Math.abs(Math.round(ns));
  if (u < 1e3) return `${sign}${u}ns`;
  if (u < 1e6) return `${sign}${fraction(u, 1e3, 3)}µs`;
  if (u < 1e9) return `${sign}${fraction(u, 1e6, 6)}ms`;
  const h = Math.floor(u / 3600e9);
  u -= h * 3600e9;
  const m = Math.floor(u / 60e9);
  u -= m * 60e9;
  return `${sign}${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${fraction(u, 1e9, 9)}s`;
}
