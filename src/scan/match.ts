/**
 * Matching a catalogue against an OSV database. Each package is looked up under its OSV
 * ecosystem and name (Debian and Alpine by their source package, whose names the distributions'
 * advisories use), and each affected[] entry is evaluated as the OSV schema defines: the
 * `versions` list, then every ECOSYSTEM and SEMVER range (GIT ranges name commits, which an
 * installed package does not have).
 */
import semver from 'semver';
import type { Catalog, CatalogPackage, Ecosystem, OsRelease, PackageLocation } from '../sbom/types.js';
import { ignoredBy, type IgnoreList } from './ignore.js';
import type { AdvisoryDb, OsvAffected, OsvEvent, OsvRange, OsvRecord } from './osv.js';
import { advisorySeverity, severityRank, type Severity } from './severity.js';
import { compareVersions } from './versions/index.js';

export interface Finding {
  /** The advisory's id (DSA-…, GHSA-…, CVE-…). */
  id: string;
  /** Other ids of the same vulnerability (the record's aliases). */
  aliases: string[];
  package: CatalogPackage;
  /** The version matched: the source package's for OS packages that name one, else the package's. */
  installed: string;
  /** The lowest fixed version above the installed one, when the advisory gives one. */
  fixed?: string;
  severity: Severity;
  /** The CVSS base score the severity came from. */
  score?: number;
  summary?: string;
  /** Where the package was found: its layer and file. */
  layer: PackageLocation;
  /** The OSV ecosystem and name the advisory was matched under ("Debian:12", "openssl"). */
  ecosystem?: string;
  matchedName?: string;
}

export interface MatchOptions {
  /** Keep only findings at these severities (all when absent). */
  severities?: Severity[];
  /** Drop findings without a fixed version. */
  ignoreUnfixed?: boolean;
  /** Trivy's ignore file: ids (or aliases) that are not reported. */
  ignore?: IgnoreList;
  /** The time expiry dates of the ignore file are measured against (default now). */
  now?: number;
}

/** The OSV ecosystems a package is looked up under, most specific first. */
export function osvEcosystems(ecosystem: Ecosystem, os: OsRelease | undefined): string[] {
  switch (ecosystem) {
    case 'deb': {
      const distro = os?.id === 'ubuntu' ? 'Ubuntu' : os?.id === 'debian' || os === undefined ? 'Debian' : undefined;
      if (distro === undefined) return [];
      const release = os?.versionId;
      if (release === undefined || release === '') return [distro];
      return distro === 'Ubuntu' ? [`Ubuntu:${release}`, `Ubuntu:${release}:LTS`, distro] : [`Debian:${release.split('.')[0]}`, distro];
    }
    case 'apk': {
      const m = /^(\d+)\.(\d+)/.exec(os?.versionId ?? '');
      return m === null ? ['Alpine'] : [`Alpine:v${m[1]}.${m[2]}`, 'Alpine'];
    }
    case 'npm':
      return ['npm'];
    case 'pypi':
      return ['PyPI'];
    case 'golang':
      return ['Go'];
    case 'maven':
      return ['Maven'];
  }
}

/** The name and version an advisory names this package by. */
function advisoryKey(pkg: CatalogPackage): { name: string; version: string } {
  if (pkg.ecosystem === 'deb' || pkg.ecosystem === 'apk') return { name: pkg.sourceName || pkg.name, version: pkg.sourceVersion || pkg.version };
  if (pkg.ecosystem === 'maven' && pkg.groupId !== undefined && !pkg.name.includes(':')) return { name: `${pkg.groupId}:${pkg.name}`, version: pkg.version };
  return { name: pkg.name, version: pkg.version };
}

type Cmp = (a: string, b: string) => number;

function semverCmp(a: string, b: string): number {
  const x = semver.parse(a.replace(/^v/, ''), { loose: true });
  const y = semver.parse(b.replace(/^v/, ''), { loose: true });
  if (x === null || y === null) return x === y ? 0 : x === null ? -1 : 1;
  return x.compare(y);
}

function eventVersion(e: OsvEvent): string {
  return e.introduced ?? e.fixed ?? e.last_affected ?? e.limit ?? '';
}

/** Whether a version lies in an OSV range (the schema's evaluation: events in version order). */
export function inRange(version: string, range: OsvRange, cmp: Cmp): boolean {
  const limits = range.events.filter((e) => e.limit !== undefined).map((e) => e.limit!);
  if (limits.length > 0 && !limits.some((l) => l === '*' || cmp(version, l) < 0)) return false;
  const events = range.events
    .filter((e) => e.limit === undefined)
    .map((e, i) => ({ e, i }))
    .sort((p, q) => {
      const a = eventVersion(p.e);
      const b = eventVersion(q.e);
      // "0" is before every version
      const pz = p.e.introduced === '0';
      const qz = q.e.introduced === '0';
      if (pz || qz) return pz && qz ? p.i - q.i : pz ? -1 : 1;
      return cmp(a, b) || p.i - q.i;
    });
  let affected = false;
  for (const { e } of events) {
    if (e.introduced !== undefined) {
      if (e.introduced === '0' || cmp(version, e.introduced) >= 0) affected = true;
    } else if (e.fixed !== undefined) {
      if (cmp(version, e.fixed) >= 0) affected = false;
    } else if (e.last_affected !== undefined) {
      if (cmp(version, e.last_affected) > 0) affected = false;
    }
  }
  return affected;
}

/** Whether an affected[] entry covers the version, and the lowest fixed version above it. */
export function evaluateAffected(affected: OsvAffected, version: string, ecosystem: Ecosystem): { affected: boolean; fixed?: string } {
  const eco: Cmp = (a, b) => compareVersions(ecosystem, a, b);
  let hit = (affected.versions ?? []).some((v) => v === version || eco(v, version) === 0);
  let fixed: string | undefined;
  for (const range of affected.ranges ?? []) {
    if (range.type !== 'ECOSYSTEM' && range.type !== 'SEMVER') continue;
    const cmp = range.type === 'SEMVER' ? semverCmp : eco;
    if (!inRange(version, range, cmp)) continue;
    hit = true;
    for (const e of range.events) {
      if (e.fixed === undefined || cmp(e.fixed, version) <= 0) continue;
      if (fixed === undefined || cmp(e.fixed, fixed) < 0) fixed = e.fixed;
    }
  }
  return hit ? { affected: true, fixed } : { affected: false };
}

/** The distinct places a package was found: one finding per place (the first location per path). */
function places(pkg: CatalogPackage): PackageLocation[] {
  const seen = new Map<string, PackageLocation>();
  for (const loc of pkg.locations) if (!seen.has(loc.path)) seen.set(loc.path, loc);
  return [...seen.values()];
}

/** Every advisory of the database that affects a package of the catalogue, one finding per (advisory, package, place). */
export function matchCatalog(catalog: Catalog, db: AdvisoryDb, opts: MatchOptions = {}): Finding[] {
  const now = opts.now ?? Date.now();
  const wanted = opts.severities === undefined || opts.severities.length === 0 ? undefined : new Set(opts.severities);
  const findings: Finding[] = [];
  for (const pkg of catalog.packages) {
    const key = advisoryKey(pkg);
    // an advisory listed under several ecosystems of the package (Debian:12 and Debian) counts once
    const hits = new Map<string, { record: OsvRecord; affected: OsvAffected; fixed?: string; ecosystem: string }>();
    for (const ecosystem of osvEcosystems(pkg.ecosystem, catalog.os)) {
      for (const { record, affected } of db.lookup(ecosystem, key.name)) {
        if (record.withdrawn !== undefined) continue;
        const r = evaluateAffected(affected, key.version, pkg.ecosystem);
        if (!r.affected) continue;
        const prev = hits.get(record.id);
        if (prev === undefined) hits.set(record.id, { record, affected, fixed: r.fixed, ecosystem });
        else if (r.fixed !== undefined && (prev.fixed === undefined || compareVersions(pkg.ecosystem, r.fixed, prev.fixed) < 0)) prev.fixed = r.fixed;
      }
    }
    for (const { record, affected, fixed, ecosystem } of hits.values()) {
      if (opts.ignoreUnfixed && fixed === undefined) continue;
      const aliases = [...new Set(record.aliases ?? [])];
      if (ignoredBy(opts.ignore, [record.id, ...aliases], now) !== undefined) continue;
      const { severity, score } = advisorySeverity(record, affected);
      if (wanted !== undefined && !wanted.has(severity)) continue;
      for (const layer of places(pkg)) {
        const finding: Finding = { id: record.id, aliases, package: pkg, installed: key.version, severity, layer, ecosystem, matchedName: key.name };
        if (fixed !== undefined) finding.fixed = fixed;
        if (score !== undefined) finding.score = score;
        if (record.summary !== undefined) finding.summary = record.summary;
        findings.push(finding);
      }
    }
  }
  return findings.sort(
    (a, b) =>
      cmpStr(a.package.name, b.package.name) ||
      cmpStr(a.package.version, b.package.version) ||
      severityRank(a.severity) - severityRank(b.severity) ||
      cmpStr(a.id, b.id) ||
      cmpStr(a.layer.path, b.layer.path),
  );
}

const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Counts per severity, most severe first. */
export function countBySeverity(findings: Array<{ severity: Severity }>): Record<Severity, number> {
  const out: Record<Severity, number> = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, UNKNOWN: 0 };
  for (const f of findings) out[f.severity]++;
  return out;
}
