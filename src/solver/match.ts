/** True when a COPY source uses wildcards (Go filepath.Match syntax). */
export function hasWildcard(p: string): boolean {
  return /[*?[]/.test(p);
}

/**
 * Go's filepath.Match on '/'-separated paths: `*` and `?` never cross a '/',
 * `[...]` classes with `^`/`!` negation and ranges, `\` escapes.
 */
export function matchPath(pattern: string, name: string): boolean {
  return new RegExp(`^${globToRegex(pattern)}$`).test(name);
}

function globToRegex(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) out += escapeRe(pattern[++i]);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      let neg = false;
      if (body.startsWith('^') || body.startsWith('!')) {
        neg = true;
        body = body.slice(1);
      }
      out += `[${neg ? '^/' : ''}${body.replace(/[\]\\]/g, (m) => `\\${m}`)}]`;
      i = end;
    } else out += escapeRe(c);
  }
  return out;
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
