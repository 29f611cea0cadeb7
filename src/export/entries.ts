/** Tar members of the archives exporters write: fixed owner 0:0, mode 0644/0755, mtime 0. */
import { digestHex } from '../oci/digest.js';
import type { TarEntry } from '../oci/tar.js';
import type { Descriptor } from '../oci/types.js';
import type { Provider } from '../oci/content.js';

export function dirEntry(p: string): TarEntry {
  return { path: p, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 };
}

export function fileEntry(p: string, content: Buffer): TarEntry {
  return { path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content };
}

/** A member holding a blob of the store, streamed from it. */
export function blobEntry(store: Pick<Provider, 'openBlob'>, d: Descriptor, p = `blobs/sha256/${digestHex(d.digest)}`): TarEntry {
  return { path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: d.size, contentStream: store.openBlob(d.digest) };
}

