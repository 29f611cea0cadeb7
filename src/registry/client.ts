/**
 * The distribution API client: RegistryClient finds each host's endpoint (HTTPS; plain HTTP only
 * for loopback and --insecure-registry hosts) and answers its auth challenges; Repository is one
 * repository's API (manifests, blobs, uploads, tags, referrers) over transport.ts. Everything
 * read is verified against its digest; errors name the host, repository and reference.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { KilnError, isKilnError, retryable } from '../errors.js';
import type { Ingester, Provider } from '../oci/content.js';
import { DigestMismatchError, isDigest } from '../oci/digest.js';
import { parseCanonicalReference, type CanonicalReference } from '../oci/reference.js';
import { MediaType, type Descriptor } from '../oci/types.js';
import { Authorizer, credentialsRefused, loginRequired, parseChallenges, pickChallenge, type Challenge } from './auth.js';
import { referrersTag, withReferrer } from './referrers.js';
import { isLoopback, isNotTls } from './tls.js';
import { cancelled, networkError, readBody, retryAfterMs, sleep, Transport, writeWithBackpressure, type RequestBody, type Response } from './transport.js';
import type { ClientOptions, OnProgress, PushBlobResult, RemoteManifest, RemoteRepository } from './types.js';

/** Manifests larger than this are refused (as containerd and distribution do). */
/** Bytes gathered from the network before one write to the store. */
const WRITE_BATCH = 1 << 20;

export const MAX_MANIFEST_BYTES = 4 << 20;
/** Blobs larger than this go up in PATCH chunks of this size (pushBlob's chunkSize). */
export const DEFAULT_CHUNK_SIZE = 16 << 20;

const MANIFEST_TYPES = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList] as string[];
const ACCEPT = MANIFEST_TYPES.join(', ');

/** The host the API lives on: Docker Hub's is registry-1.docker.io. */
export function apiHost(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
}

interface Endpoint {
  base: URL;
  challenge?: Challenge;
}

interface CallSpec {
  method: string;
  /** Path under /v2/ with its query, or an absolute URL (an upload Location). */
  path: string | URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  scopes: string[];
  followRedirects?: boolean;
  retry?: boolean;
}

export class RegistryClient {
  readonly transport: Transport;
  readonly auth: Authorizer;
  private readonly endpoints = new Map<string, Promise<Endpoint>>();

  constructor(readonly options: ClientOptions = {}) {
    this.transport = new Transport(options);
    this.auth = new Authorizer(this.transport, options.credentials);
  }

  /** The repository a reference names (its tag and digest are ignored). */
  repository(ref: CanonicalReference | string): RemoteRepository {
    const r = typeof ref === 'string' ? parseCanonicalReference(ref) : ref;
    return new Repository(this, r.domain, r.path);
  }

  /** Checks that `host` answers the distribution API with the stored credentials (kiln login). */
  async ping(host: string): Promise<void> {
    this.endpoints.delete(host);
    const ep = await this.endpoint(host);
    if (!ep.challenge) return;
    const creds = await this.auth.credentialsFor(host);
    if (!creds) throw loginRequired(host);
    // a token with no scope proves the credentials (as docker login does); basic is tried on /v2/
    const authorization = await this.auth.authorization(host, ep.challenge, []);
    const res = await this.transport.request({ method: 'GET', url: new URL('/v2/', ep.base), authorization });
    res.discard();
    if (res.status === 401) throw credentialsRefused(host);
    if (res.status !== 200) throw statusError(res.status, host, undefined, `${host}/v2/`);
  }

  /** Closes idle connections (a process that exits need not). */
  close(): void {
    this.transport.close();
  }

  /** The scheme and auth challenge of `host`, found once by GET /v2/. */
  endpoint(host: string): Promise<Endpoint> {
    let p = this.endpoints.get(host);
    if (!p) {
      p = this.probe(host);
      this.endpoints.set(host, p);
      p.catch(() => this.endpoints.delete(host));
    }
    return p;
  }

  private async probe(host: string): Promise<Endpoint> {
    const api = apiHost(host);
    const plainAllowed = isLoopback(api) || this.transport.isInsecure(api) || this.transport.isInsecure(host);
    const tryScheme = async (scheme: string): Promise<Endpoint> => {
      const base = new URL(`${scheme}://${api}`);
      const res = await this.transport.request({ method: 'GET', url: new URL('/v2/', base) });
      res.discard();
      if (res.status === 200) return { base };
      if (res.status === 401) {
        const challenge = pickChallenge(parseChallenges(res.headers['www-authenticate']));
        if (!challenge) throw new KilnError(`${host} asks for authentication without saying how (no WWW-Authenticate)`, { code: 'failed' });
        return { base, challenge };
      }
      // some registries answer /v2/ with 404 behind a proxy path; the API may still work
      if (res.status === 404) throw new KilnError(`${host} does not speak the registry API (GET /v2/ answered 404)`, { code: 'not-found', hint: `check that ${host} is a container registry` });
      throw statusError(res.status, host, undefined, `${host}/v2/`);
    };
    try {
      return await tryScheme('https');
    } catch (e) {
      const notTls = isNotTls(e) || isNotTls((e as { cause?: unknown })?.cause);
      if (plainAllowed && notTls) return tryScheme('http');
      if (notTls) {
        throw new KilnError(`${host} does not speak HTTPS`, { code: 'failed', cause: e, hint: `if it is a plain-HTTP registry you trust, use --insecure-registry ${host}` });
      }
      throw e;
    }
  }

  /** A request to `host`'s API, authorized for `scopes`; a 401 gets a fresh token (or the new challenge) once. */
  async call(host: string, spec: CallSpec): Promise<Response> {
    const ep = await this.endpoint(host);
    const url = spec.path instanceof URL ? spec.path : new URL(`/v2/${spec.path}`, ep.base);
    let challenge = ep.challenge;
    for (let round = 0; ; round++) {
      // an upload Location on another host gets no credentials, like a redirect
      const sameHost = url.host === ep.base.host && url.protocol === ep.base.protocol;
      const authorization = sameHost ? await this.auth.authorization(host, challenge, spec.scopes) : undefined;
      const res = await this.transport.request({ ...spec, url, authorization });
      if (res.status !== 401) return res;
      res.discard();
      const fresh = pickChallenge(parseChallenges(res.headers['www-authenticate']));
      if (round >= 1 || !fresh) {
        if (!authorization || !(await this.auth.credentialsFor(host))) throw loginRequired(host, /^repository:(.+):[^:]+$/.exec(spec.scopes[0] ?? '')?.[1]);
        // logged in, but the token does not grant what was asked: the account may not do it
        if (fresh?.params.error === 'insufficient_scope') throw insufficientScope(host, fresh.params.scope || spec.scopes.join(' '));
        throw credentialsRefused(host);
      }
      // the token expired or lacks a scope: ask again (the registry may name the scope it wants)
      this.auth.forget(host);
      challenge = fresh;
      ep.challenge = { scheme: fresh.scheme, params: { ...fresh.params, scope: '' } };
    }
  }
}

function insufficientScope(host: string, scope: string): KilnError {
  const m = /^repository:(.+):([a-z,*]+)$/.exec(scope.split(' ').pop() ?? '');
  const what = m ? `${m[2].split(',').includes('push') ? 'push to' : 'pull from'} ${host}/${m[1]}` : `access ${scope}`;
  return new KilnError(`${host}: denied: the logged-in account may not ${what}`, { code: 'denied', hint: `check the repository name and that the account has access to it (kiln login ${host} to use another)` });
}

/** An error for a registry's non-success answer: what and where, and what to do. */
export function statusError(status: number, host: string, body: { code?: string; message?: string } | undefined, what: string, retryAfter?: number): KilnError {
  const said = body?.message ? `: ${body.message}` : '';
  switch (true) {
    case status === 401:
      return loginRequired(host);
    case status === 403:
      return new KilnError(`${host}: access to ${what} denied${said}`, { code: 'denied', hint: `check that your account may do this on ${host} (kiln login ${host})` });
    case status === 404 || body?.code === 'NAME_UNKNOWN' || body?.code === 'MANIFEST_UNKNOWN' || body?.code === 'BLOB_UNKNOWN':
      return new KilnError(`${what} not found${body?.code === 'NAME_UNKNOWN' && !what.startsWith('repository') ? ' (no such repository)' : ''}`, { code: 'not-found', hint: 'check the name, tag and digest' });
    case status === 429:
      return new KilnError(`${host} is rate-limiting requests (429)${said}`, { code: 'resource-exhausted', retryAfterMs: retryAfter, hint: 'wait and try again, or log in for a higher limit' });
    case status >= 500:
      return new KilnError(`${host} failed (${status}) for ${what}${said}`, { code: 'unavailable', hint: 'the registry has a problem; try again later' });
    default:
      return new KilnError(`${host} refused ${what} (${status}${body?.code ? ` ${body.code}` : ''})${said}`, { code: 'invalid' });
  }
}

/** The first error a registry's JSON body names ({errors:[{code,message}]}), if any. */
async function errorBody(res: Response): Promise<{ code?: string; message?: string } | undefined> {
  try {
    const text = (await readBody(res, 64 << 10, () => 'the error')).toString('utf8');
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    return parsed.errors?.[0];
  } catch {
    return undefined;
  }
}

function header(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function mediaTypeOf(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0].trim() || undefined;
}

class Repository implements RemoteRepository {
  private readonly pull: string[];
  private readonly push: string[];

  constructor(
    private readonly client: RegistryClient,
    readonly host: string,
    readonly name: string,
  ) {
    this.pull = [`repository:${name}:pull`];
    this.push = [`repository:${name}:pull,push`];
  }

  private get opts(): ClientOptions {
    return this.client.options;
  }

  private where(ref?: string): string {
    if (!ref) return `${this.host}/${this.name}`;
    return `${this.host}/${this.name}${isDigest(ref) ? '@' : ':'}${ref}`;
  }

  private async fail(res: Response, what: string): Promise<never> {
    const body = res.status === 401 ? undefined : await errorBody(res);
    throw statusError(res.status, this.host, body, what, retryAfterMs(res.headers['retry-after']));
  }

  /** A small 200 body (a manifest, a tag list), the request made again when the body is cut off. */
  private async getBody(spec: CallSpec, limit: number, what: string): Promise<{ res: Response; bytes: Buffer }> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.client.call(this.host, spec);
      if (res.status !== 200) return this.fail(res, what);
      try {
        return { res, bytes: await readBody(res, limit, () => what) };
      } catch (e) {
        if (!retryable(e) || attempt >= this.client.transport.attempts || this.opts.signal?.aborted) throw e;
        await sleep(this.client.transport.backoff(attempt), this.opts.signal);
      }
    }
  }

  async getManifest(reference: string): Promise<RemoteManifest> {
    const what = `manifest ${this.where(reference)}`;
    const { res, bytes } = await this.getBody({ method: 'GET', path: `${this.name}/manifests/${reference}`, headers: { accept: ACCEPT }, scopes: this.pull }, MAX_MANIFEST_BYTES, what);
    const mediaType = manifestMediaType(bytes, mediaTypeOf(header(res, 'content-type')), what);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const expected = isDigest(reference) ? reference : header(res, 'docker-content-digest');
    if (expected && expected.startsWith('sha256:') && expected !== digest) {
      throw new KilnError(`${what} does not match its digest ${expected} (the registry sent content with digest ${digest})`, {
        code: 'invalid',
        hint: 'the registry or something between served wrong bytes; nothing was stored',
      });
    }
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  async headManifest(reference: string): Promise<Descriptor | undefined> {
    const res = await this.client.call(this.host, { method: 'HEAD', path: `${this.name}/manifests/${reference}`, headers: { accept: ACCEPT }, scopes: this.pull });
    if (res.status === 404) return undefined;
    if (res.status !== 200) return this.fail(res, `manifest ${this.where(reference)}`);
    const digest = header(res, 'docker-content-digest');
    const size = Number(header(res, 'content-length'));
    const mediaType = mediaTypeOf(header(res, 'content-type'));
    if (digest && isDigest(digest) && Number.isFinite(size) && mediaType && MANIFEST_TYPES.includes(mediaType)) {
      if (isDigest(reference) && digest !== reference) {
        throw new KilnError(`manifest ${this.where(reference)}: the registry names it ${digest}`, { code: 'invalid' });
      }
      return { mediaType, digest, size };
    }
    // a registry that leaves the digest out of HEAD: read it
    return (await this.getManifest(reference)).descriptor;
  }

  async putManifest(reference: string, manifest: { mediaType: string; bytes: Buffer }): Promise<Descriptor> {
    const digest = `sha256:${createHash('sha256').update(manifest.bytes).digest('hex')}`;
    const what = `manifest ${this.where(reference)}`;
    if (manifest.bytes.length > MAX_MANIFEST_BYTES) throw new KilnError(`${what} is ${manifest.bytes.length} bytes, over the limit of ${MAX_MANIFEST_BYTES}`, { code: 'invalid' });
    const res = await this.client.call(this.host, {
      method: 'PUT',
      path: `${this.name}/manifests/${reference}`,
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
      scopes: this.push,
    });
    if (res.status !== 201 && res.status !== 200) {
      const body = await errorBody(res);
      if (body?.code === 'MANIFEST_BLOB_UNKNOWN' || body?.code === 'BLOB_UNKNOWN') {
        throw new KilnError(`${this.host} refused ${what}: it names a blob the repository does not have`, { code: 'invalid', hint: 'push the blobs before the manifest' });
      }
      throw statusError(res.status, this.host, body, what, retryAfterMs(res.headers['retry-after']));
    }
    res.discard();
    const said = header(res, 'docker-content-digest');
    if (said && said !== digest) throw new KilnError(`${this.host} stored ${what} as ${said}, not ${digest}`, { code: 'failed' });
    const descriptor: Descriptor = { mediaType: manifest.mediaType, digest, size: manifest.bytes.length };
    const parsed = tryJson(manifest.bytes) as { subject?: Descriptor; artifactType?: string; config?: { mediaType?: string }; annotations?: Record<string, string> } | undefined;
    if (parsed?.subject?.digest && isDigest(parsed.subject.digest) && !header(res, 'oci-subject')) {
      await this.addReferrer(parsed.subject.digest, {
        ...descriptor,
        artifactType: parsed.artifactType ?? parsed.config?.mediaType,
        ...(parsed.annotations ? { annotations: parsed.annotations } : {}),
      });
    }
    return descriptor;
  }

  /** The referrers tag schema: adds `desc` to the index tagged sha256-<hex of subject>. */
  private async addReferrer(subject: string, desc: Descriptor & { artifactType?: string }): Promise<void> {
    const tag = referrersTag(subject);
    let current: Buffer | undefined;
    try {
      current = (await this.getManifest(tag)).bytes;
    } catch (e) {
      if (!(isKilnError(e) && e.code === 'not-found')) throw e;
    }
    const next = withReferrer(current, desc);
    if (next) await this.putManifest(tag, { mediaType: MediaType.ociIndex, bytes: next });
  }

  async referrers(digest: string, artifactType?: string): Promise<Descriptor[]> {
    const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
    const res = await this.client.call(this.host, { method: 'GET', path: `${this.name}/referrers/${digest}${query}`, headers: { accept: MediaType.ociIndex }, scopes: this.pull });
    let manifests: Array<Descriptor & { artifactType?: string }>;
    if (res.status === 200 && mediaTypeOf(header(res, 'content-type')) === MediaType.ociIndex) {
      const bytes = await readBody(res, MAX_MANIFEST_BYTES, () => `the referrers of ${digest}`);
      manifests = (tryJson(bytes) as { manifests?: typeof manifests } | undefined)?.manifests ?? [];
    } else if (res.status === 404 || res.status === 200) {
      // no referrers API (distribution 2.8 answers 404): the referrers tag schema
      res.discard();
      try {
        const index = await this.getManifest(referrersTag(digest));
        manifests = (tryJson(index.bytes) as { manifests?: typeof manifests } | undefined)?.manifests ?? [];
      } catch (e) {
        if (isKilnError(e) && e.code === 'not-found') return [];
        throw e;
      }
    } else {
      return this.fail(res, `the referrers of ${this.where(digest)}`);
    }
    return artifactType ? manifests.filter((m) => m.artifactType === artifactType) : manifests;
  }

  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let path: string | URL = `${this.name}/tags/list`;
    for (let page = 0; page < 1000; page++) {
      const got = await this.getBody({ method: 'GET', path, scopes: this.pull }, 16 << 20, `repository ${this.where()}`);
      const res = got.res;
      const body = tryJson(got.bytes) as { tags?: string[] | null } | undefined;
      tags.push(...(body?.tags ?? []));
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
      if (!link) break;
      path = new URL(link[1], res.url);
    }
    return tags;
  }

  async statBlob(digest: string): Promise<number | undefined> {
    return this.stat(digest, this.pull);
  }

  private async stat(digest: string, scopes: string[]): Promise<number | undefined> {
    const res = await this.client.call(this.host, { method: 'HEAD', path: `${this.name}/blobs/${digest}`, scopes });
    if (res.status === 404) return undefined;
    if (res.status !== 200) return this.fail(res, `blob ${digest} in ${this.where()}`);
    const size = Number(header(res, 'content-length'));
    return Number.isFinite(size) ? size : undefined;
  }

  /**
   * The blob's bytes as they arrive, resumed after a dropped connection (Range: bytes=N-; a
   * registry that answers 200 instead of 206 is read from the start and the part already seen
   * skipped). Unverified: callers check the digest.
   */
  private async *blobChunks(digest: string, size: number | undefined, onProgress?: OnProgress): AsyncGenerator<Buffer> {
    const what = `blob ${digest} in ${this.where()}`;
    let offset = 0;
    const attempts = this.client.transport.attempts;
    for (let failures = 0; ; ) {
      const signal = this.opts.signal;
      if (signal?.aborted) throw cancelled();
      try {
        const res = await this.client.call(this.host, {
          method: 'GET',
          path: `${this.name}/blobs/${digest}`,
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          scopes: this.pull,
          followRedirects: true,
        });
        let skip = 0;
        if (res.status === 206 && offset > 0 && new RegExp(`^bytes ${offset}-`).test(header(res, 'content-range') ?? '')) {
          skip = 0;
        } else if (res.status === 200) {
          skip = offset;
        } else if (res.status === 416 && size !== undefined && offset === size) {
          res.discard();
          return;
        } else if (res.status === 404) {
          res.discard();
          throw this.missing(digest);
        } else {
          return await this.fail(res, what);
        }
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          let c = chunk;
          if (skip > 0) {
            const n = Math.min(skip, c.length);
            skip -= n;
            c = c.subarray(n);
            if (c.length === 0) continue;
          }
          offset += c.length;
          if (size !== undefined && offset > size) {
            res.body.destroy();
            throw new KilnError(`${what} is larger than the ${size} bytes its descriptor says`, { code: 'invalid', hint: 'the registry served wrong bytes; nothing was stored' });
          }
          failures = 0;
          yield c;
          onProgress?.(offset);
        }
        return;
      } catch (e) {
        if (signal?.aborted) throw cancelled();
        const err = networkError(e, this.host, this.opts.certsDir);
        if (!retryable(err) || ++failures >= attempts || signal?.aborted) throw err;
        await sleep(this.client.transport.backoff(failures), signal);
      }
    }
  }

  private missing(digest: string): KilnError {
    return new KilnError(`blob ${digest} is missing from ${this.where()}`, { code: 'not-found', hint: 'check the image reference; the registry may have removed the blob' });
  }

  private mismatch(digest: string, actual: string, size?: number): KilnError {
    return new KilnError(`blob ${digest} from ${this.where()} is corrupt: the bytes served have digest ${actual}${size !== undefined ? ` (${size} bytes)` : ''}`, {
      code: 'invalid',
      hint: 'the registry or something between served wrong bytes; nothing was stored — try again, and check the registry if it persists',
    });
  }

  openBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, options: { onProgress?: OnProgress } = {}): Readable {
    return this.verified(descriptor.digest, descriptor.size, options.onProgress);
  }

  private verified(digest: string, size: number | undefined, onProgress?: OnProgress): Readable {
    const out = new PassThrough();
    (async () => {
      const hash = createHash('sha256');
      let n = 0;
      for await (const c of this.blobChunks(digest, size, onProgress)) {
        if (out.destroyed) return;
        hash.update(c);
        n += c.length;
        await writeWithBackpressure(out, c);
      }
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== digest || (size !== undefined && n !== size)) throw this.mismatch(digest, actual, n);
      out.end();
    })().catch((e) => out.destroy(e as Error));
    return out;
  }

  async fetchBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, into: Pick<Ingester, 'writer'>, options: { onProgress?: OnProgress } = {}): Promise<void> {
    const writer = await into.writer();
    // network chunks are small (16-64 KiB): gathered into 1 MiB writes, each written while
    // the next one arrives (writes stay one after another, as a BlobWriter wants)
    let writing: Promise<void> = Promise.resolve();
    try {
      let batch: Buffer[] = [];
      let batched = 0;
      const flush = async (): Promise<void> => {
        const buf = batch.length === 1 ? batch[0] : Buffer.concat(batch, batched);
        batch = [];
        batched = 0;
        await writing;
        writing = writer.write(buf);
        writing.catch(() => undefined);
      };
      for await (const c of this.blobChunks(descriptor.digest, descriptor.size, options.onProgress)) {
        batch.push(c);
        batched += c.length;
        if (batched >= WRITE_BATCH) await flush();
      }
      if (batched > 0) await flush();
      await writing;
    } catch (e) {
      await writing.catch(() => undefined);
      await writer.abort();
      throw e;
    }
    try {
      await writer.commit({ digest: descriptor.digest, size: descriptor.size });
    } catch (e) {
      await writer.abort().catch(() => undefined);
      if (e instanceof DigestMismatchError) throw this.mismatch(descriptor.digest, e.actual, writer.written);
      throw e;
    }
  }

  async pushBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    open: () => AsyncIterable<Buffer>,
    options: { mountFrom?: string[]; chunkSize?: number; onProgress?: OnProgress } = {},
  ): Promise<PushBlobResult> {
    const { digest } = descriptor;
    const what = `blob ${digest} to ${this.where()}`;
    // the push scope from the start: one token for the whole push
    if ((await this.stat(digest, this.push)) !== undefined) return 'exists';
    const attempts = this.client.transport.attempts;
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    // a chunked upload that broke goes on from what the registry has (GET on the session)
    let state: UploadState | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        state = state && (await this.uploadStatus(state.location));
        if (!state) {
          const session = await this.startUpload(digest, options.mountFrom ?? [], what);
          if (session === 'mounted') return 'mounted';
          state = { location: session, offset: 0 };
        }
        await this.upload(state, descriptor, open, chunkSize, what, options.onProgress);
        return 'uploaded';
      } catch (e) {
        if (!retryable(e) || attempt >= attempts || this.opts.signal?.aborted) throw e;
        if (descriptor.size <= chunkSize) state = undefined;
        await sleep(this.client.transport.backoff(attempt, isKilnError(e) ? e.retryAfterMs : undefined), this.opts.signal);
      }
    }
  }

  /** Where an upload session stands (GET on it: 204 with Range 0-LAST), undefined when the registry forgot it. */
  private async uploadStatus(location: URL): Promise<UploadState | undefined> {
    const res = await this.client.call(this.host, { method: 'GET', path: location, scopes: this.push });
    res.discard();
    const range = /^(?:bytes=)?0-(-?\d+)$/.exec(header(res, 'range') ?? '');
    if (res.status !== 204 || !range) return undefined;
    const loc = header(res, 'location');
    return { location: loc ? new URL(loc, res.url) : location, offset: Number(range[1]) + 1 };
  }

  /** POST an upload (mounting from `mountFrom` first): 'mounted', or the upload URL. */
  private async startUpload(digest: string, mountFrom: string[], what: string): Promise<URL | 'mounted'> {
    const from = mountFrom.filter((r) => r !== this.name);
    const post = async (query: string, scopes: string[]) => {
      const res = await this.client.call(this.host, { method: 'POST', path: `${this.name}/blobs/uploads/${query}`, scopes, retry: true });
      if (res.status === 201) {
        res.discard();
        return 'mounted' as const;
      }
      if (res.status !== 202) return this.fail(res, what);
      res.discard();
      const loc = header(res, 'location');
      if (!loc) throw new KilnError(`${this.host} started an upload of ${digest} without saying where (no Location)`, { code: 'failed' });
      return new URL(loc, res.url);
    };
    let session: URL | undefined;
    for (const repo of from) {
      if (session) await this.cancelUpload(session);
      const r = await post(`?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(repo)}`, [...this.push, `repository:${repo}:pull`]);
      if (r === 'mounted') return r;
      // 202: the registry could not mount and opened an upload instead
      session = r;
    }
    return session ?? post('', this.push);
  }

  private async cancelUpload(session: URL): Promise<void> {
    try {
      const res = await this.client.call(this.host, { method: 'DELETE', path: session, scopes: this.push, retry: false });
      res.discard();
    } catch {
      // best effort: the registry purges abandoned uploads
    }
  }

  private async upload(state: UploadState, descriptor: Pick<Descriptor, 'digest' | 'size'>, open: () => AsyncIterable<Buffer>, chunkSize: number, what: string, onProgress?: OnProgress): Promise<void> {
    const { digest, size } = descriptor;
    const withDigest = (loc: URL) => {
      const u = new URL(loc);
      u.searchParams.set('digest', digest);
      return u;
    };
    const expectStatus = async (res: Response, ok: number[]) => {
      if (ok.includes(res.status)) return res.discard();
      const body = await errorBody(res);
      if (body?.code === 'DIGEST_INVALID' || body?.code === 'SIZE_INVALID') {
        throw new KilnError(`${this.host} refused ${what}: the uploaded bytes do not match ${digest}`, { code: 'invalid', hint: 'the local blob is corrupt or changed while it was pushed' });
      }
      throw statusError(res.status, this.host, body, what, retryAfterMs(res.headers['retry-after']));
    };
    if (size <= chunkSize) {
      // one PUT with the whole blob (the POST made the session)
      const body = async function* (): AsyncGenerator<Buffer> {
        let sent = 0;
        for await (const c of open()) {
          sent += c.length;
          yield c;
          onProgress?.(sent);
        }
      };
      const headers = { 'content-type': 'application/octet-stream', 'content-length': String(size) };
      await expectStatus(await this.client.call(this.host, { method: 'PUT', path: withDigest(state.location), headers, body, scopes: this.push, retry: false }), [201, 204]);
      return;
    }
    // PATCH chunks, each streaming the next chunkSize bytes of the source (none held in memory),
    // from the offset the registry has (0, or where a broken upload stopped)
    const source = new ByteReader(open()[Symbol.asyncIterator]());
    try {
      await source.skip(state.offset);
      while (state.offset < size) {
        const start = state.offset;
        const n = Math.min(chunkSize, size - start);
        let used = false;
        const body = () => {
          // a chunk's bytes come from the one source: it cannot be sent twice (the upload resumes)
          if (used) throw new KilnError(`the upload of ${digest} to ${this.host} was interrupted`, { code: 'unavailable' });
          used = true;
          return source.take(n, (k) => onProgress?.(start + k));
        };
        const headers = { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + n - 1}`, 'content-length': String(n) };
        const res = await this.client.call(this.host, { method: 'PATCH', path: state.location, headers, body, scopes: this.push, retry: false });
        const loc = header(res, 'location');
        await expectStatus(res, [202, 204]);
        if (loc) state.location = new URL(loc, res.url);
        state.offset = start + n;
      }
      if (!(await source.atEnd())) throw new KilnError(`${what}: the local blob has more than the ${size} bytes its descriptor says`, { code: 'invalid' });
    } finally {
      await source.close();
    }
    await expectStatus(await this.client.call(this.host, { method: 'PUT', path: withDigest(state.location), scopes: this.push, retry: false }), [201, 204]);
  }

  provider(): Provider {
    const read = async (digest: string): Promise<Buffer> => {
      const chunks: Buffer[] = [];
      for await (const c of this.verified(digest, undefined) as AsyncIterable<Buffer>) chunks.push(c);
      return Buffer.concat(chunks);
    };
    return {
      info: async (digest) => {
        const size = await this.statBlob(digest);
        return size === undefined ? undefined : { digest, size, updatedAt: 0 };
      },
      hasBlob: async (digest) => (await this.statBlob(digest)) !== undefined,
      readBlob: read,
      openBlob: (digest) => this.verified(digest, undefined),
      readJSON: async <T>(digest: string): Promise<T> => {
        const bytes = await read(digest);
        try {
          return JSON.parse(bytes.toString('utf8')) as T;
        } catch {
          throw new KilnError(`blob ${digest} in ${this.where()} is not JSON`, { code: 'invalid' });
        }
      },
    };
  }
}

/** An upload session: its current URL and how many bytes the registry has. */
interface UploadState {
  location: URL;
  offset: number;
}

/** Reads exact byte counts from a stream of chunks of any size. */
class ByteReader {
  private rest: Buffer | undefined;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  /** The next `n` bytes as they come; a source that ends before is a KilnError. */
  async *take(n: number, onProgress?: (taken: number) => void): AsyncGenerator<Buffer> {
    let taken = 0;
    while (taken < n) {
      let c = this.rest;
      this.rest = undefined;
      if (!c) {
        const r = await this.it.next();
        if (r.done) throw new KilnError(`the blob ended after ${taken} of the ${n} bytes of an upload chunk: it is shorter than its descriptor says`, { code: 'invalid' });
        c = r.value;
      }
      if (c.length > n - taken) {
        this.rest = c.subarray(n - taken);
        c = c.subarray(0, n - taken);
      }
      taken += c.length;
      yield c;
      onProgress?.(taken);
    }
  }

  /** Stops reading the source (closes its file). */
  async close(): Promise<void> {
    await this.it.return?.();
  }

  /** Drops the next `n` bytes (an upload resumed past them). */
  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n)) {
      // discarded
    }
  }

  /** Whether the source has nothing more. */
  async atEnd(): Promise<boolean> {
    if (this.rest?.length) return false;
    for (;;) {
      const r = await this.it.next();
      if (r.done) return true;
      if (r.value.length) {
        this.rest = r.value;
        return false;
      }
    }
  }
}

function tryJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The media type of a manifest as served: its own mediaType field, else Content-Type; schema 1 and unknown types refused. */
export function manifestMediaType(bytes: Buffer, contentType: string | undefined, what: string): string {
  const parsed = tryJson(bytes) as { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; config?: unknown } | undefined;
  if (!parsed || typeof parsed !== 'object') throw new KilnError(`${what} is not JSON`, { code: 'invalid', hint: 'the registry sent something that is not a manifest' });
  const own = typeof parsed.mediaType === 'string' ? parsed.mediaType : undefined;
  const type = own ?? (contentType && contentType !== 'application/json' ? contentType : undefined) ?? (Array.isArray(parsed.manifests) ? MediaType.ociIndex : parsed.config ? MediaType.ociManifest : undefined);
  if (parsed.schemaVersion === 1 || (type && /^application\/vnd\.docker\.distribution\.manifest\.v1\+/.test(type))) {
    throw new KilnError(`${what} is a Docker schema 1 manifest, which kiln does not read`, {
      code: 'unsupported',
      hint: 'schema 1 is deprecated: push the image again with a current docker or kiln (schema 2 or OCI)',
    });
  }
  if (!type || !MANIFEST_TYPES.includes(type)) {
    throw new KilnError(`${what} has media type ${type ?? '(none)'}, not an OCI or Docker manifest or index`, {
      code: 'unsupported',
      hint: `kiln reads ${MANIFEST_TYPES.join(', ')}`,
    });
  }
  return type;
}
