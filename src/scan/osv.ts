/**
 * An advisory database in the OSV format (ossf/osv-schema), as osv.dev publishes it: one JSON
 * file per advisory, in a directory tree or a zip (the per-ecosystem `all.zip`). Loaded whole
 * into memory and indexed by (ecosystem, package name), so matching a catalogue is one map
 * look-up per package.
 *
 * A file that is not JSON or not an OSV record is skipped with a warning naming it, as
 * osv-scanner does with its offline databases (one bad record in a dump of 200 000 should not
 * stop a scan); a path that is neither a directory nor a readable zip, or a database with no
 * record at all, is an error. The checks here are structural (what matching reads); tests
 * validate every fixture against the official JSON schema.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { KilnError, fromErrno, isErrnoError } from '../errors.js';

export interface OsvEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}

export interface OsvRange {
  type: 'GIT' | 'SEMVER' | 'ECOSYSTEM' | string;
  repo?: string;
  events: OsvEvent[];
}

export interface OsvSeverity {
  type: string;
  score: string;
}

export interface OsvAffected {
  package: { ecosystem: string; name: string; purl?: string };
  severity?: OsvSeverity[] | null;
  ranges?: OsvRange[] | null;
  versions?: string[] | null;
  ecosystem_specific?: Record<string, unknown>;
  database_specific?: Record<string, unknown>;
}

export interface OsvRecord {
  schema_version?: string;
  id: string;
  modified: string;
  published?: string;
  withdrawn?: string;
  aliases?: string[] | null;
  related?: string[] | null;
  summary?: string;
  details?: string;
  severity?: OsvSeverity[] | null;
  affected?: OsvAffected[] | null;
  references?: Array<{ type: string; url: string }> | null;
  database_specific?: Record<string, unknown>;
}

/** One affected[] entry of a record, as the index returns it for a package. */
export interface AdvisoryEntry {
  record: OsvRecord;
  affected: OsvAffected;
}

/** PEP 503's normal form of a Python project name: lower case, runs of '-', '_', '.' as one '-'. */
export function normalizePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** The name as the index keys it: PyPI names normalised, everything else as written. */
function indexName(ecosystem: string, name: string): string {
  return ecosystem === 'PyPI' ? normalizePypiName(name) : name;
}

export class AdvisoryDb {
  private readonly index = new Map<string, AdvisoryEntry[]>();
  /** Every record loaded (withdrawn ones included: matching skips them). */
  readonly records: OsvRecord[] = [];
  /** Files skipped, with the reason: "path: reason". */
  readonly warnings: string[] = [];

  constructor(readonly source: string) {}

  add(record: OsvRecord): void {
    this.records.push(record);
    for (const affected of record.affected ?? []) {
      const key = `${affected.package.ecosystem}\0${indexName(affected.package.ecosystem.split(':')[0], affected.package.name)}`;
      let list = this.index.get(key);
      if (list === undefined) this.index.set(key, (list = []));
      list.push({ record, affected });
    }
  }

  /** The affected[] entries that name this package in this ecosystem ("Debian:12", "npm"). */
  lookup(ecosystem: string, name: string): AdvisoryEntry[] {
    return this.index.get(`${ecosystem}\0${indexName(ecosystem.split(':')[0], name)}`) ?? [];
  }

  /** The ecosystems the database has advisories for. */
  ecosystems(): string[] {
    return [...new Set([...this.index.keys()].map((k) => k.split('\0')[0]))].sort();
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): boolean => v === undefined || v === null || (Array.isArray(v) && v.every((s) => typeof s === 'string'));

/** What is wrong with a parsed record, as far as matching reads it; undefined when it is usable. */
export function osvProblem(v: unknown): string | undefined {
  if (!isObject(v)) return 'not a JSON object';
  if (typeof v.id !== 'string' || v.id === '') return 'no "id"';
  if (typeof v.modified !== 'string') return 'no "modified" time';
  if (v.withdrawn !== undefined && typeof v.withdrawn !== 'string') return '"withdrawn" is not a time';
  if (!isStringArray(v.aliases)) return '"aliases" is not a list of strings';
  for (const field of ['summary', 'details'] as const) if (v[field] !== undefined && typeof v[field] !== 'string') return `"${field}" is not a string`;
  const severityProblem = (s: unknown, where: string): string | undefined => {
    if (s === undefined || s === null) return undefined;
    if (!Array.isArray(s) || !s.every((x) => isObject(x) && typeof x.type === 'string' && typeof x.score === 'string')) return `${where}"severity" is not a list of {type, score}`;
    return undefined;
  };
  const sp = severityProblem(v.severity, '');
  if (sp) return sp;
  if (v.affected === undefined || v.affected === null) return undefined;
  if (!Array.isArray(v.affected)) return '"affected" is not a list';
  for (const [i, a] of v.affected.entries()) {
    const where = `affected[${i}]`;
    if (!isObject(a)) return `${where} is not an object`;
    if (!isObject(a.package) || typeof a.package.ecosystem !== 'string' || typeof a.package.name !== 'string') return `${where}.package needs "ecosystem" and "name"`;
    const asp = severityProblem(a.severity, `${where}.`);
    if (asp) return asp;
    if (!isStringArray(a.versions)) return `${where}.versions is not a list of strings`;
    if (a.ranges === undefined || a.ranges === null) continue;
    if (!Array.isArray(a.ranges)) return `${where}.ranges is not a list`;
    for (const [j, r] of a.ranges.entries()) {
      if (!isObject(r) || typeof r.type !== 'string' || !Array.isArray(r.events)) return `${where}.ranges[${j}] needs "type" and "events"`;
      for (const e of r.events) {
        if (!isObject(e)) return `${where}.ranges[${j}].events has a non-object`;
        const keys = Object.keys(e).filter((k) => ['introduced', 'fixed', 'last_affected', 'limit'].includes(k));
        if (keys.length !== 1 || typeof e[keys[0]] !== 'string') return `${where}.ranges[${j}].events: each event is one of introduced, fixed, last_affected, limit, with a version string`;
      }
    }
  }
  return undefined;
}

function addFile(db: AdvisoryDb, name: string, bytes: Uint8Array): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    db.warnings.push(`${name}: not valid JSON (${(e as Error).message})`);
    return;
  }
  const problem = osvProblem(parsed);
  if (problem !== undefined) {
    db.warnings.push(`${name}: not an OSV record: ${problem}`);
    return;
  }
  db.add(parsed as OsvRecord);
}

async function jsonFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.json'))
    .map((e) => path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort();
}

/**
 * Loads an OSV database from a directory (every *.json below it) or a zip file (every *.json
 * entry in it, as in osv.dev's `<ecosystem>/all.zip`).
 */
export async function loadAdvisoryDb(dirOrZip: string): Promise<AdvisoryDb> {
  const db = new AdvisoryDb(dirOrZip);
  let stat;
  try {
    stat = await fs.stat(dirOrZip);
  } catch (e) {
    if (isErrnoError(e) && e.code === 'ENOENT') throw new KilnError(`advisory database ${dirOrZip} does not exist`, { code: 'not-found', hint: 'pass --db a directory of OSV JSON files or a zip of them (osv.dev publishes one all.zip per ecosystem)' });
    throw isErrnoError(e) ? fromErrno(e) : e;
  }
  if (stat.isDirectory()) {
    const files = await jsonFiles(dirOrZip);
    for (let i = 0; i < files.length; i += 64) {
      const batch = files.slice(i, i + 64);
      const contents = await Promise.all(batch.map((f) => fs.readFile(f)));
      batch.forEach((f, k) => addFile(db, f, contents[k]));
    }
  } else {
    const bytes = await fs.readFile(dirOrZip);
    let entries: Record<string, Uint8Array>;
    try {
      entries = unzipSync(bytes, { filter: (f) => f.name.endsWith('.json') });
    } catch (e) {
      throw new KilnError(`advisory database ${dirOrZip} is neither a directory nor a readable zip file: ${(e as Error).message}`, { code: 'invalid', hint: 'pass --db a directory of OSV JSON files or a zip of them (osv.dev publishes one all.zip per ecosystem)' });
    }
    for (const name of Object.keys(entries).sort()) addFile(db, `${dirOrZip}!${name}`, entries[name]);
  }
  if (db.records.length === 0) {
    const why = db.warnings.length > 0 ? `: every file was skipped (${db.warnings[0]}${db.warnings.length > 1 ? `, and ${db.warnings.length - 1} more` : ''})` : ': it has no .json file';
    throw new KilnError(`advisory database ${dirOrZip} holds no OSV record${why}`, { code: 'invalid', hint: 'pass --db a directory of OSV JSON files or a zip of them' });
  }
  return db;
}
