/**
 * The build's gate (`kiln build --push --scan-db DB --scan-severity CRITICAL --scan-exit-code 1
 * --scan-secrets --sign-key KEY`): between the image store and every other sink, the built image
 * is scanned (each platform's packages against the advisory database, and with `secrets` every
 * layer for secrets), and only an image that passes goes on: pushed and signed by
 * gate/push.ts, then to the build's other outputs. An image that fails reaches no registry (no
 * blob, no manifest, no tag) and no other output; the local store keeps it, under its -t names,
 * so it can be inspected (kiln scan, kiln run).
 *
 * What is loaded before the build (the advisory database, the ignore file, the signing key,
 * decrypted) comes in ready: a wrong password or a bad database fails before any step runs.
 */
import { readFile } from 'node:fs/promises';
import { KilnError } from '../errors.js';
import type { Exporter, ExportResult } from '../export/types.js';
import type { ContentStore } from '../oci/store.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { isIndexType, isManifestType } from '../oci/walk.js';
import { registryClient } from '../registry/settings.js';
import type { TransferEvent } from '../registry/types.js';
import { imageCatalog } from '../sbom/index.js';
import { ignoredBy, readIgnoreFile, type IgnoreList } from '../scan/ignore.js';
import { matchCatalog, type Finding } from '../scan/match.js';
import { loadAdvisoryDb, type AdvisoryDb } from '../scan/osv.js';
import { padRows, scanSecrets, secretFindingRows, type SecretFinding } from '../scan/secrets.js';
import { SEVERITIES, type Severity } from '../scan/severity.js';
import { isAttestationManifest } from '../oci/image.js';
import { keyNeedsPassword, loadPrivateKey, type SigningKey } from '../sign/keys.js';
import { pushSigned, type SignedPushOptions, type SignedPushResult } from './push.js';

export type GateSeverity = Severity;

export interface GateScan {
  /** The advisory database (scan/ loadAdvisoryDb), loaded before the build. */
  db?: AdvisoryDb;
  /** Scan every layer, and the config, for secrets. */
  secrets?: boolean;
  /** Severities that fail the gate (vulnerabilities and secrets, as Trivy's --severity). Default: all. */
  severities?: GateSeverity[];
  ignoreUnfixed?: boolean;
  /** Advisory ids (and secret rule ids) not counted, from an ignore file (scan/ readIgnoreFile). */
  ignore?: IgnoreList;
  /** The exit code of a failed gate (default 1); 0 reports the findings and lets the image through. */
  exitCode?: number;
}

export interface GateOptions {
  scan?: GateScan;
  /** Push to these names, signed with `key` when given. */
  push?: Omit<SignedPushOptions, 'store' | 'image' | 'key'>;
  key?: SigningKey;
  /** Told what the scans found, before anything is pushed (the CLI prints a summary). */
  onReport?: (report: GateReport) => void;
  /** Told what was pushed. */
  onPushed?: (result: SignedPushResult) => void;
}

export interface GatePlatformReport {
  platform?: Platform;
  manifest: string;
  vulnerabilities: Finding[];
  secrets: SecretFinding[];
}

export interface GateReport {
  platforms: GatePlatformReport[];
  /** Findings that fail the gate (after severities and the ignore list). */
  failing: number;
  /** Whether the image is stopped (failing > 0 and the exit code is not 0). */
  failed: boolean;
}

/** The platform manifests of an image: the manifest itself, or an index's entries that are not attestations. */
async function platformImages(store: ContentStore, top: Descriptor): Promise<Array<{ descriptor: Descriptor; platform?: Platform }>> {
  if (!isIndexType(top.mediaType)) {
    const config = await store.readJSON<ImageConfig>((await store.readJSON<ImageManifest>(top.digest)).config.digest);
    return [{ descriptor: top, platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) } }];
  }
  const index = await store.readJSON<ImageIndex>(top.digest);
  const out: Array<{ descriptor: Descriptor; platform?: Platform }> = [];
  for (const m of index.manifests ?? []) {
    if (!isManifestType(m.mediaType) || isAttestationManifest(m)) continue;
    if (!(await store.hasBlob(m.digest))) continue;
    out.push({ descriptor: m, ...(m.platform ? { platform: m.platform } : {}) });
  }
  return out;
}

/** Scans every platform of `top` as `scan` says. */
export async function checkImage(store: ContentStore, top: Descriptor, scan: GateScan, signal?: AbortSignal): Promise<GateReport> {
  const severities = scan.severities;
  const platforms: GatePlatformReport[] = [];
  for (const p of await platformImages(store, top)) {
    const db = scan.db;
    // the two read the layers each on their own: side by side, one's reads overlap the other's work
    const [vulnerabilities, secrets] = await Promise.all([
      db ? imageCatalog(store, isIndexType(top.mediaType) ? top : undefined, p.descriptor).then((c) => matchCatalog(c, db, { severities, ignoreUnfixed: scan.ignoreUnfixed, ignore: scan.ignore })) : [],
      scan.secrets ? scanSecrets(store, p.descriptor, undefined, { signal }).then((all) => all.filter((f) => (!severities || severities.includes(f.severity)) && !ignoredBy(scan.ignore, [f.rule]))) : [],
    ]);
    platforms.push({ ...(p.platform ? { platform: p.platform } : {}), manifest: p.descriptor.digest, vulnerabilities, secrets });
  }
  const failing = platforms.reduce((n, p) => n + p.vulnerabilities.length + p.secrets.length, 0);
  return { platforms, failing, failed: failing > 0 && (scan.exitCode ?? 1) !== 0 };
}

function platformName(p: GatePlatformReport): string {
  return p.platform ? [p.platform.os, p.platform.architecture, p.platform.variant].filter(Boolean).join('/') : p.manifest.slice(0, 19);
}

/** The findings as a table (platform, severity, id or rule, package or place, installed, fixed, layer). */
export function gateTable(report: GateReport): string {
  const rows: string[][] = [['PLATFORM', 'SEVERITY', 'ID', 'PACKAGE / MATCH', 'INSTALLED', 'FIXED', 'LAYER']];
  for (const p of report.platforms) {
    for (const f of p.vulnerabilities) {
      rows.push([platformName(p), f.severity, f.id, `${f.package.name} (${f.package.ecosystem})`, f.installed, f.fixed ?? '-', `${f.layer.layer} ${f.layer.path}`]);
    }
    // a secret's match (redacted) where a package goes, its place where a layer goes
    for (const [severity, rule, where, match] of secretFindingRows(p.secrets).slice(1)) rows.push([platformName(p), severity, rule, match, '-', '-', where]);
  }
  return padRows(rows);
}

/** The error of a failed gate: what failed, the table in its detail, the scan's exit code. */
export function gateError(report: GateReport, exitCode: number, pushing: boolean): KilnError {
  const v = report.platforms.reduce((n, p) => n + p.vulnerabilities.length, 0);
  const s = report.platforms.reduce((n, p) => n + p.secrets.length, 0);
  const what = [v > 0 ? `${v} vulnerabilit${v === 1 ? 'y' : 'ies'}` : '', s > 0 ? `${s} secret${s === 1 ? '' : 's'}` : ''].filter(Boolean).join(' and ');
  return new KilnError(`the image failed the gate: ${what}${pushing ? '; nothing was pushed' : ''}`, {
    code: 'failed',
    exitCode,
    detail: gateTable(report),
    hint: 'the image is in the local store under its names: fix it and build again, or list accepted advisory ids (and secret rules) in --scan-ignorefile',
  });
}

/**
 * The gate as the sink that runs right after the image store (BuildOptions.gate): scans, then
 * (with `push`) the signed push. Throws gateError when the image fails.
 */
export function gateExporter(gate: GateOptions): Exporter {
  return {
    type: gate.push ? 'registry' : 'gate',
    async export(source, context): Promise<ExportResult> {
      const image = source.images[0];
      if (gate.scan && (gate.scan.db || gate.scan.secrets)) {
        const report = await checkImage(source.store, image.descriptor, gate.scan, context?.signal);
        gate.onReport?.(report);
        if (report.failed) throw gateError(report, gate.scan.exitCode ?? 1, gate.push !== undefined);
      }
      if (!gate.push) return { type: 'gate', descriptor: image.descriptor };
      const pushed = await pushSigned({ ...gate.push, store: source.store, image: image.descriptor, key: gate.key, signal: context?.signal ?? gate.push.signal });
      gate.onPushed?.(pushed);
      return { type: 'registry', descriptor: pushed.descriptor, names: pushed.references };
    },
  };
}

/** "CRITICAL,HIGH" → the severities (any case); a clear error for anything else. */
export function parseGateSeverities(text: string): GateSeverity[] {
  const out = text.split(',').map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
  for (const s of out) {
    if (!SEVERITIES.includes(s as Severity)) {
      throw new KilnError(`unknown severity "${s}" (--scan-severity)`, { code: 'invalid', hint: `use a comma-separated list of ${SEVERITIES.join(', ')}` });
    }
  }
  if (out.length === 0) throw new KilnError('--scan-severity is empty', { code: 'invalid', hint: 'write --scan-severity CRITICAL,HIGH' });
  return out as GateSeverity[];
}

export interface PrepareGateInput {
  root: string;
  insecureRegistries?: string[];
  /** The signing key file (cosign's encrypted format, or a plain PKCS#8/EC/RSA PEM). */
  keyFile?: string;
  /** Asked for the key's password when the key is encrypted. */
  password?: (keyFile: string) => Promise<string>;
  /** The advisory database: a directory or zip of OSV files. */
  db?: string;
  secrets?: boolean;
  /** Comma-separated severities that fail the gate. */
  severity?: string;
  exitCode?: number;
  ignoreFile?: string;
  ignoreUnfixed?: boolean;
  push?: { names: string[]; progress?: (e: TransferEvent) => void; warn?: (m: string) => void };
  onReport?: GateOptions['onReport'];
  onPushed?: GateOptions['onPushed'];
}

/**
 * Loads what the gate needs before the build: the key (decrypted: a wrong password fails
 * here), the advisory database and the ignore file; the registry client of the push.
 */
export async function prepareGate(input: PrepareGateInput): Promise<GateOptions> {
  let key: SigningKey | undefined;
  if (input.keyFile !== undefined) {
    let pem: string;
    try {
      pem = await readFile(input.keyFile, 'utf8');
    } catch (e) {
      throw new KilnError(`cannot read the signing key ${input.keyFile}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, {
        code: 'not-found',
        hint: 'make a key pair with kiln generate-key-pair, and give its .key file',
      });
    }
    const password = keyNeedsPassword(pem) ? await input.password?.(input.keyFile) : undefined;
    key = loadPrivateKey(pem, password, input.keyFile);
  }
  const scan: GateScan = {
    ...(input.db !== undefined ? { db: await loadAdvisoryDb(input.db) } : {}),
    secrets: input.secrets === true,
    ...(input.severity !== undefined ? { severities: parseGateSeverities(input.severity) } : {}),
    ...(input.ignoreFile !== undefined ? { ignore: await readIgnoreFile(input.ignoreFile) } : {}),
    ignoreUnfixed: input.ignoreUnfixed === true,
    ...(input.exitCode !== undefined ? { exitCode: input.exitCode } : {}),
  };
  return {
    scan,
    ...(key ? { key } : {}),
    ...(input.push ? { push: { ...input.push, client: registryClient({ root: input.root, insecureRegistries: input.insecureRegistries }) } } : {}),
    ...(input.onReport ? { onReport: input.onReport } : {}),
    ...(input.onPushed ? { onPushed: input.onPushed } : {}),
  };
}

export { pushSigned, pushedForm, type SignedPushOptions, type SignedPushResult } from './push.js';
