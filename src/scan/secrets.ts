/**
 * The secret scan (`kiln scan --secrets`, the build's gate with --scan-secrets): private keys,
 * cloud and registry tokens, credential files and `.env` assignments in every file of every
 * layer, and in the image config's env, labels and history.
 *
 * - Every layer is read once, in order (oci/layer.ts readLayer). A file a later layer deleted
 *   or replaced still ships in its layer: its findings are reported with `deleted: true`.
 * - Files over MAX_FILE_SIZE (10 MiB) and binaries (a NUL byte in the first 8 KiB, as git
 *   decides) are skipped: `onSkipped` counts them.
 * - False positives are kept down as Trivy does: a match containing "example" (AWS's
 *   documented AKIAIOSFODNN7EXAMPLE, ...EXAMPLEKEY) is not a finding; nor is anything under
 *   usr/share/ (documentation, locales, test data packages ship), usr/include/, or in test
 *   fixture directories (test/, tests/, testdata/, fixtures/, __tests__/). A private key
 *   elsewhere is reported even when a package made it (ssl-cert's snakeoil key under
 *   /etc/ssl/private is a real key generated at install, the same in every container of the
 *   image): that is a finding to look at, not noise.
 * - A finding never holds the secret: `match` keeps a short prefix and masks the rest
 *   (`redact`), or for a private key shows its PEM header only.
 */
import { KilnError } from '../errors.js';
import type { Provider } from '../oci/content.js';
import { readLayer } from '../oci/layer.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.js';

export type SecretSeverity = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';

export interface SecretFinding {
  /** The rule's id (SECRET_RULES). */
  rule: string;
  title: string;
  severity: SecretSeverity;
  /** Where it was found: a layer's file, or the config's env, labels or history. */
  where: 'layer' | 'env' | 'label' | 'history';
  /** Index of the layer in the manifest (0 = the lowest); history: the entry's index. */
  layer?: number;
  /** The layer's diff id (rootfs.diff_ids). */
  diffId?: string;
  /** Absolute path in the image ("/app/.env"); env and labels: the variable or label name. */
  path?: string;
  /** 1-based line of the file (or of the history entry's created_by). */
  line?: number;
  /** What matched, redacted: never the whole secret. */
  match: string;
  /** The file is not in the final filesystem (a later layer deleted or replaced it), but ships in its layer. */
  deleted?: boolean;
}

/** One detection rule; the table below is every rule the scan has. */
interface SecretRule {
  id: string;
  title: string;
  severity: SecretSeverity;
  /**
   * Which files it reads: 'text' = every text file; otherwise a test on the path (relative,
   * no leading '/'). Config env, labels and history get the 'text' rules and the assignment rule.
   */
  files: 'text' | ((path: string) => boolean);
  /** Finds secrets in a file's text (or one config value). */
  find(text: string): RawMatch[];
}

interface RawMatch {
  /** Offset of the secret in the text (its line is counted from it). */
  index: number;
  /** The secret itself (checked against the allow rules, then redacted). */
  secret: string;
  /** What is shown instead: default redact(secret). */
  shown?: string;
}

/** Larger files are not read (they are not where credentials are kept). */
export const MAX_FILE_SIZE = 10 << 20;
/** A NUL in this much of a file's start marks it binary. */
const BINARY_PROBE = 8 << 10;

/** A short prefix of the secret, the rest masked with a fixed number of '*' (the length is not shown either). */
export function redact(secret: string): string {
  const keep = secret.length >= 16 ? 4 : secret.length >= 8 ? 2 : 0;
  return `${secret.slice(0, keep)}********`;
}

/** Every match of `re` (global) in text; `group` is the secret's capture group. */
function matches(re: RegExp, text: string, group = 0, shown?: (m: RegExpExecArray) => string): RawMatch[] {
  const out: RawMatch[] = [];
  re.lastIndex = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const secret = m[group];
    if (!secret) continue;
    out.push({ index: m.index + m[0].indexOf(secret), secret, ...(shown ? { shown: shown(m) } : {}) });
    if (m[0].length === 0) re.lastIndex++;
  }
  return out;
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Names whose value is a secret: *_KEY, *_SECRET, *_TOKEN, PASSWORD... (not key ids, files or URLs, nor public/GPG keys). */
const SECRET_NAME = /(?:^|[_.-])(?:PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|KEY|APIKEY|AUTH|CREDENTIALS?)$|(?:SECRET|TOKEN|PASSWORD|PASSWD|APIKEY|API_KEY|PRIVATE_KEY)/i;
const NOT_SECRET_NAME = /GPG|PGP|PUBLIC|PUBKEY|(?:_|^)(?:ID|URL|URI|FILE|PATH|DIR|NAME|USER|USERNAME|HOST|PORT|TYPE|LENGTH|SIZE)$|KEYSERVER|KEYRING|FINGERPRINT/i;
/** Values that are not secrets themselves: references to variables, placeholders, booleans, paths. */
const NOT_SECRET_VALUE = /^(?:\$|%|<|\{\{|\/|~\/|\.\/)|^(?:true|false|yes|no|on|off|none|null|nil|undefined|changeme|change_me|xxx+|\*+|secret|password|token|empty|todo|required)$/i;

/** `NAME=VALUE` where NAME looks like a secret's and VALUE is a non-empty literal. */
function secretAssignment(name: string, rawValue: string): string | undefined {
  if (!SECRET_NAME.test(name) || NOT_SECRET_NAME.test(name)) return undefined;
  let value = rawValue.trim();
  const q = value[0];
  if ((q === '"' || q === "'") && value.length >= 2) {
    const end = value.indexOf(q, 1);
    value = end > 0 ? value.slice(1, end) : value.slice(1);
  } else {
    // an unquoted value ends at a comment
    value = value.replace(/\s+#.*$/, '').trim();
  }
  if (value.length < 4 || NOT_SECRET_VALUE.test(value)) return undefined;
  return value;
}

/** Lines of a dotenv file (`[export ]NAME=VALUE`) whose NAME is a secret's and VALUE a literal. */
function envFileAssignments(text: string): RawMatch[] {
  const out: RawMatch[] = [];
  const re = /^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*[=:][ \t]*(.*)$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const value = secretAssignment(m[1], m[2]);
    if (value === undefined) continue;
    out.push({ index: m.index + m[0].indexOf(value, m[1].length), secret: value, shown: `${m[1]}=${redact(value)}` });
  }
  return out;
}

const PEM_PRIVATE = /-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----\r?\n((?:[A-Za-z0-9-]+: [^\n]*\r?\n)*\r?\n?)([A-Za-z0-9+/=]{40,})/g;
const AWS_KEY_ID = /(?<![A-Z0-9])((?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Z0-9])/g;
/** A 40-character secret key assigned near an access key id (or to a name saying it is one). */
const AWS_SECRET = /(?:aws_?secret_?(?:access_?)?key|secret_?(?:access_?)?key|SecretAccessKey)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi;
const AWS_SECRET_NEAR = /["'=:\s]([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/g;
/** How near (in characters) a bare 40-character key must be to an access key id. */
const AWS_NEAR = 300;

/** The rules, most specific first: a secret two rules find on one line is reported by the first. */
export const SECRET_RULES: readonly SecretRule[] = [
  {
    id: 'private-key',
    title: 'Private key (PEM)',
    severity: 'HIGH',
    files: 'text',
    // the header's line, the key's first characters
    find: (text) => matches(PEM_PRIVATE, text, 3, (m) => `-----BEGIN ${m[1]}----- ${redact(m[3])}`).map((m) => ({ ...m, index: text.lastIndexOf('-----BEGIN ', m.index) })),
  },
  {
    id: 'aws-access-key-id',
    title: 'AWS access key id',
    severity: 'CRITICAL',
    files: 'text',
    find: (text) => matches(AWS_KEY_ID, text, 1),
  },
  {
    id: 'aws-secret-access-key',
    title: 'AWS secret access key',
    severity: 'CRITICAL',
    files: 'text',
    find: (text) => {
      const named = matches(AWS_SECRET, text, 1);
      const ids = matches(AWS_KEY_ID, text, 1).map((m) => m.index);
      const near = ids.length === 0 ? [] : matches(AWS_SECRET_NEAR, text, 1).filter((m) => ids.some((i) => Math.abs(i - m.index) <= AWS_NEAR) && /[A-Z]/.test(m.secret) && /[a-z]/.test(m.secret) && /[0-9]/.test(m.secret));
      return [...named, ...near.filter((n) => !named.some((m) => m.index === n.index))];
    },
  },
  {
    id: 'github-token',
    title: 'GitHub token',
    severity: 'CRITICAL',
    files: 'text',
    find: (text) => matches(/(?<![A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{40,255})(?![A-Za-z0-9_])/g, text, 1),
  },
  {
    id: 'gitlab-token',
    title: 'GitLab personal access token',
    severity: 'CRITICAL',
    files: 'text',
    find: (text) => matches(/(?<![A-Za-z0-9_-])(glpat-[A-Za-z0-9_-]{20,})(?![A-Za-z0-9_-])/g, text, 1),
  },
  {
    id: 'slack-token',
    title: 'Slack token',
    severity: 'HIGH',
    files: 'text',
    find: (text) => matches(/(?<![A-Za-z0-9])(xox[abprs]-(?:[0-9]{8,}-)[A-Za-z0-9-]{10,})/g, text, 1),
  },
  {
    id: 'google-api-key',
    title: 'Google API key',
    severity: 'HIGH',
    files: 'text',
    find: (text) => matches(/(?<![A-Za-z0-9_-])(AIza[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])/g, text, 1),
  },
  {
    id: 'npm-token',
    title: 'npm access token',
    severity: 'CRITICAL',
    files: 'text',
    find: (text) => matches(/(?<![A-Za-z0-9_])(npm_[A-Za-z0-9]{36})(?![A-Za-z0-9])/g, text, 1),
  },
  {
    id: 'pypi-token',
    title: 'PyPI upload token',
    severity: 'CRITICAL',
    files: 'text',
    find: (text) => matches(/(?<![A-Za-z0-9_-])(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})/g, text, 1),
  },
  {
    id: 'npmrc-auth',
    title: 'Registry credentials in .npmrc',
    severity: 'CRITICAL',
    files: (p) => basename(p) === '.npmrc' || basename(p) === 'npmrc',
    find: (text) =>
      matches(/^[ \t]*((?:\/\/[^\s=]*:)?(?:_authToken|_auth|_password))[ \t]*=[ \t]*["']?([^\s"'$][^\s"']{3,})/gm, text, 2, (m) => `${m[1]}=${redact(m[2])}`),
  },
  {
    id: 'docker-config-auth',
    title: 'Registry credentials in a docker config.json',
    severity: 'CRITICAL',
    files: (p) => basename(p) === 'config.json' || basename(p) === '.dockercfg',
    find: dockerConfigAuths,
  },
  {
    id: 'git-credentials',
    title: 'Password in git credentials',
    severity: 'CRITICAL',
    files: (p) => basename(p) === '.git-credentials' || p.endsWith('git/credentials'),
    find: (text) => matches(/^[ \t]*([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+):([^@\s]+)@(\S+)/gm, text, 2, (m) => `${m[1]}:${redact(m[2])}@${m[3]}`),
  },
  {
    id: 'aws-credentials-file',
    title: 'AWS credentials file',
    severity: 'CRITICAL',
    files: (p) => p.endsWith('.aws/credentials') || p.endsWith('.aws/config'),
    find: (text) => matches(/^[ \t]*(aws_secret_access_key|aws_session_token)[ \t]*=[ \t]*(\S+)/gim, text, 2, (m) => `${m[1]} = ${redact(m[2])}`),
  },
  {
    id: 'env-file',
    title: 'Secret in a .env file',
    severity: 'HIGH',
    files: (p) => {
      const b = basename(p);
      return b === '.env' || b.startsWith('.env.') || b.endsWith('.env');
    },
    find: envFileAssignments,
  },
  {
    id: 'jwt',
    title: 'JSON Web Token',
    severity: 'MEDIUM',
    files: 'text',
    find: (text) => matches(/(?<![A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,})(?![A-Za-z0-9_-])/g, text, 1),
  },
];

/** The rule of config env, labels and history assignments (`NAME=VALUE` with a secret's name). */
const ASSIGNMENT_RULE = { id: 'secret-assignment', title: 'Secret in an environment variable, label or build argument', severity: 'HIGH' as SecretSeverity };

/**
 * A quick test before the rules run: every 'text' rule's secret contains one of these, so a
 * file without any is not searched further.
 */
const TEXT_KEYWORDS = /PRIVATE KEY|AKIA|ASIA|gh[pousr]_|github_pat_|glpat-|xox[abprs]-|AIza|npm_|pypi-|eyJ|secret_?(?:access_?)?key|SecretAccessKey/i;

/** docker's config.json (and the old .dockercfg): every registry entry with an `auth` or `identitytoken`. */
function dockerConfigAuths(text: string): RawMatch[] {
  if (!text.includes('auth')) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  if (!doc || typeof doc !== 'object') return [];
  const rec = doc as Record<string, unknown>;
  // config.json keeps them under "auths"; the old .dockercfg at the top, each with an email
  const legacy = !(rec.auths && typeof rec.auths === 'object');
  const auths = (legacy ? rec : rec.auths) as Record<string, unknown>;
  const out: RawMatch[] = [];
  for (const [host, entry] of Object.entries(auths)) {
    if (!entry || typeof entry !== 'object' || (legacy && !('email' in entry))) continue;
    for (const field of ['auth', 'identitytoken', 'password'] as const) {
      const value = (entry as Record<string, unknown>)[field];
      if (typeof value !== 'string' || value.length === 0) continue;
      const at = text.indexOf(JSON.stringify(value).slice(1, -1));
      out.push({ index: Math.max(0, at), secret: value, shown: `${host} ${field}: ${redact(value)}` });
    }
  }
  return out;
}

/** Trivy's "examples" allow rule: a match that says it is an example is one (AWS's documented keys). */
function allowedSecret(secret: string): boolean {
  return /example/i.test(secret);
}

/** Paths not scanned: documentation and locales (usr/share), headers, test fixtures. */
function allowedPath(rel: string): boolean {
  return /^usr\/(?:share|include)\//.test(rel) || /(?:^|\/)(?:tests?|testdata|test-?fixtures|fixtures|__tests__|spec)\//.test(rel);
}

export interface ScanSecretsOptions {
  /** Files skipped as too large or binary, and those read (for a report's totals). */
  onSkipped?: (event: { layer: number; path: string; why: 'binary' | 'size' }) => void;
  /** Files larger are skipped (default MAX_FILE_SIZE). */
  maxFileSize?: number;
  signal?: AbortSignal;
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** The findings of `rules` in one text, deduplicated by secret and line (the first rule wins). */
function findIn(text: string, rules: readonly SecretRule[]): Array<{ rule: SecretRule; line: number; shown: string }> {
  const out: Array<{ rule: SecretRule; line: number; shown: string }> = [];
  const seen = new Set<string>();
  for (const rule of rules) {
    for (const m of rule.find(text)) {
      if (allowedSecret(m.secret)) continue;
      const line = lineOf(text, m.index);
      const key = `${line}\0${m.secret}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ rule, line, shown: m.shown ?? redact(m.secret) });
    }
  }
  return out;
}

function normalisePath(name: string): string {
  return name.replace(/^(?:\.?\/)+/, '').replace(/\/+$/, '');
}

/** What one layer does to the paths below it: whiteouts, opaque directories, the paths it holds. */
interface LayerChanges {
  removed: Set<string>;
  opaque: Set<string>;
  paths: Set<string>;
}

/** Whether a later layer hides `rel` of layer `index` (whiteout, opaque parent, or the path or a parent replaced). */
function hiddenLater(rel: string, index: number, changes: LayerChanges[]): boolean {
  const parts = rel.split('/');
  for (let j = index + 1; j < changes.length; j++) {
    const c = changes[j];
    if (c.paths.has(rel) || c.removed.has(rel)) return true;
    for (let k = 1; k < parts.length; k++) {
      const ancestor = parts.slice(0, k).join('/');
      if (c.removed.has(ancestor) || c.opaque.has(ancestor)) return true;
    }
    if (c.opaque.has('')) return true;
  }
  return false;
}

/** Reads a tar entry's content, up to `limit` bytes. */
async function readContent(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

/**
 * Secrets in the image `manifest` (one platform's image manifest in `store`): its layers'
 * files, each layer read once, and `config`'s env, labels and history (read from the store
 * when not given). Findings are in layer order, then the config's.
 */
export async function scanSecrets(
  store: Pick<Provider, 'openBlob' | 'readJSON'>,
  manifest: Descriptor,
  config?: ImageConfig,
  options: ScanSecretsOptions = {},
): Promise<SecretFinding[]> {
  const doc = await store.readJSON<ImageManifest>(manifest.digest);
  if (!doc || !Array.isArray(doc.layers) || !doc.config) {
    throw new KilnError(`${manifest.digest} is not an image manifest`, { code: 'invalid', hint: 'scan one platform of an index: pass its manifest' });
  }
  const cfg = config ?? (await store.readJSON<ImageConfig>(doc.config.digest));
  const diffIds = cfg.rootfs?.diff_ids ?? [];
  const limit = options.maxFileSize ?? MAX_FILE_SIZE;
  const textRules = SECRET_RULES.filter((r) => r.files === 'text');
  const fileRules = SECRET_RULES.filter((r) => r.files !== 'text');
  const changes: LayerChanges[] = [];
  const found: Array<SecretFinding & { rel: string }> = [];

  for (let index = 0; index < doc.layers.length; index++) {
    const layer = doc.layers[index];
    const diffId = diffIds[index] ?? layer.digest;
    const c: LayerChanges = { removed: new Set(), opaque: new Set(), paths: new Set() };
    changes.push(c);
    for await (const entry of readLayer(store, layer)) {
      if (options.signal?.aborted) throw new KilnError('secret scan interrupted', { code: 'cancelled', exitCode: 130 });
      const rel = normalisePath(entry.header.name);
      const base = basename(rel);
      const dir = rel.slice(0, Math.max(0, rel.length - base.length - 1));
      if (base === '.wh..wh..opq') {
        c.opaque.add(dir);
        continue;
      }
      if (base.startsWith('.wh.')) {
        c.removed.add(dir ? `${dir}/${base.slice(4)}` : base.slice(4));
        continue;
      }
      c.paths.add(rel);
      const type = entry.header.type ?? 'file';
      if (type !== 'file' && type !== 'contiguous-file') continue;
      if (allowedPath(rel)) continue;
      const size = entry.header.size ?? 0;
      if (size === 0) continue;
      if (size > limit) {
        options.onSkipped?.({ layer: index, path: `/${rel}`, why: 'size' });
        continue;
      }
      const applicable = fileRules.filter((r) => (r.files as (p: string) => boolean)(rel));
      const content = await readContent(entry.stream as AsyncIterable<Buffer>);
      if (content.subarray(0, BINARY_PROBE).includes(0)) {
        options.onSkipped?.({ layer: index, path: `/${rel}`, why: 'binary' });
        continue;
      }
      const text = content.toString('utf8');
      const rules = TEXT_KEYWORDS.test(text) ? [...applicable, ...textRules] : applicable;
      if (rules.length === 0) continue;
      for (const f of findIn(text, rules)) {
        found.push({ rule: f.rule.id, title: f.rule.title, severity: f.rule.severity, where: 'layer', layer: index, diffId, path: `/${rel}`, line: f.line, match: f.shown, rel });
      }
    }
  }
  const findings: SecretFinding[] = found.map(({ rel, ...f }) => (hiddenLater(rel, f.layer!, changes) ? { ...f, deleted: true } : f));
  findings.push(...configSecrets(cfg, textRules));
  return findings;
}

/** Secrets in the config: env (NAME=VALUE), labels, and each history entry's created_by (build args, RUN lines). */
function configSecrets(cfg: ImageConfig, textRules: readonly SecretRule[]): SecretFinding[] {
  const out: SecretFinding[] = [];
  const value = (where: 'env' | 'label', name: string, v: string): void => {
    const hits = findIn(v, textRules);
    for (const f of hits) out.push({ rule: f.rule.id, title: f.rule.title, severity: f.rule.severity, where, path: name, match: f.shown });
    const literal = hits.length === 0 ? secretAssignment(name, v) : undefined;
    if (literal !== undefined) out.push({ rule: ASSIGNMENT_RULE.id, title: ASSIGNMENT_RULE.title, severity: ASSIGNMENT_RULE.severity, where, path: name, match: `${name}=${redact(literal)}` });
  };
  for (const e of cfg.config?.Env ?? []) {
    const eq = e.indexOf('=');
    if (eq > 0) value('env', e.slice(0, eq), e.slice(eq + 1));
  }
  for (const [k, v] of Object.entries(cfg.config?.Labels ?? {})) value('label', k, v);
  (cfg.history ?? []).forEach((h, i) => {
    const text = h.created_by ?? '';
    if (!text) return;
    const hits = findIn(text, textRules);
    for (const f of hits) out.push({ rule: f.rule.id, title: f.rule.title, severity: f.rule.severity, where: 'history', layer: i, line: f.line, match: f.shown });
    // build arguments (BuildKit's "|N NAME=VALUE ... /bin/sh -c") and inline assignments
    const re = /(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S+)/g;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const literal = secretAssignment(m[1], m[2]);
      if (literal === undefined || allowedSecret(literal)) continue;
      if (hits.some((f) => f.shown.includes(redact(literal)))) continue;
      out.push({ rule: ASSIGNMENT_RULE.id, title: ASSIGNMENT_RULE.title, severity: ASSIGNMENT_RULE.severity, where: 'history', layer: i, line: lineOf(text, m.index), match: `${m[1]}=${redact(literal)}` });
    }
  });
  return out;
}

/** Rows of a findings table: severity, rule, where (layer index and diff id, path:line), match. */
export function secretFindingRows(findings: readonly SecretFinding[]): string[][] {
  const rows = [['SEVERITY', 'RULE', 'WHERE', 'MATCH']];
  for (const f of findings) {
    const where =
      f.where === 'layer'
        ? `layer ${f.layer} (${(f.diffId ?? '').replace(/^sha256:/, '').slice(0, 12)}) ${f.path}:${f.line}${f.deleted ? ' (deleted later)' : ''}`
        : f.where === 'history'
          ? `history ${f.layer}`
          : `${f.where} ${f.path}`;
    rows.push([f.severity, f.rule, where, f.match]);
  }
  return rows;
}

/** The findings as a plain-text table (columns padded), or "no secrets found". */
export function formatSecretFindings(findings: readonly SecretFinding[], format: 'table' | 'json' = 'table'): string {
  if (format === 'json') return `${JSON.stringify({ secrets: findings }, null, 2)}\n`;
  if (findings.length === 0) return 'no secrets found\n';
  return `${padRows(secretFindingRows(findings))}\n`;
}

/** Rows as text columns, each padded to its widest cell, two spaces apart (the last one not padded). */
export function padRows(rows: readonly string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}
