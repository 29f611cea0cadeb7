/**
 * Saved images (docker archives, from `kiln save` or `docker save`) read back the way a
 * runtime would see them: layers applied in order, with whiteouts, opaque directories and hard
 * links, into one file tree; and the tree described one line per entry for comparison.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';

export interface FsEntry {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  linkname?: string;
  digest?: string;
  size?: number;
  data?: Buffer;
  /** inode number within the flattened image: equal for hard links */
  inode: number;
}

export interface ImageConfigFile {
  config?: Record<string, unknown>;
  history?: Array<{ created_by?: string; empty_layer?: boolean; comment?: string }>;
  rootfs?: { diff_ids?: string[] };
  [k: string]: unknown;
}

/** An image's final file tree, its config, and how many layers made it. */
export interface ImageTree {
  fs: Map<string, FsEntry>;
  config: ImageConfigFile;
  layers: number;
}

export interface ArchiveMember {
  header: tar.Header;
  data: Buffer;
}

/** Members of a tar archive (gzip or not), in order, with their data. */
export async function readTar(buf: Buffer): Promise<ArchiveMember[]> {
  if (buf.length > 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
  const members: ArchiveMember[] = [];
  const ex = tar.extract();
  Readable.from([buf]).pipe(ex);
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    members.push({ header: entry.header, data: Buffer.concat(chunks) });
  }
  return members;
}

/** A docker archive's first image: its config and each layer's members, base first. */
export async function readDockerArchive(archive: Buffer): Promise<{ config: ImageConfigFile; layers: ArchiveMember[][] }> {
  const members = new Map((await readTar(archive)).map((m) => [m.header.name.replace(/^\.\//, ''), m.data]));
  const manifestData = members.get('manifest.json');
  assert.ok(manifestData, 'archive has no manifest.json');
  const manifest = JSON.parse(manifestData.toString('utf8')) as Array<{ Config: string; Layers: string[] }>;
  const configData = members.get(manifest[0].Config);
  assert.ok(configData, `archive lacks ${manifest[0].Config}`);
  const layers: ArchiveMember[][] = [];
  for (const layerName of manifest[0].Layers) {
    const layer = members.get(layerName);
    assert.ok(layer, `archive lacks layer ${layerName}`);
    layers.push(await readTar(layer));
  }
  return { config: JSON.parse(configData.toString('utf8')) as ImageConfigFile, layers };
}

/** An absolute, normalised path inside an image ("/" for the root). */
export function normPath(p: string): string {
  const n = path.posix.normalize(`/${p}`).replace(/\/+$/, '');
  return n === '' ? '/' : n;
}

const typeOf: Record<string, FsEntry['type'] | undefined> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'dir',
  symlink: 'symlink',
  'character-device': 'char',
  'block-device': 'block',
  fifo: 'fifo',
};

/** Applies a docker archive's layers in order (whiteouts, opaque dirs, hard links) into one tree. */
export async function flattenArchive(archive: Buffer): Promise<ImageTree> {
  const { config, layers } = await readDockerArchive(archive);
  const tree = new Map<string, FsEntry>();
  let inode = 0;
  const removeTree = (p: string) => {
    tree.delete(p);
    const prefix = p === '/' ? '/' : `${p}/`;
    for (const k of [...tree.keys()]) if (k.startsWith(prefix)) tree.delete(k);
  };
  for (const entries of layers) {
    // whiteouts only hide what lower layers have: apply them before this layer's additions
    for (const { header } of entries) {
      const p = normPath(header.name);
      const base = path.posix.basename(p);
      const dir = path.posix.dirname(p);
      if (base === '.wh..wh..opq') {
        const prefix = dir === '/' ? '/' : `${dir}/`;
        for (const k of [...tree.keys()]) if (k.startsWith(prefix)) tree.delete(k);
      } else if (base.startsWith('.wh.')) {
        removeTree(path.posix.join(dir, base.slice(4)));
      }
    }
    for (const { header, data } of entries) {
      const p = normPath(header.name);
      const base = path.posix.basename(p);
      if (base.startsWith('.wh.') || p === '/') continue;
      if (header.type === 'link') {
        const target = tree.get(normPath(header.linkname ?? ''));
        assert.ok(target, `hard link ${p} to missing ${header.linkname}`);
        removeTree(p);
        tree.set(p, target);
        continue;
      }
      const type = typeOf[header.type ?? 'file'];
      if (!type) continue; // pax headers and the like carry no entry
      const existing = tree.get(p);
      if (existing && !(existing.type === 'dir' && type === 'dir')) removeTree(p);
      const e: FsEntry = { type, mode: (header.mode ?? 0) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0, inode: ++inode };
      if (type === 'symlink') e.linkname = header.linkname ?? '';
      if (type === 'file') {
        e.digest = createHash('sha256').update(data).digest('hex').slice(0, 16);
        e.size = data.length;
        e.data = data;
      }
      tree.set(p, e);
    }
  }
  return { fs: tree, config, layers: layers.length };
}

/** One line per entry: path, type, mode, owner, link target, size and digest, hard-link group. */
export function describeTree(tree: Map<string, FsEntry>, filter: (p: string) => boolean = () => true): string[] {
  const groups = new Map<number, string[]>();
  for (const [p, e] of tree) if (e.type === 'file') groups.set(e.inode, [...(groups.get(e.inode) ?? []), p]);
  const lines: string[] = [];
  for (const p of [...tree.keys()].sort()) {
    if (!filter(p)) continue;
    const e = tree.get(p)!;
    let line = `${p} ${e.type} ${e.mode.toString(8).padStart(4, '0')} ${e.uid}:${e.gid}`;
    if (e.type === 'symlink') line += ` -> ${e.linkname}`;
    if (e.type === 'file') {
      line += ` ${e.size} ${e.digest}`;
      const g = groups.get(e.inode)!;
      if (g.length > 1) line += ` links=${[...g].sort().join(',')}`;
    }
    lines.push(line);
  }
  return lines;
}

/** Asserts two trees hold the same entries (those `filter` keeps), kiln's as actual, docker's as expected. */
export function assertSameTree(kiln: Map<string, FsEntry>, docker: Map<string, FsEntry>, filter?: (p: string) => boolean): void {
  assert.deepEqual(describeTree(kiln, filter), describeTree(docker, filter), 'file trees differ (kiln = actual, BuildKit = expected)');
}
