/**
 * Credentials as docker keeps them, read and written the way the docker CLI does, so `kiln login`
 * and `docker login` share one set:
 *
 * - `$DOCKER_CONFIG/config.json` (default ~/.docker/config.json): `auths` maps a registry key to
 *   `{ "auth": base64("user:password") }` (or `identitytoken`, an OAuth2 refresh token);
 * - `credsStore`: a credential helper (`docker-credential-<name>`) that holds every host's
 *   credentials instead of the file;
 * - `credHelpers`: a helper per host, which wins over `credsStore`.
 *
 * Keys: Docker Hub is `https://index.docker.io/v1/`, every other registry its `host[:port]`;
 * reading also matches the older forms docker wrote (`https://host`, `http://host`, `host/v1/`).
 *
 * Helpers speak the docker-credential-helpers protocol: `get` reads the server URL on stdin and
 * prints `{"ServerURL","Username","Secret"}` (Username `<token>`: Secret is an identity token),
 * or "credentials not found" with exit status 1; `store` reads that JSON on stdin; `erase` reads
 * the server URL. A secret is only ever written to a helper's stdin or the 0600 config file, never
 * into an argument, a message or a log.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KilnError, isKilnError } from '../errors.js';
import type { CredentialStore, Credentials } from './types.js';

/** The docker config directory: DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(): string {
  return process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
}

const HUB_KEY = 'https://index.docker.io/v1/';
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The registry host a config key, a login argument or a URL names, as kiln names registries:
 * scheme and path dropped, lower-cased, Docker Hub's names and URLs all "docker.io".
 * "https://index.docker.io/v1/" → "docker.io", "http://LocalHost:5000/v2/" → "localhost:5000".
 */
export function registryHostname(address: string): string {
  const bare = address
    .trim()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .split('/')[0]
    .toLowerCase();
  return HUB_ALIASES.has(bare) ? 'docker.io' : bare;
}

/** The key docker's config.json (and its helpers) file a host under: Docker Hub has a legacy URL. */
export function configKey(host: string): string {
  const h = registryHostname(host);
  return h === 'docker.io' ? HUB_KEY : h;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** The value under the key of `map` that names `host` (the exact key first, then docker's older forms). */
function lookup<T>(map: Record<string, T> | undefined, host: string): { key: string; value: T } | undefined {
  if (!map || typeof map !== 'object') return undefined;
  const key = configKey(host);
  if (Object.hasOwn(map, key)) return { key, value: map[key] };
  const want = registryHostname(host);
  for (const k of Object.keys(map)) if (registryHostname(k) === want) return { key: k, value: map[k] };
  return undefined;
}

/** Every key of `map` that names `host`. */
function keysFor(map: Record<string, unknown>, host: string): string[] {
  const want = registryHostname(host);
  return Object.keys(map).filter((k) => registryHostname(k) === want);
}

/** How long a credential helper may take by default (it may ask a keychain that asks the user). */
const HELPER_TIMEOUT_MS = 120_000;

interface HelperResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface HelperCall {
  helper: string;
  action: 'get' | 'store' | 'erase';
  input: string;
  /** The registry it is for, and the config file that names the helper: for messages. */
  host: string;
  file: string;
  timeoutMs: number;
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin. */
function runHelper(call: HelperCall): Promise<HelperResult> {
  const { helper, action, host, file, timeoutMs } = call;
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    // a hung helper fails now, even if something it started still holds its output open
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(() =>
        reject(
          new KilnError(`credential helper ${program} did not answer "${action}" for ${host} within ${timeoutMs / 1000} s`, {
            code: 'unavailable',
            hint: `check the helper (is its keychain locked?), or remove it from credsStore/credHelpers in ${file}`,
          }),
        ),
      );
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', (err: NodeJS.ErrnoException) =>
      settle(() => {
        if (err.code === 'ENOENT') {
          reject(
            new KilnError(`credential helper ${program} (for ${host}) is not installed: it is not on PATH`, {
              code: 'not-found',
              hint: `install ${program}, or remove it from credsStore/credHelpers in ${file}`,
            }),
          );
        } else reject(new KilnError(`credential helper ${program} (for ${host}) could not be started: ${err.message}`, { code: 'failed', cause: err }));
      }),
    );
    child.on('close', (code, signal) => settle(() => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })));
    // a helper that exits without reading its stdin must not crash kiln with EPIPE
    child.stdin.on('error', () => undefined);
    child.stdin.end(call.input);
  });
}

function notFound(r: HelperResult): boolean {
  return /credentials not found/i.test(r.stdout) || /credentials not found/i.test(r.stderr);
}

/** A helper's failure, its own words included with every secret blanked out. */
function helperFailure(helper: string, action: string, host: string, file: string, r: HelperResult, secrets: (string | undefined)[]): KilnError {
  let said = (r.stdout.trim() || r.stderr.trim()).slice(0, 500);
  for (const s of secrets) if (s) said = said.split(s).join('***');
  return new KilnError(`credential helper docker-credential-${helper} failed to ${action} credentials for ${host} (exit status ${r.code})${said ? `: ${said}` : ''}`, {
    code: 'failed',
    hint: `run "echo ${configKey(host)} | docker-credential-${helper} get" to check the helper, or remove it from credsStore/credHelpers in ${file}`,
  });
}

/** Where a host's credentials go: a helper, or the config file itself. */
export interface CredentialLocation {
  /** The helper's name (docker-credential-<helper>), when one holds this host's credentials. */
  helper?: string;
  /** The config.json consulted (and written when there is no helper). */
  file: string;
}

export interface DockerCredentialsOptions {
  /** A credential helper that has not answered after this long is stopped (an error). Default 120 s. */
  helperTimeoutMs?: number;
}

/** docker's config.json, its credsStore and credHelpers, as a CredentialStore. */
export class DockerCredentials implements CredentialStore {
  readonly file: string;
  /** One lookup per host per command: a helper may be slow (a keychain), the client asks often. */
  private readonly cache = new Map<string, Promise<Credentials | undefined>>();

  private readonly helperTimeoutMs: number;

  constructor(
    readonly dir = dockerConfigDir(),
    options: DockerCredentialsOptions = {},
  ) {
    this.file = path.join(dir, 'config.json');
    this.helperTimeoutMs = options.helperTimeoutMs ?? HELPER_TIMEOUT_MS;
  }

  private helper(helper: string, action: HelperCall['action'], input: string, host: string): Promise<HelperResult> {
    return runHelper({ helper, action, input, host, file: this.file, timeoutMs: this.helperTimeoutMs });
  }

  /** The config file as JSON, {} when there is none. */
  private async readRaw(): Promise<Record<string, unknown>> {
    let raw: string;
    try {
      raw = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new KilnError(`cannot read docker's config ${this.file}: ${(err as Error).message}`, { code: 'denied', cause: err });
    }
    if (raw.trim() === '') return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new KilnError(`docker's config ${this.file} is not valid JSON`, { code: 'invalid', hint: 'fix or remove it, then log in again' });
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new KilnError(`docker's config ${this.file} is not a JSON object`, { code: 'invalid', hint: 'fix or remove it, then log in again' });
    return parsed as Record<string, unknown>;
  }

  private async read(): Promise<DockerConfigFile> {
    return (await this.readRaw()) as DockerConfigFile;
  }

  /** The helper configured for `host` (credHelpers, else credsStore), undefined for the file. */
  private helperIn(cfg: DockerConfigFile, host: string): string | undefined {
    const own = lookup(cfg.credHelpers, host)?.value;
    if (typeof own === 'string' && own !== '') return own;
    return typeof cfg.credsStore === 'string' && cfg.credsStore !== '' ? cfg.credsStore : undefined;
  }

  async location(host: string): Promise<CredentialLocation> {
    return { helper: this.helperIn(await this.read(), host), file: this.file };
  }

  get(host: string): Promise<Credentials | undefined> {
    const h = registryHostname(host);
    let found = this.cache.get(h);
    if (!found) {
      found = this.load(h);
      this.cache.set(h, found);
      // a failure is not remembered: the next request asks again
      found.catch(() => this.cache.delete(h));
    }
    return found;
  }

  private async load(host: string): Promise<Credentials | undefined> {
    const cfg = await this.read();
    const helper = this.helperIn(cfg, host);
    if (helper) return this.helperGet(helper, host);
    const entry = lookup(cfg.auths, host);
    return entry ? this.decode(entry.key, entry.value) : undefined;
  }

  private decode(key: string, entry: AuthEntry): Credentials | undefined {
    if (!entry || typeof entry !== 'object') return undefined;
    const out: Credentials = {};
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      const text = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = text.indexOf(':');
      if (colon < 0) {
        throw new KilnError(`the "auth" of ${key} in ${this.file} is not base64 of "user:password"`, { code: 'invalid', hint: `log in to ${registryHostname(key)} again, or remove that entry` });
      }
      out.username = text.slice(0, colon);
      out.password = text.slice(colon + 1);
    } else if (typeof entry.username === 'string' && entry.username !== '') {
      out.username = entry.username;
      if (typeof entry.password === 'string') out.password = entry.password;
    }
    if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') out.identityToken = entry.identitytoken;
    return out.username !== undefined || out.identityToken !== undefined ? out : undefined;
  }

  private async helperGet(helper: string, host: string): Promise<Credentials | undefined> {
    const r = await this.helper(helper, 'get', configKey(host), host);
    if (r.code !== 0) {
      if (notFound(r)) return undefined;
      throw helperFailure(helper, 'get', host, this.file, r, []);
    }
    let reply: { Username?: unknown; Secret?: unknown };
    try {
      reply = JSON.parse(r.stdout) as typeof reply;
    } catch {
      // its output may be the secret itself: never shown
      throw new KilnError(`credential helper docker-credential-${helper} answered "get" for ${host} with something that is not JSON`, {
        code: 'failed',
        hint: 'a helper prints {"ServerURL":…,"Username":…,"Secret":…}; check its version',
      });
    }
    const username = typeof reply.Username === 'string' ? reply.Username : '';
    const secret = typeof reply.Secret === 'string' ? reply.Secret : '';
    if (username === '' && secret === '') return undefined;
    if (username === '<token>') return { identityToken: secret };
    return { username, password: secret };
  }

  async store(host: string, credentials: Credentials): Promise<void> {
    const key = configKey(host);
    const h = registryHostname(host);
    const raw = await this.readRaw();
    const auths = authsOf(raw);
    const helper = this.helperIn(raw as DockerConfigFile, h);
    const { username = '', password = '', identityToken } = credentials;
    if (helper) {
      const payload = identityToken ? { ServerURL: key, Username: '<token>', Secret: identityToken } : { ServerURL: key, Username: username, Secret: password };
      const r = await this.helper(helper, 'store', JSON.stringify(payload), h);
      if (r.code !== 0) throw helperFailure(helper, 'store', h, this.file, r, [password, identityToken]);
      // as docker does: the file keeps an empty entry (and no longer any secret) for the host
      for (const k of keysFor(auths, h)) delete auths[k];
      auths[key] = {};
    } else {
      for (const k of keysFor(auths, h)) delete auths[k];
      const entry: AuthEntry = {};
      if (username !== '' || password !== '') entry.auth = Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
      if (identityToken) entry.identitytoken = identityToken;
      auths[key] = entry;
    }
    raw.auths = auths;
    await this.write(raw);
    this.cache.delete(h);
  }

  async erase(host: string): Promise<boolean> {
    const h = registryHostname(host);
    const raw = await this.readRaw();
    const helper = this.helperIn(raw as DockerConfigFile, h);
    let erased = false;
    if (helper) {
      const r = await this.helper(helper, 'erase', configKey(h), h);
      if (r.code === 0) erased = true;
      else if (!notFound(r)) throw helperFailure(helper, 'erase', h, this.file, r, []);
    }
    const auths = authsOf(raw);
    const keys = keysFor(auths, h);
    if (keys.length > 0) {
      // an empty entry (credentials in a helper) is not a login of its own
      erased ||= keys.some((k) => this.decodeQuietly(k, auths[k] as AuthEntry) !== undefined);
      for (const k of keys) delete auths[k];
      raw.auths = auths;
      await this.write(raw);
    }
    this.cache.delete(h);
    return erased;
  }

  private decodeQuietly(key: string, entry: AuthEntry): Credentials | undefined {
    try {
      return this.decode(key, entry);
    } catch (err) {
      if (isKilnError(err)) return { username: '' };
      throw err;
    }
  }

  /**
   * Replaces config.json atomically (a temp file beside it, then rename), mode 0600, every key
   * other than the ones changed kept as it was. A symlinked config.json is written where it points.
   */
  private async write(cfg: Record<string, unknown>): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const target = await fs.realpath(this.file).catch(() => this.file);
    const temp = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const handle = await fs.open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(cfg, null, '\t')}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, target);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw new KilnError(`cannot write docker's config ${target}: ${(err as Error).message}`, { code: 'denied', cause: err, hint: 'check the permissions of the directory (or set DOCKER_CONFIG)' });
    }
  }
}

/** The file's `auths` object (a new one when it has none). */
function authsOf(raw: Record<string, unknown>): Record<string, unknown> {
  const a = raw.auths;
  return a && typeof a === 'object' && !Array.isArray(a) ? (a as Record<string, unknown>) : {};
}

/** docker's credentials ($DOCKER_CONFIG or ~/.docker). */
export function dockerCredentials(dir = dockerConfigDir(), options: DockerCredentialsOptions = {}): DockerCredentials {
  return new DockerCredentials(dir, options);
}

/** A store that holds `credentials` for `host` only (kiln login tries them before storing them). */
export function fixedCredentials(host: string, credentials: Credentials): CredentialStore {
  const h = registryHostname(host);
  return {
    get: async (asked: string) => (registryHostname(asked) === h ? credentials : undefined),
    store: async () => undefined,
    erase: async () => false,
  };
}
