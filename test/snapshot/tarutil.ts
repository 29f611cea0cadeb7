import { createHash } from 'node:crypto';
import tar from 'tar-stream';

export interface TarSpec {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  content?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** Builds an uncompressed tar in memory with tar-stream (test fixture). */
export async function makeTar(entries: TarSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = type === 'file' ? Buffer.from(e.content ?? '') : Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        {
          name: e.name,
          type,
          mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: new Date((e.mtime ?? 1700000000) * 1000),
          linkname: e.linkname,
          size: body.length,
          devmajor: e.devmajor,
          devminor: e.devminor,
          pax: e.pax,
        },
        body,
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function diffIdOf(buf: Buffer): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

/** A stream factory yielding the buffer in small chunks, as a registry download would. */
export function chunked(buf: Buffer, size = 4096): () => AsyncIterable<Buffer> {
  return () =>
    (async function* () {
      for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
    })();
}
