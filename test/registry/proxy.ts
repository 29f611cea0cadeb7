/**
 * A fault-injecting HTTP proxy between kiln and a registry, for tests. It forwards every request
 * unchanged (Host included, so the registry's Location headers point back at the proxy) and can,
 * switched at runtime:
 * - drop the connection after N bytes of a blob response body (`dropBlobAfter`),
 * - answer a status (500, 429 with Retry-After, ...) to the next K requests (`failNext`),
 * - stop forwarding a blob response after N bytes, keeping the connection open (`stallBlobAfter`),
 * - flip one byte of a blob response body (`flipBlobByte`),
 * - ignore Range requests (answer 200 with the whole blob) (`ignoreRange`),
 * - redirect blob GETs to another URL (`redirectBlobs`).
 * Every request is recorded (method, path, the headers that matter, the status it got, the
 * response body bytes it forwarded).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
  range?: string;
  contentRange?: string;
  authorization: boolean;
  status?: number;
  /** Response body bytes forwarded to the client (set when the response ended). */
  bytes?: number;
}

export interface FaultProxy {
  /** "ADDR:PORT" to use as the registry host. */
  host: string;
  requests: ProxiedRequest[];
  /** The next `times` blob GETs (or requests `match` picks) lose their connection after `bytes` body bytes. */
  dropBlobAfter(bytes: number, times?: number, match?: Match): void;
  /** The next `times` requests (matching `match`, default all) get `status` with `headers`. */
  failNext(times: number, status?: number, headers?: Record<string, string>, match?: (method: string, path: string) => boolean): void;
  /** The next `times` blob GETs send `bytes` body bytes, then nothing (the connection stays open). */
  stallBlobAfter(bytes: number, times?: number): void;
  /** The next `times` blob GETs have the byte at `offset` flipped. */
  flipBlobByte(offset: number, times?: number): void;
  /** Strip Range from requests (the registry then answers 200 with the whole blob). */
  ignoreRange(on: boolean): void;
  /** Blob GETs answer 307 to `base` + the blob path (undefined: forward them). */
  redirectBlobs(base: string | undefined): void;
  /** Clears every fault. */
  reset(): void;
  stop(): Promise<void>;
}

type Match = (method: string, path: string) => boolean;

const isBlobGet = (method: string, path: string) => method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(path.split('?')[0]);

export interface ProxyOptions {
  listenHost?: string;
  /** Location headers of responses point at this host instead (uploads continuing elsewhere). */
  locationHost?: string;
  /** Forwarded requests carry this Authorization (a backend that authorizes its own URLs). */
  authorization?: string;
}

export async function startProxy(target: string, opts: ProxyOptions = {}): Promise<FaultProxy> {
  const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const requests: ProxiedRequest[] = [];
  let drop: { bytes: number; times: number; match?: Match } = { bytes: 0, times: 0 };
  let stall = { bytes: 0, times: 0 };
  let flip = { offset: 0, times: 0 };
  let fail: { times: number; status: number; headers: Record<string, string>; match?: (m: string, p: string) => boolean } = { times: 0, status: 500, headers: {} };
  let stripRange = false;
  let redirect: string | undefined;
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const rec: ProxiedRequest = { method, path, range: req.headers.range, contentRange: req.headers['content-range'], authorization: !!req.headers.authorization };
    requests.push(rec);
    if (fail.times > 0 && (!fail.match || fail.match(method, path))) {
      fail.times--;
      rec.status = fail.status;
      req.resume();
      res.writeHead(fail.status, { 'content-type': 'application/json', ...fail.headers });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'injected by the test proxy' }] }));
      return;
    }
    const blob = isBlobGet(method, path);
    if (blob && redirect) {
      rec.status = 307;
      req.resume();
      res.writeHead(307, { location: `${redirect}${path}` });
      res.end();
      return;
    }
    const headers = { ...req.headers };
    if (stripRange) delete headers.range;
    if (opts.authorization) headers.authorization = opts.authorization;
    const up = http.request({ host: targetHost, port: targetPort, method, path, headers, agent: false }, (ur) => {
      rec.status = ur.statusCode;
      const loc = ur.headers.location;
      if (opts.locationHost && loc) {
        const u = new URL(loc, 'http://x');
        ur.headers.location = `http://${opts.locationHost}${u.pathname}${u.search}`;
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      const dropNow = (drop.match ? drop.match(method, path) : blob) && drop.times > 0 ? (drop.times--, drop.bytes) : undefined;
      const stallNow = blob && stall.times > 0 ? (stall.times--, stall.bytes) : undefined;
      const flipNow = blob && flip.times > 0 ? (flip.times--, flip.offset) : undefined;
      let sent = 0;
      ur.on('data', (chunk: Buffer) => {
        let c = chunk;
        if (flipNow !== undefined && flipNow >= sent && flipNow < sent + c.length) {
          c = Buffer.from(c);
          c[flipNow - sent] ^= 0x01;
        }
        const limit = dropNow ?? stallNow;
        if (limit !== undefined && sent + c.length >= limit) {
          res.write(c.subarray(0, Math.max(0, limit - sent)));
          sent = limit;
          ur.destroy();
          if (dropNow !== undefined) {
            // let the bytes go out, then cut the connection
            setTimeout(() => res.socket?.destroy(), 20);
          }
          return;
        }
        sent += c.length;
        res.write(c);
      });
      ur.on('end', () => {
        rec.bytes = sent;
        res.end();
      });
      ur.on('error', () => res.socket?.destroy());
    });
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const listenHost = opts.listenHost ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, listenHost, resolve));
  const port = (server.address() as AddressInfo).port;
  const reset = () => {
    drop = { bytes: 0, times: 0 };
    stall = { bytes: 0, times: 0 };
    flip = { offset: 0, times: 0 };
    fail = { times: 0, status: 500, headers: {} };
    stripRange = false;
    redirect = undefined;
  };
  return {
    host: `${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`,
    requests,
    dropBlobAfter: (bytes, times = 1, match) => (drop = { bytes, times, match }),
    failNext: (times, status = 500, headers = {}, match) => (fail = { times, status, headers, match }),
    stallBlobAfter: (bytes, times = 1) => (stall = { bytes, times }),
    flipBlobByte: (offset, times = 1) => (flip = { offset, times }),
    ignoreRange: (on) => (stripRange = on),
    redirectBlobs: (base) => (redirect = base),
    reset,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
