/**
 * The text databases of each ecosystem, parsed into packages: dpkg's status file (and
 * distroless's status.d/), apk's installed database, npm's package.json and package-lock.json,
 * Python's core metadata (METADATA, PKG-INFO), /etc/os-release. Pure functions over file
 * contents; catalog.ts decides which files of the image are read.
 */
import type { Ecosystem, OsRelease } from './types.js';
import { normaliseLicense } from './licenses.js';

/** A package as one file declares it; catalog.ts adds its location and purl. */
export interface Found {
  name: string;
  version: string;
  ecosystem: Ecosystem;
  licenses?: string[];
  sourceName?: string;
  sourceVersion?: string;
  arch?: string;
  goVersion?: string;
  groupId?: string;
  /** The path inside an archive (a jar nested in a war), appended to the file's path with '!'. */
  inner?: string;
}

/** RFC 822-style stanzas (dpkg, PKG-INFO headers): continuation lines start with a space or tab. */
function stanzas(text: string): Array<Map<string, string>> {
  const out: Array<Map<string, string>> = [];
  let cur = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (cur.size > 0) out.push(cur);
      cur = new Map();
      last = undefined;
      continue;
    }
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      cur.set(last, `${cur.get(last)}\n${line.slice(1)}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim();
    cur.set(last, line.slice(colon + 1).trim());
  }
  if (cur.size > 0) out.push(cur);
  return out;
}

/**
 * dpkg's status file (or one status.d/ entry): the packages whose Status says installed
 * ("install ok installed", "hold ok installed"); a stanza without Status (distroless) counts
 * as installed. Source "name (version)" gives the source package and its version.
 */
export function parseDpkgStatus(text: string): Found[] {
  const out: Found[] = [];
  for (const s of stanzas(text)) {
    const name = s.get('Package');
    const version = s.get('Version');
    if (!name || !version) continue;
    const status = s.get('Status');
    if (status !== undefined && status.split(/\s+/)[2] !== 'installed') continue;
    const f: Found = { name, version, ecosystem: 'deb' };
    const arch = s.get('Architecture');
    if (arch) f.arch = arch;
    const source = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(s.get('Source') ?? '');
    if (source && (source[1] !== name || (source[2] && source[2] !== version))) {
      f.sourceName = source[1];
      f.sourceVersion = source[2] ?? version;
    }
    out.push(f);
  }
  return out;
}

/** apk's installed database: P name, V version, A arch, L licence, o origin (the source package). */
export function parseApkInstalled(text: string): Found[] {
  const out: Found[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      const m = /^([A-Za-z]):(.*)$/.exec(line);
      if (m && !fields.has(m[1])) fields.set(m[1], m[2]);
    }
    const name = fields.get('P');
    const version = fields.get('V');
    if (!name || !version) continue;
    const f: Found = { name, version, ecosystem: 'apk' };
    if (fields.get('A')) f.arch = fields.get('A');
    const license = fields.get('L');
    if (license) f.licenses = [normaliseLicense(license)];
    const origin = fields.get('o');
    if (origin && origin !== name) {
      f.sourceName = origin;
      f.sourceVersion = version;
    }
    out.push(f);
  }
  return out;
}

/** npm's license field: "MIT", { type: "MIT" }, or the old `licenses: [{ type }]`. */
function npmLicenses(pkg: Record<string, unknown>): string[] {
  const raw: unknown[] = [];
  if (pkg.license !== undefined) raw.push(pkg.license);
  if (Array.isArray(pkg.licenses)) raw.push(...pkg.licenses);
  const out: string[] = [];
  for (const l of raw) {
    const text = typeof l === 'string' ? l : l && typeof l === 'object' && typeof (l as { type?: unknown }).type === 'string' ? (l as { type: string }).type : undefined;
    if (text && text.trim() !== '') out.push(normaliseLicense(text));
  }
  return [...new Set(out)];
}

function parseJSON(text: string): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch {
    return undefined;
  }
}

/** An installed npm package's package.json (name and version required). */
export function parseNpmPackageJson(text: string): Found[] {
  const pkg = parseJSON(text);
  if (!pkg || typeof pkg !== 'object') return [];
  const { name, version } = pkg as { name?: unknown; version?: unknown };
  if (typeof name !== 'string' || typeof version !== 'string' || name === '' || version === '') return [];
  const licenses = npmLicenses(pkg as Record<string, unknown>);
  return [{ name, version, ecosystem: 'npm', ...(licenses.length ? { licenses } : {}) }];
}

/**
 * package-lock.json (lockfileVersion 2 and 3: `packages`; 1: nested `dependencies`): the
 * packages it pins, without the root project and without links (workspaces).
 */
export function parseNpmLock(text: string): Found[] {
  const lock = parseJSON(text) as { packages?: Record<string, Record<string, unknown>>; dependencies?: Record<string, Record<string, unknown>> } | undefined;
  if (!lock || typeof lock !== 'object') return [];
  const out: Found[] = [];
  if (lock.packages && typeof lock.packages === 'object') {
    for (const [key, entry] of Object.entries(lock.packages)) {
      const at = key.lastIndexOf('node_modules/');
      // the root project, workspace sources and links to them are not installed packages
      if (at < 0 || !entry || typeof entry !== 'object' || entry.link) continue;
      const name = typeof entry.name === 'string' ? entry.name : key.slice(at + 'node_modules/'.length);
      if (!name || typeof entry.version !== 'string') continue;
      const licenses = npmLicenses(entry);
      out.push({ name, version: entry.version, ecosystem: 'npm', ...(licenses.length ? { licenses } : {}) });
    }
    return out;
  }
  const walkDeps = (deps: Record<string, Record<string, unknown>> | undefined): void => {
    for (const [name, entry] of Object.entries(deps ?? {})) {
      if (!entry || typeof entry !== 'object') continue;
      if (typeof entry.version === 'string' && !entry.version.startsWith('file:')) out.push({ name, version: entry.version, ecosystem: 'npm' });
      walkDeps(entry.dependencies as Record<string, Record<string, unknown>> | undefined);
    }
  };
  walkDeps(lock.dependencies);
  return out;
}

/** Trove classifiers that name one licence for certain. */
const CLASSIFIERS: Record<string, string> = {
  'MIT License': 'MIT',
  'Apache Software License': 'Apache-2.0',
  'BSD License': 'BSD-3-Clause',
  'ISC License (ISCL)': 'ISC',
  'Mozilla Public License 2.0 (MPL 2.0)': 'MPL-2.0',
  'GNU General Public License v2 (GPLv2)': 'GPL-2.0-only',
  'GNU General Public License v2 or later (GPLv2+)': 'GPL-2.0-or-later',
  'GNU General Public License v3 (GPLv3)': 'GPL-3.0-only',
  'GNU General Public License v3 or later (GPLv3+)': 'GPL-3.0-or-later',
  'GNU Lesser General Public License v2 or later (LGPLv2+)': 'LGPL-2.0-or-later',
  'GNU Lesser General Public License v3 (LGPLv3)': 'LGPL-3.0-only',
  'GNU Lesser General Public License v3 or later (LGPLv3+)': 'LGPL-3.0-or-later',
  'Python Software Foundation License': 'PSF-2.0',
  'The Unlicense (Unlicense)': 'Unlicense',
  'Zope Public License': 'ZPL-2.1',
};

/**
 * Python core metadata (a wheel's METADATA, an egg's PKG-INFO): Name and Version; licences
 * from License-Expression, else License (when it is short: some projects paste the whole text),
 * else the License :: classifiers.
 */
export function parsePythonMetadata(text: string): Found[] {
  const head = text.split(/\r?\n\r?\n/, 1)[0];
  const fields = new Map<string, string[]>();
  for (const s of stanzas(head)) for (const [k, v] of s) fields.set(k, [...(fields.get(k) ?? []), v]);
  // stanzas() keeps one value per key: read the repeated ones (Classifier) from the lines
  const classifiers = [...head.matchAll(/^Classifier:\s*License :: (?:OSI Approved :: )?(.+?)\s*$/gm)].map((m) => m[1]);
  const name = fields.get('Name')?.[0];
  const version = fields.get('Version')?.[0];
  if (!name || !version) return [];
  const licenses: string[] = [];
  const expression = fields.get('License-Expression')?.[0];
  const license = fields.get('License')?.[0];
  if (expression) licenses.push(normaliseLicense(expression));
  else if (license && license !== 'UNKNOWN' && !license.includes('\n') && license.length <= 80) licenses.push(normaliseLicense(license));
  else for (const c of classifiers) if (CLASSIFIERS[c]) licenses.push(CLASSIFIERS[c]);
  return [{ name, version, ecosystem: 'pypi', ...(licenses.length ? { licenses: [...new Set(licenses)] } : {}) }];
}

/** /etc/os-release: KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): OsRelease | undefined {
  const v = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2].trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    v.set(m[1], value);
  }
  const id = v.get('ID');
  if (!id) return undefined;
  const os: OsRelease = { id };
  if (v.get('VERSION_ID')) os.versionId = v.get('VERSION_ID');
  if (v.get('VERSION_CODENAME')) os.versionCodename = v.get('VERSION_CODENAME');
  if (v.get('PRETTY_NAME')) os.prettyName = v.get('PRETTY_NAME');
  return os;
}
