/**
 * `kiln scan`: the library commands. `scanImage` catalogues one platform's image (the SBOM
 * cataloguer, src/sbom/catalog.ts) and matches it against an OSV database; `scanImageSecrets`
 * runs the secret scan (src/scan/secrets.ts) over the same image. Both return data; the CLI
 * prints.
 */
import { promises as fs } from 'node:fs';
import { ContentStore } from '../oci/store.js';
import { loadImage } from '../oci/image.js';
import type { Platform } from '../oci/types.js';
import { catalogImage } from '../sbom/catalog.js';
import type { Catalog } from '../sbom/types.js';
import { ignoredBy, readIgnoreFile, type IgnoreList } from './ignore.js';
import { matchCatalog } from './match.js';
import { AdvisoryDb, loadAdvisoryDb } from './osv.js';
import { imageLayers, type ScanReport } from './report.js';
import { scanSecrets, type SecretFinding } from './secrets.js';
import type { Severity } from './severity.js';

export interface ScanImageOptions {
  /** The OSV database: a directory or zip path, or one already loaded. */
  db: string | AdvisoryDb;
  /** Report only these severities (default all). */
  severities?: Severity[];
  ignoreUnfixed?: boolean;
  /** A Trivy-style ignore file (.trivyignore). */
  ignoreFile?: string;
  /** The platform of a multi-platform image (default this machine's). */
  platform?: Platform;
  /** The time ignore-file expiries are measured against (default now). */
  now?: number;
  /** A catalogue already made for this image (a build's gate has one), instead of cataloguing again. */
  catalog?: Catalog;
}

/** Scans the image `ref` in the kiln root's store for known vulnerabilities. */
export async function scanImage(root: string, ref: string, opts: ScanImageOptions): Promise<ScanReport> {
  const store = await ContentStore.open(root);
  const img = await loadImage(store, ref, opts.platform);
  const [catalog, db, ignore] = await Promise.all([
    opts.catalog ?? catalogImage(store, img.manifestDescriptor),
    typeof opts.db === 'string' ? loadAdvisoryDb(opts.db) : opts.db,
    opts.ignoreFile !== undefined ? readIgnoreFile(opts.ignoreFile) : Promise.resolve<IgnoreList | undefined>(undefined),
  ]);
  const findings = matchCatalog(catalog, db, { severities: opts.severities, ignoreUnfixed: opts.ignoreUnfixed, ignore, now: opts.now });
  return {
    image: {
      name: img.name,
      manifestDigest: img.manifestDescriptor.digest,
      ...(catalog.platform ?? img.manifestDescriptor.platform ? { platform: catalog.platform ?? img.manifestDescriptor.platform } : {}),
      ...(catalog.os ? { os: catalog.os } : {}),
    },
    db: { source: db.source, records: db.records.length, skipped: db.warnings },
    layers: imageLayers(img.config),
    findings,
  };
}

/** The ignore file to use when none is given: ./.trivyignore when it exists, as Trivy does. */
export async function defaultIgnoreFile(cwd = process.cwd()): Promise<string | undefined> {
  const file = `${cwd}/.trivyignore`;
  try {
    return (await fs.stat(file)).isFile() ? file : undefined;
  } catch {
    return undefined;
  }
}

export interface ScanSecretsImageOptions {
  platform?: Platform;
  /** Only findings at these severities (default all). */
  severities?: Severity[];
  /** Ignore file: a rule id listed ignores that rule's findings (Trivy's .trivyignore for secrets). */
  ignoreFile?: string;
  now?: number;
}

/** Scans the image `ref` for secrets (every layer, deleted files included, and the config). */
export async function scanImageSecrets(root: string, ref: string, opts: ScanSecretsImageOptions = {}): Promise<{ image: { name: string; manifestDigest: string }; findings: SecretFinding[] }> {
  const store = await ContentStore.open(root);
  const img = await loadImage(store, ref, opts.platform);
  const ignore = opts.ignoreFile !== undefined ? await readIgnoreFile(opts.ignoreFile) : undefined;
  const now = opts.now ?? Date.now();
  const wanted = opts.severities === undefined || opts.severities.length === 0 ? undefined : new Set<string>(opts.severities);
  const all = await scanSecrets(store, img.manifestDescriptor, img.config);
  const findings = all.filter((f) => (wanted === undefined || wanted.has(f.severity)) && ignoredBy(ignore, [f.rule], now) === undefined);
  return { image: { name: img.name, manifestDigest: img.manifestDescriptor.digest }, findings };
}

export { loadAdvisoryDb, AdvisoryDb, normalizePypiName, type OsvRecord, type OsvAffected, type OsvRange, type OsvEvent } from './osv.js';
export { matchCatalog, osvEcosystems, countBySeverity, type Finding, type MatchOptions } from './match.js';
export { readIgnoreFile, parseIgnoreFile, ignoredBy, type IgnoreList, type IgnoreEntry } from './ignore.js';
export { SEVERITIES, advisorySeverity, cvssBaseScore, severityOfScore, type Severity } from './severity.js';
export { compareVersions } from './versions/index.js';
export { findingRows, summaryLine, jsonReport, vulnerabilityRun, secretsRun, sarifLog, sarifLevel, imageLayers, layerLabel, type ScanReport, type LayerInfo } from './report.js';
