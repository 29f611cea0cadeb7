/**
 * HTTP for the registry client, on node:http/https: keep-alive agents per host (with that host's
 * TLS settings), a stall watchdog on every request and response body, redirects that never
 * carry Authorization to another host, and retries with backoff on 5xx, 429 (Retry-After) and
 * dropped connections. Errors are KilnErrors that name the host and say what to do; they never
 * contain a request header.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { Transform, type Readable } from 'node:stream';
import { KilnError, isKilnError, retryable } from '../errors.js';
import { certificateError, hostTls, isCertificateError } from './tls.js';
import type { ClientOptions } from './types.js';

export type RequestBody = Buffer | (() => AsyncIterable<Buffer>);

export interface RequestSpec {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A Buffer, or a function that opens the body afresh (so a retry can send it again). */
  body?: RequestBody;
  /** Sent only to `url`'s host: a redirect to another host drops it. */
  authorization?: string;
  /** Follow 301/302/303/307/308 (GET and HEAD). Default true. */
  followRedirects?: boolean;
  /** Retry 5xx, 429 and dropped connections. Default true. */
  retry?: boolean;
}

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  /** Where the response came from (after redirects). */
  url: URL;
  /** The body; read it or call `discard()`. Errors are KilnErrors (dropped, stalled). */
  body: Readable;
  discard(): void;
}

export type TransportOptions = Pick<ClientOptions, 'insecureRegistries' | 'certsDir' | 'stallTimeoutMs' | 'attempts' | 'backoffMs' | 'signal'>;

/** Writes `chunk`, waiting for 'drain' (or 'close') when the stream's buffer is full. */
export async function writeWithBackpressure(stream: NodeJS.WritableStream & { destroyed: boolean; off(e: string, f: () => void): unknown }, chunk: Buffer): Promise<void> {
  if (stream.write(chunk) || stream.destroyed) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

const MAX_REDIRECTS = 5;
const MAX_BACKOFF_MS = 10_000;
const MAX_RETRY_AFTER_MS = 60_000;

/** Sleeps `ms`, or rejects with a cancelled KilnError when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function cancelled(): KilnError {
  return new KilnError('the registry operation was cancelled', { code: 'cancelled' });
}

/** Retry-After (seconds or an HTTP date) in ms, undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/** A network failure talking to `host` as a KilnError: what happened and what to check. */
export function networkError(e: unknown, host: string, certsDir?: string): KilnError {
  if (isKilnError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError' || err?.code === 'ABORT_ERR') return cancelled();
  if (isCertificateError(e)) return certificateError(host, err, certsDir);
  const code = err?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return new KilnError(`cannot connect to ${host}: connection refused`, { code: 'unavailable', cause: e, hint: `check that a registry runs at ${host} (host and port)` });
    case 'ENOTFOUND':
      return new KilnError(`cannot resolve the registry host ${host}`, { code: 'not-found', cause: e, hint: `check the host name ${host} (and the DNS settings)` });
    case 'EAI_AGAIN':
      return new KilnError(`cannot resolve the registry host ${host} (DNS did not answer)`, { code: 'unavailable', cause: e, hint: 'check the network and DNS settings' });
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return new KilnError(`cannot reach ${host} (${code === 'ETIMEDOUT' ? 'timed out' : 'unreachable'})`, { code: 'unavailable', cause: e, hint: `check the network and the host ${host}` });
    default:
      break;
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED' || code === 'ERR_STREAM_PREMATURE_CLOSE' || /socket hang up|aborted|premature close/i.test(err?.message ?? '')) {
    return new KilnError(`the connection to ${host} was dropped`, { code: 'unavailable', cause: e });
  }
  if (typeof code === 'string' && (code.startsWith('ERR_SSL') || code === 'EPROTO' || code.startsWith('ERR_TLS'))) {
    return new KilnError(`TLS with ${host} failed (${err.message})`, {
      code: 'failed',
      cause: e,
      hint: `if ${host} speaks plain HTTP, use --insecure-registry ${host}; if it needs a client certificate, put client.cert and client.key in ${certsDir ?? '/etc/docker/certs.d'}/${host}/`,
    });
  }
  return new KilnError(`talking to ${host} failed: ${err?.message ?? String(e)}`, { code: 'unavailable', cause: e });
}

function stalled(host: string, ms: number): KilnError {
  return new KilnError(`${host} sent nothing for ${ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`}`, { code: 'unavailable', hint: 'the registry or the network stalled; try again' });
}

/** Reads a whole body, failing with a KilnError past `limit` bytes. */
export async function readBody(res: Response, limit: number, what: () => string): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    res.discard();
    throw new KilnError(`${what()} is ${declared} bytes, over the limit of ${limit}`, { code: 'invalid' });
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.body.destroy();
      throw new KilnError(`${what()} is over the limit of ${limit} bytes`, { code: 'invalid' });
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export class Transport {
  private readonly agents = new Map<string, http.Agent>();
  readonly stallTimeoutMs: number;
  readonly attempts: number;
  readonly backoffMs: number;

  constructor(readonly options: TransportOptions = {}) {
    this.stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
    this.attempts = Math.max(1, options.attempts ?? 5);
    this.backoffMs = options.backoffMs ?? 500;
  }

  get signal(): AbortSignal | undefined {
    return this.options.signal;
  }

  /** Whether TLS to `host` is verified (false for --insecure-registry hosts). */
  isInsecure(host: string): boolean {
    return (this.options.insecureRegistries ?? []).includes(host);
  }

  private agent(url: URL): http.Agent {
    const key = `${url.protocol}//${url.host}`;
    let a = this.agents.get(key);
    if (!a) {
      if (url.protocol === 'https:') {
        const t = hostTls(url.host, { certsDir: this.options.certsDir, insecure: this.isInsecure(url.host) });
        a = new https.Agent({ keepAlive: true, maxSockets: 16, ...t });
      } else {
        a = new http.Agent({ keepAlive: true, maxSockets: 16 });
      }
      this.agents.set(key, a);
    }
    return a;
  }

  /** The delay before retry number `n` (1-based). */
  backoff(n: number, retryAfter?: number): number {
    if (retryAfter !== undefined) return retryAfter;
    return Math.min(this.backoffMs * 2 ** (n - 1), MAX_BACKOFF_MS);
  }

  /**
   * One request with retries: a dropped connection, a stall, 5xx or 429 is tried again (up to
   * `attempts` in all); after the last attempt a 5xx/429 response is returned for the caller to
   * report, a network failure thrown.
   */
  async request(spec: RequestSpec): Promise<Response> {
    const retry = spec.retry ?? true;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await this.send(spec);
      } catch (e) {
        if (this.signal?.aborted) throw cancelled();
        const err = networkError(e, spec.url.host, this.options.certsDir);
        if (!retry || attempt >= this.attempts || !retryable(err) || this.signal?.aborted) throw err;
        await sleep(this.backoff(attempt), this.signal);
        continue;
      }
      const again = res.status >= 500 || res.status === 429;
      if (!again || !retry || attempt >= this.attempts) return res;
      res.discard();
      await sleep(this.backoff(attempt, retryAfterMs(res.headers['retry-after'])), this.signal);
    }
  }

  /** One attempt, following redirects. */
  async send(spec: RequestSpec): Promise<Response> {
    const follow = spec.followRedirects ?? (spec.method === 'GET' || spec.method === 'HEAD');
    let url = spec.url;
    for (let hop = 0; ; hop++) {
      // credentials belong to the host they were given for
      const authorization = url.host === spec.url.host && url.protocol === spec.url.protocol ? spec.authorization : undefined;
      const res = await this.once({ ...spec, url, authorization });
      const loc = res.headers.location;
      if (!follow || ![301, 302, 303, 307, 308].includes(res.status) || !loc) return res;
      res.discard();
      if (hop >= MAX_REDIRECTS) throw new KilnError(`${spec.url.host} redirected more than ${MAX_REDIRECTS} times for ${spec.url.pathname}`, { code: 'failed' });
      const next = new URL(loc, url);
      if (next.protocol === 'http:' && url.protocol === 'https:' && !this.isInsecure(next.host)) {
        throw new KilnError(`${url.host} redirected ${spec.url.pathname} to plain HTTP (${next.host})`, { code: 'denied', hint: `kiln follows a redirect to http only for --insecure-registry hosts` });
      }
      url = next;
    }
  }

  private once(spec: RequestSpec & { authorization?: string }): Promise<Response> {
    const { url } = spec;
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { 'user-agent': 'kiln', ...spec.headers };
    if (spec.authorization) headers.authorization = spec.authorization;
    if (Buffer.isBuffer(spec.body)) headers['content-length'] = String(spec.body.length);
    else if (!spec.body && !['GET', 'HEAD', 'DELETE'].includes(spec.method)) headers['content-length'] = '0';
    const stallMs = this.stallTimeoutMs;
    return new Promise<Response>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const req = mod.request(url, { method: spec.method, headers, agent: this.agent(url), signal: this.signal });
      const fail = (e: unknown) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(e);
        }
      };
      const arm = (onStall: () => void) => {
        clearTimeout(timer);
        timer = setTimeout(onStall, stallMs);
      };
      const stallRequest = () => {
        const e = stalled(url.host, stallMs);
        req.destroy(e);
        fail(e);
      };
      arm(stallRequest);
      req.on('error', fail);
      req.on('response', (res) => {
        settled = true;
        const body = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            arm(stallBody);
            cb(null, chunk);
          },
          flush(cb) {
            clearTimeout(timer);
            cb();
          },
        });
        const stallBody = () => {
          body.destroy(stalled(url.host, stallMs));
          res.destroy();
        };
        arm(stallBody);
        let ended = false;
        res.on('end', () => (ended = true));
        res.on('error', (e) => {
          clearTimeout(timer);
          body.destroy(this.signal?.aborted ? cancelled() : networkError(e, url.host, this.options.certsDir));
        });
        res.on('close', () => {
          if (!ended && !body.destroyed) {
            clearTimeout(timer);
            body.destroy(this.signal?.aborted ? cancelled() : networkError(Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }), url.host));
          }
        });
        body.on('close', () => {
          clearTimeout(timer);
          if (!ended) res.destroy();
        });
        res.pipe(body);
        const discard = () => {
          if (spec.method === 'HEAD') return;
          body.on('error', () => undefined);
          body.resume();
        };
        if (spec.method === 'HEAD') res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, url, body, discard });
      });
      const body = spec.body;
      if (body === undefined) {
        req.end();
      } else if (Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        (async () => {
          for await (const chunk of body()) {
            if (req.destroyed) return;
            arm(stallRequest);
            await writeWithBackpressure(req, chunk);
          }
          req.end();
        })().catch((e) => {
          req.destroy(e as Error);
          fail(e);
        });
      }
    });
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
