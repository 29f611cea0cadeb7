/**
 * The docker engine exporter (`kiln build --load`, buildx's `type=docker` without dest): the
 * image streamed as a docker archive to the engine's API, `POST /images/load`, on its unix
 * socket or TCP address (`DOCKER_HOST`, default unix:///var/run/docker.sock). Nothing is
 * written to disk on the way. An index of several platforms goes as an OCI archive, and only
 * to an engine whose image store keeps indexes (the containerd image store); any other
 * engine is told clearly, before anything is sent.
 */
import http from 'node:http';
import { KilnError, isErrnoError } from '../errors.js';
import { dockerArchiveExporter } from './docker-archive.js';
import { platformManifests } from './filesystem.js';
import { ociArchiveExporter } from './oci-archive.js';
import type { ExportContext, Exporter, ExportSource } from './types.js';

export interface DockerEngineOptions {
  /** The engine's address: unix:///PATH or tcp://HOST:PORT (default: $DOCKER_HOST, else the standard socket). */
  host?: string;
}

type Endpoint = { socketPath: string } | { host: string; port: number };

const DEFAULT_HOST = 'unix:///var/run/docker.sock';

/** DOCKER_HOST → where to connect; anything but unix:// and tcp:// is a clear error. */
export function dockerEndpoint(host: string = process.env.DOCKER_HOST || DEFAULT_HOST): { endpoint: Endpoint; shown: string } {
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length);
    if (!socketPath.startsWith('/')) throw new KilnError(`DOCKER_HOST ${host}: the socket path must be absolute`, { code: 'invalid', hint: 'write unix:///var/run/docker.sock' });
    return { endpoint: { socketPath }, shown: host };
  }
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(host);
  if (m) {
    if (process.env.DOCKER_TLS_VERIFY) throw new KilnError(`DOCKER_HOST ${host} with DOCKER_TLS_VERIFY: kiln talks to a docker engine over plain TCP only`, { code: 'unsupported', hint: 'unset DOCKER_TLS_VERIFY for a plain endpoint, or use the engine\'s unix socket' });
    return { endpoint: { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2] ?? 2375) }, shown: host };
  }
  throw new KilnError(`DOCKER_HOST "${host}" is not an address kiln can reach`, { code: 'invalid', hint: 'use unix:///PATH/docker.sock or tcp://HOST:PORT' });
}

function unreachable(shown: string, e: unknown): KilnError {
  const code = isErrnoError(e) ? e.code : undefined;
  const why = code === 'ENOENT' ? 'no socket there' : code === 'ECONNREFUSED' ? 'connection refused' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
  return new KilnError(`--load: no docker engine answers at ${shown} (${why})`, {
    code: code === 'EACCES' ? 'denied' : 'unavailable',
    cause: e,
    hint: code === 'EACCES' ? 'run as a user of the docker group, or as root' : 'start the docker engine, set DOCKER_HOST to where it listens, or write the image to a file: -o type=docker,dest=image.tar',
  });
}

/** A small JSON request to the engine (ping, info). */
function request(endpoint: Endpoint, shown: string, method: string, pathname: string, signal?: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...endpoint, method, path: pathname, signal, headers: { host: 'docker' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => reject(unreachable(shown, e)));
    });
    req.on('error', (e) => reject(signal?.aborted ? e : unreachable(shown, e)));
    req.end();
  });
}

/** Whether the engine's image store keeps indexes (the containerd image store). */
async function storesIndexes(endpoint: Endpoint, shown: string, signal?: AbortSignal): Promise<boolean> {
  const info = await request(endpoint, shown, 'GET', '/info', signal);
  if (info.status !== 200) return false;
  const parsed = JSON.parse(info.body) as { DriverStatus?: Array<[string, string]> };
  return (parsed.DriverStatus ?? []).some(([k, v]) => k === 'driver-type' && v === 'io.containerd.snapshotter.v1');
}

/** The engine's reply to a load: a stream of JSON messages, one of which may be an error. */
function loadFailure(status: number, body: string): string | undefined {
  if (status !== 200) {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? `HTTP ${status}`;
    } catch {
      return `HTTP ${status}: ${body.trim().slice(0, 200)}`;
    }
  }
  for (const line of body.split(/\r?\n/)) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
      if (m.error || m.errorDetail) return m.errorDetail?.message ?? m.error;
    } catch {
      // a line that is not JSON is progress text
    }
  }
  return undefined;
}

export function dockerEngineExporter(options: DockerEngineOptions = {}): Exporter {
  return {
    type: 'docker',
    async export(source: ExportSource, context?: ExportContext) {
      const signal = context?.signal;
      const { endpoint, shown } = dockerEndpoint(options.host);
      const ping = await request(endpoint, shown, 'GET', '/_ping', signal);
      if (ping.status !== 200) throw unreachable(shown, new Error(`it answered /_ping with HTTP ${ping.status}`));
      const image = source.images[0];
      if (!image || source.images.length !== 1) throw new KilnError(`--load hands one image to the engine, and this export has ${source.images.length}`, { hint: 'load the images one at a time' });
      const platforms = await platformManifests(source.store, image.descriptor);
      const asIndex = platforms !== undefined;
      if (asIndex && !(await storesIndexes(endpoint, shown, signal))) {
        throw new KilnError(`--load: the docker engine at ${shown} keeps one platform per image, and this build made ${platforms.length} (${platforms.map((p) => p.dir.replace(/_/g, '/')).join(', ')})`, {
          code: 'unsupported',
          hint: 'build one platform (--platform linux/amd64) to load it, enable the containerd image store in the engine, or push the image (--push) / write it to a file (-o type=oci,dest=image.tar)',
        });
      }
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ ...endpoint, method: 'POST', path: '/images/load?quiet=1', signal, headers: { host: 'docker', 'content-type': 'application/x-tar' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', (e) => reject(signal?.aborted ? e : unreachable(shown, e)));
        // the archive exporters write to any stream: the request body is one
        const archive = asIndex ? ociArchiveExporter({ dest: req }) : dockerArchiveExporter({ dest: req });
        archive.export(source, context).catch((e: unknown) => {
          req.destroy();
          reject(e);
        });
      });
      const failure = loadFailure(reply.status, reply.body);
      if (failure) throw new KilnError(`the docker engine at ${shown} refused the image: ${failure}`, { code: 'failed', hint: 'see the engine\'s log (journalctl -u docker) for more' });
      return { type: 'docker', descriptor: image.descriptor, names: [...image.names], dest: shown };
    },
  };
}
