/**
 * A cache in a directory (--cache-to/--cache-from type=local): an OCI image layout, blobs
 * under blobs/sha256/ and index.json naming the cache manifest. Blobs are written first (each
 * to a temp name, then renamed), index.json last and atomically, and old blobs are kept: a
 * reader never finds a manifest whose blobs are missing, even while another build rewrites
 * the cache.
 */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { KilnError, isErrnoError } from '../errors.js';
import { ownedName } from '../lifecycle.js';
import { canonicalJSON } from '../oci/canonical.js';
import type { Provider } from '../oci/content.js';
import { Digester, digestHex, digestOf, isDigest, verifyingStream } from '../oci/digest.js';
import { MediaType, type Descriptor, type ImageIndex } from '../oci/types.js';

/** `bytes` as JSON; a KilnError saying `what` is not JSON otherwise. */
export function parseJSON<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new KilnError(`${what} is not JSON`, { code: 'invalid', cause: e });
  }
}

export class LayoutDir implements Provider {
  constructor(readonly dir: string) {}

  blobPath(digest: string): string {
    if (!isDigest(digest)) throw new KilnError(`${JSON.stringify(digest)} is not a sha256 digest`, { code: 'invalid' });
    return path.join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  private missing(digest: string): KilnError {
    return new KilnError(`blob ${digest} is missing from the cache directory ${this.dir}`, { code: 'not-found', hint: 'export the cache again with --cache-to type=local,dest=…' });
  }

  private corrupt(digest: string, actual: string): KilnError {
    return new KilnError(`blob ${digest} in the cache directory ${this.dir} is corrupt: its content hashes to ${actual}`, { code: 'invalid', hint: 'export the cache again with --cache-to type=local,dest=…' });
  }

  async info(digest: string): Promise<{ digest: string; size: number; updatedAt: number } | undefined> {
    const st = await fs.stat(this.blobPath(digest)).catch(() => undefined);
    return st ? { digest, size: st.size, updatedAt: st.mtimeMs } : undefined;
  }

  async hasBlob(digest: string): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  async readBlob(digest: string): Promise<Buffer> {
    const data = await fs.readFile(this.blobPath(digest)).catch((e: unknown) => {
      throw isErrnoError(e) && e.code === 'ENOENT' ? this.missing(digest) : e;
    });
    const actual = digestOf(data);
    if (actual !== digest) throw this.corrupt(digest, actual);
    return data;
  }

  openBlob(digest: string): Readable {
    const verify = verifyingStream(digest, (actual) => this.corrupt(digest, actual));
    const src = createReadStream(this.blobPath(digest));
    src.on('error', (e) => verify.destroy(isErrnoError(e) && e.code === 'ENOENT' ? this.missing(digest) : e));
    src.pipe(verify);
    return verify;
  }

  async readJSON<T>(digest: string): Promise<T> {
    return parseJSON<T>(await this.readBlob(digest), `blob ${digest} in the cache directory ${this.dir}`);
  }

  /** The manifest index.json names (the first manifest in it). */
  async manifest(): Promise<Descriptor> {
    const file = path.join(this.dir, 'index.json');
    const text = await fs.readFile(file, 'utf8').catch((e: unknown) => {
      if (isErrnoError(e) && e.code === 'ENOENT') throw new KilnError(`no cache at ${this.dir}: it has no index.json`, { code: 'not-found', hint: 'export one first with --cache-to type=local,dest=…' });
      throw e;
    });
    let index: ImageIndex;
    try {
      index = JSON.parse(text) as ImageIndex;
    } catch (e) {
      throw new KilnError(`the cache at ${this.dir} is malformed: index.json is not JSON`, { code: 'invalid', cause: e });
    }
    const m = Array.isArray(index.manifests) ? index.manifests[0] : undefined;
    if (!m || typeof m.digest !== 'string') throw new KilnError(`the cache at ${this.dir} is malformed: index.json names no manifest`, { code: 'invalid' });
    return m;
  }

  /** Writes a blob unless it is there (temp name, then rename). */
  async putBlob(digest: string, bytes: AsyncIterable<Buffer> | Buffer): Promise<void> {
    const target = this.blobPath(digest);
    if (await this.hasBlob(digest)) return;
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(path.dirname(target), `.${ownedName('blob')}.tmp`);
    try {
      const d = new Digester();
      const fh = await fs.open(tmp, 'wx', 0o644);
      try {
        for await (const chunk of Buffer.isBuffer(bytes) ? [bytes] : bytes) {
          d.update(chunk);
          await fh.write(chunk);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      const actual = d.digest();
      if (actual !== digest) throw new KilnError(`wrote blob ${digest} to ${this.dir} but its content hashes to ${actual}`);
      await fs.rename(tmp, target);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** Points index.json at `manifest` (atomically: a reader sees the old or the new one). */
  async setManifest(manifest: Descriptor): Promise<void> {
    await fs.writeFile(path.join(this.dir, 'oci-layout'), canonicalJSON({ imageLayoutVersion: '1.0.0' }));
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [manifest] };
    const tmp = path.join(this.dir, `.${ownedName('index')}.tmp`);
    try {
      await fs.writeFile(tmp, canonicalJSON(index));
      await fs.rename(tmp, path.join(this.dir, 'index.json'));
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }
}
