/**
 * The http cache of ADD <url>: what a URL last gave (its content, by digest, with its ETag,
 * Last-Modified and file name) kept under the kiln root (kilnPaths().cacheHttp), so that a
 * later build asks the server only whether it changed: a conditional GET (If-None-Match with
 * the ETag, If-Modified-Since with the Last-Modified) that a 304 answers downloads nothing.
 * A server that ignores the condition but sends the same ETag has its body dropped unread,
 * as BuildKit's HEAD request would. A --checksum is checked on what is downloaded and on
 * what a revalidation keeps.
 *
 * Layout: <dir>/urls/<sha256 of the URL>.json (the metadata), <dir>/content/<sha256 hex>
 * (the bytes, written once, then renamed into place). Both are written by rename, so two
 * builds fetching one URL at once each see a whole file.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KilnError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { httpRequest, type HttpStream } from '../net.js';

/** What a URL gave: the content's file in the cache, the name BuildKit would give it, its time. */
export interface HttpContent {
  /** The content in the cache (link or copy it; never change it). */
  file: string;
  /** `sha256:<hex>` of the content. */
  digest: string;
  name: string;
  lastModified?: Date;
  /** How it was got: `downloaded`, or `not-modified` (a 304, or the same ETag). */
  how: 'downloaded' | 'not-modified';
}

interface UrlRecord {
  url: string;
  digest: string;
  name: string;
  etag?: string;
  lastModified?: string;
}

export class HttpCache {
  constructor(
    private readonly dir: string,
    /** A fresh temp path on the same filesystem (the store's tmp). */
    private readonly tempPath: (kind: string) => string,
  ) {}

  /**
   * Fetches `url`, or revalidates what the cache has of it. With `checksum` (ADD --checksum),
   * the content must have that digest.
   */
  async fetch(url: string, checksum?: string, signal?: AbortSignal): Promise<HttpContent> {
    const recordFile = path.join(this.dir, 'urls', `${sha256(url)}.json`);
    const record = await readRecord(recordFile);
    const cached = record && (await exists(this.contentFile(record.digest))) ? record : undefined;
    const headers: Record<string, string> = {};
    if (cached?.etag) headers['if-none-match'] = cached.etag;
    if (cached?.lastModified) headers['if-modified-since'] = cached.lastModified;
    let res: HttpStream;
    try {
      res = await httpRequest(url, { headers, signal });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new KilnError(`ADD could not fetch ${url}: ${(e as Error).message}`, { code: 'unavailable', hint: 'check the URL and that the server is reachable from this machine' });
    }
    const etag = header(res, 'etag');
    if (cached && (res.status === 304 || (res.status === 200 && etag !== undefined && etag === cached.etag))) {
      res.body.destroy();
      // last used now (what `kiln du` and prune's LRU read)
      const now = new Date();
      await fs.utimes(this.dir, now, now).catch(() => undefined);
      const got: HttpContent = { file: this.contentFile(cached.digest), digest: cached.digest, name: cached.name, lastModified: parseTime(cached.lastModified), how: 'not-modified' };
      verify(url, got.digest, checksum);
      return got;
    }
    if (res.status < 200 || res.status > 299) {
      res.body.destroy();
      throw new KilnError(`ADD could not fetch ${url}: HTTP ${res.status}`, { code: res.status === 404 ? 'not-found' : res.status === 401 || res.status === 403 ? 'denied' : 'unavailable' });
    }
    const lastModified = header(res, 'last-modified');
    const name = fileName(url);
    const digest = await this.store(res, url, signal, checksum);
    const next: UrlRecord = { url, digest, name, etag, lastModified: parseTime(lastModified) ? lastModified : undefined };
    await writeFileAtomic(recordFile, JSON.stringify(next));
    const now = new Date();
    await fs.utimes(this.dir, now, now).catch(() => undefined);
    if (cached && cached.digest !== digest) await this.dropUnused(cached.digest);
    return { file: this.contentFile(digest), digest, name, lastModified: parseTime(lastModified), how: 'downloaded' };
  }

  private contentFile(digest: string): string {
    return path.join(this.dir, 'content', digest.replace(/^sha256:/, ''));
  }

  /** Streams the body into a temp file, hashing it, then renames it into content/. */
  private async store(res: HttpStream, url: string, signal: AbortSignal | undefined, checksum?: string): Promise<string> {
    const tmp = this.tempPath('http');
    await fs.mkdir(path.dirname(tmp), { recursive: true });
    const sha = createHash('sha256');
    const other = checksum && !checksum.startsWith('sha256:') ? createHash(checksum.slice(0, checksum.indexOf(':'))) : undefined;
    try {
      res.body.on('data', (c: Buffer) => {
        sha.update(c);
        other?.update(c);
      });
      await pipeline(res.body, createWriteStream(tmp, { mode: 0o600 }), { signal });
    } catch (e) {
      await fs.rm(tmp, { force: true });
      if (signal?.aborted) throw e;
      throw new KilnError(`ADD could not fetch ${url}: ${(e as Error).message}`, { code: 'unavailable' });
    }
    const digest = `sha256:${sha.digest('hex')}`;
    try {
      verify(url, other ? `${checksum!.slice(0, checksum!.indexOf(':'))}:${other.digest('hex')}` : digest, checksum);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
    const dest = this.contentFile(digest);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.rename(tmp, dest);
    return digest;
  }

  /** Removes content no URL record names any more (a URL whose content changed). */
  private async dropUnused(digest: string): Promise<void> {
    const urls = path.join(this.dir, 'urls');
    for (const f of await fs.readdir(urls).catch(() => [] as string[])) {
      if ((await readRecord(path.join(urls, f)))?.digest === digest) return;
    }
    await fs.rm(this.contentFile(digest), { force: true });
  }
}

function verify(url: string, got: string, checksum: string | undefined): void {
  if (checksum !== undefined && got !== checksum) throw new KilnError(`ADD ${url}: digest mismatch ${got}: ${checksum}`, { code: 'failed', hint: 'the file changed, or --checksum is wrong' });
}

/**
 * The file name BuildKit's Dockerfile frontend gives a URL's content: the last segment of
 * the URL's path (decoded), else `__unnamed__` (Content-Disposition is not asked).
 */
export function fileName(url: string): string {
  let segment: string | undefined;
  try {
    segment = new URL(url).pathname.split('/').pop();
    if (segment) segment = decodeURIComponent(segment);
  } catch {
    segment = undefined;
  }
  return segment === undefined || segment === '' || segment === '.' || segment === '..' || /[/\0]/.test(segment) ? '__unnamed__' : segment;
}

function header(res: HttpStream, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseTime(text: string | undefined): Date | undefined {
  if (!text) return undefined;
  const t = new Date(text);
  return Number.isNaN(t.getTime()) ? undefined : t;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function exists(file: string): Promise<boolean> {
  return (await fs.stat(file).catch(() => undefined))?.isFile() === true;
}

async function readRecord(file: string): Promise<UrlRecord | undefined> {
  try {
    const r = JSON.parse(await fs.readFile(file, 'utf8')) as UrlRecord;
    return typeof r.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(r.digest) && typeof r.name === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}
