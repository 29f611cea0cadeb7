/**
 * What `kiln scan` writes: a table (as Trivy's, with the layer that brought each package in),
 * a JSON report (the shape below, versioned by `schemaVersion`), or SARIF 2.1.0 for code
 * scanning dashboards (one rule per advisory or secret rule, one result per finding, located
 * at the package's or the file's path in the image).
 */
import type { ImageConfig, Platform } from '../oci/types.js';
import { formatPlatform } from '../oci/platform.js';
import type { OsRelease } from '../sbom/types.js';
import { VERSION } from '../version.js';
import type { Finding } from './match.js';
import { countBySeverity } from './match.js';
import { SEVERITIES, type Severity } from './severity.js';
import type { SecretFinding } from './secrets.js';

/** One layer of the scanned image: its diff id and the history entry that made it. */
export interface LayerInfo {
  index: number;
  diffId: string;
  createdBy?: string;
}

/** The result of scanning one platform's image. */
export interface ScanReport {
  image: { name: string; manifestDigest: string; platform?: Platform; os?: OsRelease };
  db: { source: string; records: number; skipped: string[] };
  layers: LayerInfo[];
  findings: Finding[];
}

/** The layers of an image with the created_by of the history entry of each (entries marked empty_layer make none). */
export function imageLayers(config: ImageConfig): LayerInfo[] {
  const diffIds = config.rootfs?.diff_ids ?? [];
  const made = (config.history ?? []).filter((h) => h.empty_layer !== true);
  return diffIds.map((diffId, index) => {
    const createdBy = made.length === diffIds.length ? made[index]?.created_by : undefined;
    return createdBy === undefined ? { index, diffId } : { index, diffId, createdBy };
  });
}

const shortDigest = (d: string): string => d.replace(/^sha256:/, '').slice(0, 12);

/** A layer as the table shows it: the short diff id and what made it (as Trivy shows it). */
export function layerLabel(layer: LayerInfo | undefined, diffId: string): string {
  const by = layer?.createdBy?.replace(/^\/bin\/sh -c (?:#\(nop\)\s*)?/, '').replace(/\s+/g, ' ').trim();
  if (by === undefined || by === '') return shortDigest(diffId);
  return `${shortDigest(diffId)} ${by.length > 48 ? `${by.slice(0, 47)}…` : by}`;
}

/** Rows of the vulnerability table, a header first. */
export function findingRows(report: Pick<ScanReport, 'findings' | 'layers'>): string[][] {
  const rows = [['PACKAGE', 'INSTALLED', 'ADVISORY', 'SEVERITY', 'FIXED', 'LAYER']];
  for (const f of report.findings) {
    const name = f.matchedName !== undefined && f.matchedName !== f.package.name ? `${f.package.name} (${f.matchedName})` : f.package.name;
    rows.push([name, f.installed, f.id, f.score !== undefined ? `${f.severity} ${f.score.toFixed(1)}` : f.severity, f.fixed ?? '', layerLabel(report.layers[f.layer.layer], f.layer.diffId)]);
  }
  return rows;
}

/** "Total: 5 (CRITICAL: 1, HIGH: 2, MEDIUM: 1, LOW: 1, UNKNOWN: 0)", as Trivy sums up. */
export function summaryLine(findings: Array<{ severity: Severity | string }>, severities: readonly string[] = SEVERITIES): string {
  const counts: Record<string, number> = {};
  for (const f of findings) counts[f.severity] = (counts[f.severity] ?? 0) + 1;
  return `Total: ${findings.length} (${severities.map((s) => `${s}: ${counts[s] ?? 0}`).join(', ')})`;
}

/**
 * The JSON report (schemaVersion 1):
 * `{ schemaVersion, tool: {name, version}, image: {name, manifestDigest, platform?, os?},
 *    db: {source, records, skipped}, summary: {total, CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN},
 *    findings: [{ id, aliases, severity, score?, summary?, installed, fixed?,
 *                 package: {name, version, ecosystem, purl, sourceName?, sourceVersion?},
 *                 layer: {index, diffId, path, createdBy?} }] }`.
 * Findings are sorted by package, severity, id and path, so the same scan gives the same bytes.
 */
export function jsonReport(report: ScanReport, secrets?: SecretFinding[]): Record<string, unknown> {
  const counts = countBySeverity(report.findings);
  const out: Record<string, unknown> = {
    schemaVersion: 1,
    tool: { name: 'kiln', version: VERSION },
    image: {
      name: report.image.name,
      manifestDigest: report.image.manifestDigest,
      ...(report.image.platform ? { platform: formatPlatform(report.image.platform) } : {}),
      ...(report.image.os ? { os: report.image.os } : {}),
    },
    db: report.db,
    summary: { total: report.findings.length, ...counts },
    findings: report.findings.map((f) => ({
      id: f.id,
      aliases: f.aliases,
      severity: f.severity,
      ...(f.score !== undefined ? { score: f.score } : {}),
      ...(f.summary !== undefined ? { summary: f.summary } : {}),
      installed: f.installed,
      ...(f.fixed !== undefined ? { fixed: f.fixed } : {}),
      package: {
        name: f.package.name,
        version: f.package.version,
        ecosystem: f.package.ecosystem,
        purl: f.package.purl,
        ...(f.package.sourceName !== undefined ? { sourceName: f.package.sourceName } : {}),
        ...(f.package.sourceVersion !== undefined ? { sourceVersion: f.package.sourceVersion } : {}),
      },
      layer: { index: f.layer.layer, diffId: f.layer.diffId, path: f.layer.path, ...(report.layers[f.layer.layer]?.createdBy !== undefined ? { createdBy: report.layers[f.layer.layer].createdBy } : {}) },
    })),
  };
  if (secrets !== undefined) out.secrets = secrets;
  return out;
}

/** SARIF's level for a severity, as Trivy maps it. */
export function sarifLevel(severity: string): 'error' | 'warning' | 'note' {
  if (severity === 'CRITICAL' || severity === 'HIGH') return 'error';
  if (severity === 'MEDIUM') return 'warning';
  return 'note';
}

interface SarifRule {
  id: string;
  name: string;
  shortDescription: { text: string };
  fullDescription: { text: string };
  defaultConfiguration: { level: string };
  helpUri?: string;
  properties: Record<string, unknown>;
}

interface SarifResult {
  ruleId: string;
  ruleIndex: number;
  level: string;
  message: { text: string };
  locations: unknown[];
}

function sarifRun(name: string, rules: SarifRule[], results: SarifResult[]): Record<string, unknown> {
  return {
    tool: { driver: { name, version: VERSION, rules } },
    originalUriBaseIds: { ROOTPATH: { uri: 'file:///' } },
    results,
  };
}

function location(path: string, line?: number, text?: string): unknown {
  return {
    physicalLocation: { artifactLocation: { uri: path.replace(/^\/+/, ''), uriBaseId: 'ROOTPATH' }, ...(line !== undefined ? { region: { startLine: line } } : {}) },
    ...(text !== undefined ? { message: { text } } : {}),
  };
}

/** The vulnerability findings as a SARIF run. */
export function vulnerabilityRun(report: ScanReport): Record<string, unknown> {
  const rules: SarifRule[] = [];
  const index = new Map<string, number>();
  const results: SarifResult[] = [];
  for (const f of report.findings) {
    let i = index.get(f.id);
    if (i === undefined) {
      i = rules.length;
      index.set(f.id, i);
      const text = f.summary ?? f.id;
      rules.push({
        id: f.id,
        name: 'OsPackageVulnerability',
        shortDescription: { text },
        fullDescription: { text: f.aliases.length > 0 ? `${text} (${f.aliases.join(', ')})` : text },
        defaultConfiguration: { level: sarifLevel(f.severity) },
        helpUri: `https://osv.dev/vulnerability/${encodeURIComponent(f.id)}`,
        properties: { tags: ['vulnerability', 'security', f.severity], precision: 'very-high', ...(f.score !== undefined ? { 'security-severity': f.score.toFixed(1) } : {}) },
      });
    }
    const layer = layerLabel(report.layers[f.layer.layer], f.layer.diffId);
    results.push({
      ruleId: f.id,
      ruleIndex: i,
      level: sarifLevel(f.severity),
      message: { text: `Package: ${f.package.name}\nInstalled Version: ${f.installed}\nVulnerability ${f.id}\nSeverity: ${f.severity}\nFixed Version: ${f.fixed ?? '(none)'}\nLayer: ${layer}` },
      locations: [location(f.layer.path, undefined, `${report.image.name}: ${f.package.name}@${f.installed}`)],
    });
  }
  return sarifRun('kiln', rules, results);
}

/** Secret findings as a SARIF run (paths in the image; env, labels and history under their own names). */
export function secretsRun(findings: SecretFinding[]): Record<string, unknown> {
  const rules: SarifRule[] = [];
  const index = new Map<string, number>();
  const results: SarifResult[] = [];
  for (const f of findings) {
    let i = index.get(f.rule);
    if (i === undefined) {
      i = rules.length;
      index.set(f.rule, i);
      rules.push({ id: f.rule, name: 'Secret', shortDescription: { text: f.title }, fullDescription: { text: f.title }, defaultConfiguration: { level: sarifLevel(f.severity) }, properties: { tags: ['secret', 'security', f.severity], precision: 'high' } });
    }
    const path = f.where === 'layer' ? (f.path ?? '') : f.where === 'history' ? `config/history/${f.layer ?? 0}` : `config/${f.where}/${f.path ?? ''}`;
    const where = f.where === 'layer' ? `layer ${f.layer} (${shortDigest(f.diffId ?? '')})${f.deleted ? ', deleted by a later layer' : ''}` : f.where;
    results.push({ ruleId: f.rule, ruleIndex: i, level: sarifLevel(f.severity), message: { text: `${f.title}: ${f.match} in ${where}` }, locations: [location(path, f.line)] });
  }
  return sarifRun('kiln secrets', rules, results);
}

/** A SARIF 2.1.0 log of one or more runs. */
export function sarifLog(runs: Array<Record<string, unknown>>): Record<string, unknown> {
  return { version: '2.1.0', $schema: 'https://json.schemastore.org/sarif-2.1.0.json', runs };
}
