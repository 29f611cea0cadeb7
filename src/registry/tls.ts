/**
 * Which hosts may be spoken to without TLS, and the TLS settings for each host: node's and the
 * system's CAs plus docker's per-host certs.d directory (<certsDir>/<host[:port]>/*.crt as extra CAs,
 * client.cert/client.key — or any NAME.cert with NAME.key — as the client certificate).
 */
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { KilnError } from '../errors.js';

export const DEFAULT_CERTS_DIR = '/etc/docker/certs.d';

/** "localhost", "127.0.0.0/8" and "::1", with or without a port. */
export function isLoopback(host: string): boolean {
  const name = hostName(host);
  if (name === 'localhost') return true;
  if (net.isIPv4(name)) return name.startsWith('127.');
  return name === '::1';
}

/** The host without its port ("[::1]:5000" → "::1"). */
export function hostName(host: string): string {
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracket) return bracket[1];
  const i = host.lastIndexOf(':');
  return i > 0 && host.indexOf(':') === i ? host.slice(0, i) : host;
}

export interface HostTls {
  ca?: Array<string | Buffer>;
  cert?: Buffer;
  key?: Buffer;
  /** False for hosts listed as insecure. */
  rejectUnauthorized: boolean;
}

/** TLS options for `host` (as it appears in the URL, with its port when it has one). */
export function hostTls(host: string, options: { certsDir?: string; insecure: boolean }): HostTls {
  const dir = path.join(options.certsDir ?? DEFAULT_CERTS_DIR, host);
  let names: string[] = [];
  try {
    names = readdirSync(dir).sort();
  } catch {
    // no per-host directory: the system CAs only
  }
  const out: HostTls = { rejectUnauthorized: !options.insecure };
  const extra = names.filter((n) => n.endsWith('.crt')).map((n) => readFileSync(path.join(dir, n)));
  const system = systemCertificates();
  if (extra.length || system.length) out.ca = [...tls.rootCertificates, ...system, ...extra];
  const cert = names.find((n) => n.endsWith('.cert'));
  if (cert) {
    const keyName = `${cert.slice(0, -'.cert'.length)}.key`;
    if (!names.includes(keyName)) {
      throw new KilnError(`${path.join(dir, cert)} has no matching ${keyName}`, { code: 'invalid', hint: `put the client certificate's key beside it as ${path.join(dir, keyName)}` });
    }
    out.cert = readFileSync(path.join(dir, cert));
    out.key = readFileSync(path.join(dir, keyName));
  }
  return out;
}

/** Where distributions keep the system's CA bundle (Debian, Fedora/RHEL, Alpine/macOS). */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

/**
 * The system's CAs (node itself trusts only its bundled Mozilla list): $SSL_CERT_FILE, else the
 * distribution's bundle, plus $NODE_EXTRA_CA_CERTS (which an explicit CA list would otherwise drop).
 */
export function systemCertificates(env: NodeJS.ProcessEnv = process.env): Buffer[] {
  const read = (f: string | undefined): Buffer | undefined => {
    if (!f) return undefined;
    try {
      return readFileSync(f);
    } catch {
      return undefined;
    }
  };
  const bundle = env.SSL_CERT_FILE ? read(env.SSL_CERT_FILE) : SYSTEM_BUNDLES.map(read).find((b) => b !== undefined);
  const out: Buffer[] = [];
  for (const b of [bundle, read(env.NODE_EXTRA_CA_CERTS)]) if (b) out.push(b);
  return out;
}

const CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'INVALID_CA', 'HOSTNAME_MISMATCH',
]);

/** Whether `e` is a certificate verification failure. */
export function isCertificateError(e: unknown): boolean {
  return e instanceof Error && CERT_CODES.has(String((e as NodeJS.ErrnoException).code));
}

/** Whether `e` says the other side does not speak TLS (a plain-HTTP server answered the handshake). */
export function isNotTls(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = String((e as NodeJS.ErrnoException).code);
  return code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long|unknown protocol|http request/i.test(e.message);
}

/** A certificate problem as a KilnError that says which host and what to do. */
export function certificateError(host: string, e: Error, certsDir = DEFAULT_CERTS_DIR): KilnError {
  const reason = e.message.replace(/^Error: /, '');
  return new KilnError(`TLS: cannot verify the certificate of ${host} (${reason})`, {
    code: 'failed',
    cause: e,
    hint: `add the CA that signed it as ${path.join(certsDir, host, 'ca.crt')}, or, on a trusted network only, use --insecure-registry ${host}`,
  });
}
