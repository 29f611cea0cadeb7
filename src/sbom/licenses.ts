/**
 * Licence names as packages declare them → SPDX identifiers and expressions, conservatively:
 * a name is mapped only when its meaning is certain (an SPDX id in any case, a Debian DEP-5
 * short name with a known SPDX twin); anything else is kept as the text declared, and the
 * SPDX writer turns it into a LicenseRef.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ids = require('spdx-license-ids') as string[];
const parseExpression = require('spdx-expression-parse') as (s: string) => unknown;

/** SPDX ids (current, not deprecated) by their lower-case form. */
const byLower = new Map(ids.map((id) => [id.toLowerCase(), id]));

/** The GNU family: a Debian short name without "+" means "only", with "+" "or later". */
const GNU = /^(A?GPL|LGPL|GFDL)-(\d(?:\.\d)?)(\+)?$/i;

/** DEP-5 short names (and common spellings) whose SPDX id is not the same word. */
const ALIASES: Record<string, string> = {
  expat: 'MIT',
  'mit/x11': 'MIT',
  'apache-2': 'Apache-2.0',
  'apache 2.0': 'Apache-2.0',
  'apache license 2.0': 'Apache-2.0',
  'apache software license': 'Apache-2.0',
  'psf-2': 'PSF-2.0',
  'python-2': 'Python-2.0',
  'zpl-2.1': 'ZPL-2.1',
  'mpl-2': 'MPL-2.0',
  'bsd-2-clause': 'BSD-2-Clause',
  'bsd-3-clause': 'BSD-3-Clause',
  'bsd-4-clause': 'BSD-4-Clause',
  'cc0': 'CC0-1.0',
  'isc license': 'ISC',
  'mit license': 'MIT',
  'the mit license': 'MIT',
  'bsd license': 'BSD-3-Clause',
  'new bsd license': 'BSD-3-Clause',
  'simplified bsd license': 'BSD-2-Clause',
};

/** One licence name → its SPDX id, or undefined when it has none for certain. */
export function spdxId(name: string): string | undefined {
  const n = name.trim();
  const gnu = GNU.exec(n);
  if (gnu) {
    const version = gnu[2].includes('.') ? gnu[2] : `${gnu[2]}.0`;
    const id = `${gnu[1].toUpperCase()}-${version}-${gnu[3] ? 'or-later' : 'only'}`;
    return byLower.get(id.toLowerCase());
  }
  const lower = n.toLowerCase();
  return byLower.get(lower) ?? ALIASES[lower];
}

/** Whether `s` parses as an SPDX licence expression. */
export function isSpdxExpression(s: string): boolean {
  try {
    parseExpression(s);
    return true;
  } catch {
    return false;
  }
}

/** SPDX licence exception ids by their lower-case form. */
const exceptions = new Map((require('spdx-exceptions') as string[]).map((id) => [id.toLowerCase(), id]));

/** One licence name, possibly with DEP-5's "with X exception" → SPDX, or undefined. */
function mapTerm(term: string): string | undefined {
  const w = /^(.*?)\s+with\s+(\S+?)(?:\s+exception)?$/i.exec(term);
  if (w) {
    const id = mapTerm(w[1]);
    const exception = exceptions.get(w[2].toLowerCase()) ?? exceptions.get(`${w[2].toLowerCase()}-exception`);
    return id && exception && !/\s/.test(id) ? `${id} WITH ${exception}` : undefined;
  }
  return spdxId(term) ?? (isSpdxExpression(term) && !/\+$/.test(term) && !deprecated.has(term.toLowerCase()) ? term : undefined);
}

/** Deprecated SPDX ids (GPL-2.0, LGPL-2.1, GPL-2.0+): valid to the parser, mapped to their current names instead. */
const deprecated = new Set((require('spdx-license-ids/deprecated.json') as string[]).map((id) => id.toLowerCase()));

/** One part of an expression without commas: names joined by and/or, with parentheses. */
function mapSimple(text: string): string | undefined {
  const parts = text.split(/\s+(and|or)\s+|\s*([()])\s*/i).filter((p) => p !== undefined && p !== '');
  const out: string[] = [];
  for (const part of parts) {
    if (/^(and|or)$/i.test(part)) out.push(part.toUpperCase());
    else if (part === '(' || part === ')') out.push(part);
    else {
      const id = mapTerm(part);
      if (!id) return undefined;
      out.push(id);
    }
  }
  return out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');
}

/**
 * A declared licence (a name or an expression with and/or, as in DEP-5 `License:` lines or an
 * npm `license` field) → an SPDX expression when every name in it maps, else the text as is.
 * DEP-5's comma binds loosest: "A or B, and C" is "(A OR B) AND C".
 */
export function normaliseLicense(declared: string): string {
  const text = declared.trim().replace(/\s+/g, ' ');
  if (text === '') return text;
  const groups = text.split(/\s*,\s*(and|or)\s+/i);
  const out: string[] = [];
  for (let i = 0; i < groups.length; i++) {
    if (i % 2 === 1) {
      out.push(groups[i].toUpperCase());
      continue;
    }
    const mapped = mapSimple(groups[i]);
    if (!mapped) return text;
    out.push(groups.length > 1 && /\s(AND|OR)\s/.test(mapped) ? `(${mapped})` : mapped);
  }
  const expr = out.join(' ');
  return isSpdxExpression(expr) ? expr : text;
}

/** Debian: a copyright file → its licences (DEP-5 `License:` short names, or a conservative guess). */
export function debianCopyrightLicenses(text: string): string[] {
  const found = new Set<string>();
  if (/^(Format|Format-Specification):\s*\S*copyright-format|^Format:\s*https?:\/\/(www\.)?debian\.org\/doc\/packaging-manuals\/copyright-format/im.test(text)) {
    for (const m of text.matchAll(/^License:[ \t]*([^\n]*\S)[ \t]*$/gm)) found.add(normaliseLicense(m[1]));
  }
  if (found.size === 0) {
    // not machine-readable: only the licence texts it points at by name, with a version (GPL alone is ambiguous)
    for (const m of text.matchAll(/\/usr\/share\/common-licenses\/([A-Za-z0-9.+-]*\d[A-Za-z0-9.+]*)/g)) {
      const name = m[1].replace(/\.$/, '');
      const later = GNU.test(name) && !name.endsWith('+') && /any later version/i.test(text);
      const id = spdxId(later ? `${name}+` : name);
      if (id) found.add(id);
    }
  }
  return [...found].sort();
}
