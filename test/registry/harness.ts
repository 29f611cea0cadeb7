/**
 * A real registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, a free
 * port, its own storage dir, deletes enabled. Optionally htpasswd basic auth, token auth (with
 * a token issuer in this process) and TLS (a CA and server certificate made with openssl here).
 *
 *   const reg = await startRegistry({ auth: 'token', users: { alice: 'secret' } });
 *   t.after(() => reg.stop());
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, promises as fs, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/types.js';
import type { RemoteRepository } from '../../src/registry/types.js';
import { keepDaemonForSuite } from '../helpers.js';

export const registryBin = '/usr/bin/docker-registry';

export interface RegistryOptions {
  auth?: 'htpasswd' | 'token';
  tls?: boolean;
  /** Users for htpasswd or the token issuer (user → password). Default { kiln: 'kiln-test-password' }. */
  users?: Record<string, string>;
  /** Token auth: anonymous requests get pull access (like a public repository). Default true. */
  anonymousPull?: boolean;
  /** Token auth: users who get pull access only (push is refused with insufficient_scope). */
  pullOnly?: string[];
  /** TLS: also require a client certificate signed by the test CA. */
  clientCerts?: boolean;
}

export interface TokenRequest {
  method: string;
  /** The user the request authenticated as, undefined when anonymous. */
  user?: string;
  grantType?: string;
  scopes: string[];
  /** Whether an Authorization header came with the request. */
  authorization: boolean;
}

export interface TokenIssuer {
  /** Realm URL the registry sends clients to. */
  realm: string;
  service: string;
  /** Every token request, in order. */
  requests: TokenRequest[];
  /** The next `n` tokens issued are already expired (the registry refuses them): tests refresh-on-401. */
  expireNext(n: number): void;
  /** Refresh tokens handed out by the password grant (access_type=offline), token → user. */
  refreshTokens: Map<string, string>;
}

export interface Registry {
  /** "127.0.0.1:PORT" — the host part of references to it. */
  host: string;
  /** "http://127.0.0.1:PORT" or https. */
  url: string;
  dataDir: string;
  /** TLS: the CA that signed the server certificate (PEM file). */
  caFile?: string;
  /** TLS with clientCerts: a client certificate and key the registry accepts. */
  clientCertFile?: string;
  clientKeyFile?: string;
  /** Token auth: the issuer. */
  tokenIssuer?: TokenIssuer;
  users: Record<string, string>;
  /** Stops the registry (and token issuer) and removes its files. Safe to call twice. */
  stop(): Promise<void>;
}

export function haveRegistry(): boolean {
  return existsSync(registryBin);
}

/** Skips the test (saying why) when docker-registry (or, for auth, htpasswd/openssl) is not installed. */
export function skipUnlessRegistry(t: TestContext, opts: RegistryOptions = {}): boolean {
  const missing: string[] = [];
  if (!haveRegistry()) missing.push(`${registryBin} (apt-get install docker-registry)`);
  if (opts.auth === 'htpasswd' && !onPath('htpasswd')) missing.push('htpasswd (apt-get install apache2-utils)');
  if ((opts.tls || opts.auth === 'token') && !onPath('openssl')) missing.push('openssl');
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')}`;
  console.log(`# skipped: ${reason}`);
  t.skip(reason);
  return true;
}

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** A port nobody listens on right now (the caller binds it next; startRegistry retries on a race). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** A CA and a certificate it signs for `ip` (SAN IP and localhost), as PEM files in `dir`. */
export function makeCertificates(dir: string, ip = '127.0.0.1'): { ca: string; caKey: string; cert: string; key: string; clientCert: string; clientKey: string } {
  const f = (n: string) => path.join(dir, n);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=kiln test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = (name: string, cn: string, ext: string) => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    writeFileSync(f(`${name}.ext`), `[v3]\n${ext}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.${name === 'client' ? 'cert' : 'crt'}`,
      '-days', '2', '-extensions', 'v3', '-extfile', f(`${name}.ext`)], dir);
  };
  leaf('server', 'kiln test registry', `subjectAltName=IP:${ip},DNS:localhost\nextendedKeyUsage=serverAuth`);
  leaf('client', 'kiln test client', 'extendedKeyUsage=clientAuth');
  return { ca: f('ca.crt'), caKey: f('ca.key'), cert: f('server.crt'), key: f('server.key'), clientCert: f('client.cert'), clientKey: f('client.key') };
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** A token server (distribution's token auth protocol) in this process, signing ES256 JWTs with an x5c chain. */
async function startTokenIssuer(dir: string, users: Record<string, string>, anonymousPull: boolean, pullOnly: string[]): Promise<{ issuer: TokenIssuer; certFile: string; issuerName: string; server: http.Server }> {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'token.key', '-out', 'token.crt',
    '-days', '2', '-subj', '/CN=kiln test token issuer'], dir);
  const certFile = path.join(dir, 'token.crt');
  const key = createPrivateKey(await fs.readFile(path.join(dir, 'token.key')));
  const certDer = new X509Certificate(await fs.readFile(certFile)).raw;
  const issuerName = 'kiln-test-issuer';
  const service = 'kiln-test-registry';
  const requests: TokenRequest[] = [];
  const refreshTokens = new Map<string, string>();
  let expiring = 0;

  const jwt = (user: string | undefined, scopes: string[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const expired = expiring > 0;
    if (expired) expiring--;
    const access = scopes.flatMap((s) => {
      const [type, ...rest] = s.split(':');
      const actions = (rest.pop() ?? '').split(',').filter(Boolean);
      const name = rest.join(':');
      const granted = user && !pullOnly.includes(user) ? actions : user || anonymousPull ? actions.filter((a) => a === 'pull') : [];
      return type === 'repository' && granted.length ? [{ type, name, actions: granted }] : [];
    });
    const header = { typ: 'JWT', alg: 'ES256', x5c: [certDer.toString('base64')] };
    // an expired token is past the registry's 60 s leeway
    const exp = expired ? now - 600 : now + 300;
    const claims = { iss: issuerName, sub: user ?? '', aud: service, exp, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const form = req.method === 'POST' ? new URLSearchParams(Buffer.concat(chunks).toString()) : url.searchParams;
      const scopes = form.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const grantType = form.get('grant_type') ?? undefined;
      const deny = (status: number, msg: string) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: msg }));
      };
      let user: string | undefined;
      const authz = req.headers.authorization;
      if (req.method === 'GET' && authz) {
        const m = /^Basic (.+)$/i.exec(authz);
        const [u, ...p] = m ? Buffer.from(m[1], 'base64').toString().split(':') : [];
        if (!u || users[u] !== p.join(':')) {
          requests.push({ method: 'GET', scopes, authorization: true });
          return deny(401, 'invalid credentials');
        }
        user = u;
      } else if (req.method === 'POST') {
        if (grantType === 'refresh_token') {
          user = refreshTokens.get(form.get('refresh_token') ?? '');
          if (!user) {
            requests.push({ method: 'POST', grantType, scopes, authorization: !!authz });
            return deny(401, 'invalid refresh token');
          }
        } else if (grantType === 'password') {
          const u = form.get('username') ?? '';
          if (!u || users[u] !== form.get('password')) {
            requests.push({ method: 'POST', grantType, scopes, authorization: !!authz });
            return deny(401, 'invalid credentials');
          }
          user = u;
        } else {
          return deny(400, 'unsupported grant_type');
        }
      }
      requests.push({ method: req.method ?? 'GET', user, grantType, scopes, authorization: !!authz });
      const token = jwt(user, scopes);
      const body: Record<string, unknown> = { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() };
      if (user && (grantType === 'password' || form.get('access_type') === 'offline')) {
        const rt = randomBytes(16).toString('hex');
        refreshTokens.set(rt, user);
        body.refresh_token = rt;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const issuer: TokenIssuer = {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    requests,
    refreshTokens,
    expireNext: (n) => {
      expiring = n;
    },
  };
  return { issuer, certFile, issuerName, server };
}

function configYaml(o: { port: number; dataDir: string; htpasswd?: string; token?: { realm: string; service: string; issuer: string; bundle: string }; tls?: { cert: string; key: string; clientCa?: string } }): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(o.dataDir)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${o.port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
  if (o.tls) {
    lines.push('  tls:', `    certificate: ${JSON.stringify(o.tls.cert)}`, `    key: ${JSON.stringify(o.tls.key)}`);
    if (o.tls.clientCa) lines.push('    clientcas:', `      - ${JSON.stringify(o.tls.clientCa)}`);
  }
  if (o.htpasswd) lines.push('auth:', '  htpasswd:', '    realm: kiln-test', `    path: ${JSON.stringify(o.htpasswd)}`);
  if (o.token) {
    lines.push('auth:', '  token:', `    realm: ${JSON.stringify(o.token.realm)}`, `    service: ${o.token.service}`, `    issuer: ${o.token.issuer}`,
      `    rootcertbundle: ${JSON.stringify(o.token.bundle)}`);
  }
  return `${lines.join('\n')}\n`;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * A registry outlives no test run: under scripts/run-tests.mjs it is recorded for the runner to
 * stop; otherwise one exit hook kills whatever is still running when this process ends.
 */
function guard(proc: ChildProcess, name: string): void {
  if (proc.pid === undefined) return;
  if (process.env.KILN_TEST_DAEMONS) {
    keepDaemonForSuite(proc.pid, name);
    return;
  }
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const p of live) p.kill('SIGKILL');
    });
  }
}

/** Whether the registry answers /v2/ (any HTTP status: 200 or an auth challenge). */
function answers(url: string, ca?: Buffer, clientCert?: { cert: Buffer; key: Buffer }): Promise<boolean> {
  return new Promise((resolve) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(`${url}/v2/`, { ca, ...clientCert, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/** Starts a registry; stop() it in t.after / finally. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const users = opts.users ?? { kiln: 'kiln-test-password' };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-registry-'));
  const dataDir = path.join(dir, 'data');
  await fs.mkdir(dataDir);
  let tokenServer: http.Server | undefined;
  let child: ChildProcess | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child?.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    if (tokenServer) {
      tokenServer.closeAllConnections();
      await new Promise((r) => tokenServer!.close(r));
    }
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    let htpasswd: string | undefined;
    if (opts.auth === 'htpasswd') {
      htpasswd = path.join(dir, 'htpasswd');
      const lines = Object.entries(users).map(([u, p]) => {
        // the password goes on stdin-free argv of a short-lived local tool: test-only credentials
        const r = spawnSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
        return r.stdout.trim();
      });
      await fs.writeFile(htpasswd, `${lines.join('\n')}\n`);
    }
    let token: { realm: string; service: string; issuer: string; bundle: string } | undefined;
    let tokenIssuer: TokenIssuer | undefined;
    if (opts.auth === 'token') {
      const t = await startTokenIssuer(dir, users, opts.anonymousPull ?? true, opts.pullOnly ?? []);
      tokenServer = t.server;
      tokenIssuer = t.issuer;
      token = { realm: t.issuer.realm, service: t.issuer.service, issuer: t.issuerName, bundle: t.certFile };
    }
    let certs: ReturnType<typeof makeCertificates> | undefined;
    if (opts.tls) certs = makeCertificates(dir);
    const ca = certs ? await fs.readFile(certs.ca) : undefined;
    const clientPair = certs && opts.clientCerts ? { cert: await fs.readFile(certs.clientCert), key: await fs.readFile(certs.clientKey) } : undefined;
    let lastErr = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const config = path.join(dir, 'config.yml');
      await fs.writeFile(config, configYaml({ port, dataDir, htpasswd, token, tls: certs && { cert: certs.cert, key: certs.key, clientCa: opts.clientCerts ? certs.ca : undefined } }));
      let stderr = '';
      const proc = spawn(registryBin, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      proc.stderr!.on('data', (c) => {
        if (stderr.length < 20_000) stderr += String(c);
      });
      guard(proc, `docker-registry :${port}`);
      const url = `${certs ? 'https' : 'http'}://127.0.0.1:${port}`;
      let up = false;
      for (let i = 0; i < 100 && proc.exitCode === null && proc.signalCode === null; i++) {
        if (await answers(url, ca, clientPair)) {
          up = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      if (up) {
        return {
          host: `127.0.0.1:${port}`,
          url,
          dataDir,
          caFile: certs?.ca,
          clientCertFile: certs?.clientCert,
          clientKeyFile: certs?.clientKey,
          tokenIssuer,
          users,
          stop,
        };
      }
      if (proc.exitCode === null) {
        proc.kill('SIGKILL');
        await new Promise((r) => proc.once('exit', r));
      }
      lastErr = stderr;
      // a port taken between freePort and bind: try another
      if (!/address already in use/.test(stderr)) break;
    }
    throw new Error(`docker-registry did not start: ${lastErr.trim().slice(-2000)}`);
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A docker-style certs dir (<dir>/<host>/ca.crt, client.cert, client.key) for a TLS registry. */
export async function certsDirFor(reg: Registry, dir: string, opts: { client?: boolean } = {}): Promise<string> {
  const hostDir = path.join(dir, reg.host);
  await fs.mkdir(hostDir, { recursive: true });
  if (reg.caFile) await fs.copyFile(reg.caFile, path.join(hostDir, 'ca.crt'));
  if (opts.client && reg.clientCertFile && reg.clientKeyFile) {
    await fs.copyFile(reg.clientCertFile, path.join(hostDir, 'client.cert'));
    await fs.copyFile(reg.clientKeyFile, path.join(hostDir, 'client.key'));
  }
  return dir;
}

export interface SeededImage {
  manifest: Buffer;
  digest: string;
  config: Buffer;
  layers: Buffer[];
}

/** Pushes `b` as a blob of `repo` (through the client). */
export function pushBuffer(repo: RemoteRepository, b: Buffer, options?: { chunkSize?: number; mountFrom?: string[] }): ReturnType<RemoteRepository['pushBlob']> {
  return repo.pushBlob(
    { digest: digestOf(b), size: b.length },
    async function* () {
      yield b;
    },
    options,
  );
}

/** Pushes a small OCI image (a config and the given layer bytes) to `repo` under `tag`, through the client. */
export async function seedImage(repo: RemoteRepository, tag: string, layers: Buffer[] = [Buffer.from(`layer of ${tag}`)]): Promise<SeededImage> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => digestOf(l)) } }));
  for (const b of [...layers, config]) await pushBuffer(repo, b);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: MediaType.ociLayerTar, digest: digestOf(l), size: l.length })),
    }),
  );
  const d = await repo.putManifest(tag, { mediaType: MediaType.ociManifest, bytes: manifest });
  return { manifest, digest: d.digest, config, layers };
}
