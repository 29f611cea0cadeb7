import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import {
  SEVERITIES,
  defaultIgnoreFile,
  findingRows,
  jsonReport,
  sarifLog,
  scanImage,
  scanImageSecrets,
  secretsRun,
  summaryLine,
  vulnerabilityRun,
  type ScanReport,
  type Severity,
} from '../scan/index.js';
import { secretFindingRows, type SecretFinding } from '../scan/secrets.js';
import { formatTable } from './format.js';

interface ScanCliOptions {
  db?: string;
  severity?: string;
  ignoreUnfixed?: boolean;
  exitCode: string;
  ignorefile?: string;
  format: string;
  output?: string;
  platform?: string;
  secrets?: boolean;
}

const FORMATS = ['table', 'json', 'sarif'] as const;
type Format = (typeof FORMATS)[number];

function parseSeverities(list: string | undefined): Severity[] | undefined {
  if (list === undefined) return undefined;
  const out: Severity[] = [];
  for (const raw of list.split(',')) {
    const s = raw.trim().toUpperCase();
    if (s === '') continue;
    if (!(SEVERITIES as readonly string[]).includes(s)) throw new KilnError(`--severity: "${raw.trim()}" is not a severity`, { code: 'invalid', hint: `use a comma-separated list of ${SEVERITIES.join(', ')}` });
    out.push(s as Severity);
  }
  return out.length > 0 ? out : undefined;
}

function parseExitCode(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 255) throw new KilnError(`--exit-code: "${text}" is not an exit code`, { code: 'invalid', hint: 'give a number from 0 to 255 (0: the scan never fails the command)' });
  return Number(text);
}

function osLabel(report: ScanReport): string {
  const os = report.image.os;
  if (os === undefined) return '';
  return ` (${[os.id, os.versionId].filter(Boolean).join(' ')})`;
}

function vulnerabilityTable(report: ScanReport, severities: readonly string[]): string {
  const head = `${report.image.name}${osLabel(report)}\n${summaryLine(report.findings, severities)}\n`;
  if (report.findings.length === 0) return `${head}\nno vulnerabilities found\n`;
  return `${head}\n${formatTable(findingRows(report))}`;
}

function secretsTable(name: string, findings: SecretFinding[], severities: readonly string[]): string {
  const head = `${name} (secrets)\n${summaryLine(findings, severities.filter((s) => s !== 'UNKNOWN'))}\n`;
  if (findings.length === 0) return `${head}\nno secrets found\n`;
  return `${head}\n${formatTable(secretFindingRows(findings))}`;
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('scan')
    .description(
      'Scan an image of the store for known vulnerabilities (its packages, as kiln sbom finds them, matched against an OSV advisory database) or, with --secrets, for secrets in every layer and the config. Offline: the database is a directory or zip of OSV JSON files (osv.dev publishes one all.zip per ecosystem).',
    )
    .argument('<image>', 'image name, digest or ID in the kiln store')
    .option('--db <dir|zip>', 'OSV advisory database: a directory of OSV JSON files (searched recursively) or a zip of them')
    .option('--severity <list>', `report only these severities (comma-separated: ${SEVERITIES.join(',')})`)
    .option('--ignore-unfixed', 'leave out vulnerabilities that have no fixed version')
    .option('--exit-code <n>', 'exit with this code when a finding at the reported severities remains', '0')
    .option('--ignorefile <file>', 'advisory ids (or secret rule ids) not to report, one per line, # comments, exp:YYYY-MM-DD expiry (default ./.trivyignore when present)')
    .option('--format <format>', `output format: ${FORMATS.join(', ')}`, 'table')
    .option('-o, --output <file>', 'write the report to this file instead of standard output')
    .option('--platform <os/arch>', "the platform to scan of a multi-platform image (default: this machine's)")
    .option('--secrets', 'scan for secrets (private keys, cloud and registry tokens, credential files; also in files a later layer deleted, and in env, labels and history); with --db, both scans')
    .action(async (image: string, o: ScanCliOptions) => {
      if (!(FORMATS as readonly string[]).includes(o.format)) throw new KilnError(`--format: "${o.format}" is not a format`, { code: 'invalid', hint: `use one of ${FORMATS.join(', ')}` });
      const format = o.format as Format;
      if (o.db === undefined && !o.secrets) throw new KilnError('kiln scan needs an advisory database (--db DIR|ZIP) or --secrets', { code: 'invalid', hint: 'kiln scan IMAGE --db osv/all.zip, or kiln scan --secrets IMAGE' });
      const severities = parseSeverities(o.severity);
      const exitCode = parseExitCode(o.exitCode);
      const platform = o.platform ? parsePlatform(o.platform) : undefined;
      const ignoreFile = o.ignorefile ?? (await defaultIgnoreFile());
      const root = globals().root;
      const shown = severities ?? SEVERITIES;

      const report = o.db !== undefined ? await scanImage(root, image, { db: o.db, severities, ignoreUnfixed: o.ignoreUnfixed, ignoreFile, platform }) : undefined;
      if (report !== undefined && report.db.skipped.length > 0) {
        const first = report.db.skipped.slice(0, 5).map((w) => `  ${w}\n`).join('');
        const more = report.db.skipped.length > 5 ? `  … and ${report.db.skipped.length - 5} more\n` : '';
        process.stderr.write(`warning: advisory database ${report.db.source}: skipped ${report.db.skipped.length} file(s) that are not OSV records:\n${first}${more}`);
      }
      const secrets = o.secrets ? await scanImageSecrets(root, image, { platform, severities, ignoreFile }) : undefined;

      let text: string;
      if (format === 'json') {
        const doc = report !== undefined ? jsonReport(report, secrets?.findings) : { schemaVersion: 1, image: secrets!.image, secrets: secrets!.findings };
        text = `${JSON.stringify(doc, null, 2)}\n`;
      } else if (format === 'sarif') {
        const runs = [...(report !== undefined ? [vulnerabilityRun(report)] : []), ...(secrets !== undefined ? [secretsRun(secrets.findings)] : [])];
        text = `${JSON.stringify(sarifLog(runs), null, 2)}\n`;
      } else {
        const parts: string[] = [];
        if (report !== undefined) parts.push(vulnerabilityTable(report, shown));
        if (secrets !== undefined) parts.push(secretsTable(secrets.image.name, secrets.findings, shown));
        text = parts.join('\n');
      }
      if (o.output !== undefined) await fs.writeFile(o.output, text);
      else process.stdout.write(text);
      const remaining = (report?.findings.length ?? 0) + (secrets?.findings.length ?? 0);
      if (exitCode !== 0 && remaining > 0) process.exitCode = exitCode;
    });
};
