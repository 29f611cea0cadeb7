/**
 * HTTP(S) requests for the few places kiln fetches something (ADD <url>). Certificates from
 * KILN_EXTRA_CA_CERTS (what bin/kiln moves NODE_EXTRA_CA_CERTS to, so that node does not
 * parse the bundle at every start-up) are added to node's built-in roots here, on first use.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { VERSION } from './version.js';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

let extraCA: string[] | undefined;

/** Node's built-in roots and KILN_EXTRA_CA_CERTS's, when that is set (else undefined: the defaults). */
export function caList(): string[] | undefined {
  const file = process.env.KILN_EXTRA_CA_CERTS;
  if (!file) return undefined;
  if (extraCA === undefined) {
    let extra = '';
    try {
      extra = readFileSync(file, 'utf8');
    } catch (e) {
      // node itself only warns about an unreadable NODE_EXTRA_CA_CERTS; so does kiln
      process.stderr.write(`warning: cannot read extra CA certificates from ${file}: ${(e as Error).message}\n`);
    }
    extraCA = [...tls.rootCertificates, extra];
  }
  return extraCA;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** What kiln says it is in the requests it makes. */
export const USER_AGENT = `kiln/${VERSION}`;

/** GETs `url`, following up to 10 redirects; the final response whatever its status. */
export async function httpGet(url: string, redirects = 10): Promise<HttpResponse> {
  const res = await httpRequest(url, { redirects });
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return { status: res.status, headers: res.headers, body: Buffer.concat(chunks) };
}

export interface HttpRequestOptions {
  /** Extra request headers (conditional ones: If-None-Match, If-Modified-Since). */
  headers?: Record<string, string>;
  redirects?: number;
  signal?: AbortSignal;
}

/** A response whose body is still to be read (or destroyed); `url` is where the redirects ended. */
export interface HttpStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  url: string;
}

/** GETs `url` with kiln's User-Agent and `headers`, following redirects; the body is streamed. */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpStream> {
  const redirects = options.redirects ?? 10;
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new Error(`invalid URL ${url}`));
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      reject(new Error(`unsupported URL scheme ${u.protocol}`));
      return;
    }
    const onResponse = (res: http.IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      if (REDIRECTS.has(status) && res.headers.location) {
        res.resume();
        if (redirects <= 0) {
          reject(new Error('too many redirects'));
          return;
        }
        httpRequest(new URL(res.headers.location, u).toString(), { ...options, redirects: redirects - 1 }).then(resolve, reject);
        return;
      }
      resolve({ status, headers: res.headers, body: res, url: u.toString() });
    };
    const headers = { 'user-agent': USER_AGENT, ...options.headers };
    const req = u.protocol === 'https:' ? https.get(u, { ca: caList(), headers, signal: options.signal }, onResponse) : http.get(u, { headers, signal: options.signal }, onResponse);
    req.on('error', reject);
  });
}
