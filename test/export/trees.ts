/**
 * File trees for the export tests, read three ways and made comparable: from an image's
 * layers (applied in order, as the OCI image spec says), from a directory and from a tar.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { loadImage } from '../../src/oci/image.js';
import { readLayer } from '../../src/oci/layer.js';
import type { ContentStore } from '../../src/oci/store.js';
import { tarEntries, type TarHeader } from '../../src/oci/tar.js';

/** A Dockerfile (FROM `base`) whose layers delete, hide, re-create and re-own things. */
export function richDockerfile(base: string): string {
  return DOCKERFILE.replace('FROM busybox', `FROM ${base}`);
}

export const CONTEXT_FILES = { 'f.txt': 'from the context\n' };

const DOCKERFILE = `FROM busybox
RUN mkdir -p /data/sub /gone/deep /opq && echo keep > /data/keep && echo old > /data/old.txt \\
 && ln /data/keep /data/hard && ln -s keep /data/link && ln -s /nowhere /data/dangling && mkfifo /data/fifo \\
 && echo a > /opq/a && echo x > /gone/deep/x && echo same > /data/same1 && ln /data/same1 /data/same2 \\
 && chown -R 1000:1000 /data/sub && chmod 0750 /data/sub && chmod 4755 /data/keep && chmod 0600 /data/old.txt
RUN rm /data/old.txt /etc/group && rm -rf /gone && rm -rf /opq && mkdir /opq && echo b > /opq/b \\
 && echo changed > /data/keep && touch -d @1000000000 /data/sub/old && printf 'x%.0s' $(seq 1 3000) > /data/big
COPY --chown=123:456 f.txt /copied/f.txt
`;

export interface Node {
  type: 'file' | 'directory' | 'symlink' | 'fifo' | 'char' | 'block';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname?: string;
  sha?: string;
}

/** A filesystem as paths → nodes, plus the groups of paths that are one inode (sorted, joined by "|"). */
export interface Tree {
  nodes: Map<string, Node>;
  links: Set<string>;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function readAll(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c);
  return Buffer.concat(chunks);
}

function groupsOf(byKey: Map<string, string[]>): Set<string> {
  return new Set([...byKey.values()].filter((g) => g.length > 1).map((g) => [...g].sort().join('|')));
}

const typeOf: Record<string, Node['type']> = { file: 'file', 'contiguous-file': 'file', directory: 'directory', symlink: 'symlink', fifo: 'fifo', 'character-device': 'char', 'block-device': 'block' };

function nodeOf(h: TarHeader, content?: Buffer): Node {
  const type = typeOf[h.type ?? 'file'];
  return {
    type,
    mode: (h.mode ?? 0) & 0o7777,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    mtime: Math.floor((h.mtime?.getTime() ?? 0) / 1000),
    ...(type === 'symlink' ? { linkname: h.linkname ?? '' } : {}),
    ...(content ? { sha: sha(content) } : {}),
  };
}

const clean = (name: string): string => name.split('/').filter((p) => p !== '' && p !== '.').join('/');

/**
 * The filesystem the image's layers describe, applied in order as the OCI image spec says: a
 * layer's whiteouts (".wh.name") and opaque markers (".wh..wh..opq") hide what the layers
 * below have there; then its entries replace what is at their path.
 */
export async function expectedTree(store: ContentStore, name: string): Promise<Tree> {
  const img = await loadImage(store, name);
  const nodes = new Map<string, Node>();
  /** path → inode id; a hard link shares its target's. */
  const inode = new Map<string, number>();
  let nextInode = 0;
  const removeUnder = (p: string, self: boolean): void => {
    for (const k of [...nodes.keys()]) {
      if ((self && k === p) || (p === '' ? k !== '' : k.startsWith(`${p}/`))) {
        nodes.delete(k);
        inode.delete(k);
      }
    }
  };
  for (const layer of img.manifest.layers) {
    const entries: Array<{ header: TarHeader; content?: Buffer }> = [];
    for await (const { header, stream } of readLayer(store, layer)) {
      entries.push({ header, content: header.type === 'file' || header.type === 'contiguous-file' ? await readAll(stream) : undefined });
    }
    for (const { header } of entries) {
      const p = clean(header.name);
      const base = p.split('/').pop()!;
      const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
      if (base === '.wh..wh..opq') removeUnder(parent, false);
      else if (base.startsWith('.wh.')) removeUnder(`${parent ? `${parent}/` : ''}${base.slice(4)}`, true);
    }
    for (const { header, content } of entries) {
      const p = clean(header.name);
      if (p === '' || p.split('/').pop()!.startsWith('.wh.')) continue;
      const existing = nodes.get(p);
      if (existing && !(existing.type === 'directory' && header.type === 'directory')) removeUnder(p, true);
      if (header.type === 'link') {
        const target = clean(header.linkname ?? '');
        const t = nodes.get(target);
        assert.ok(t, `hard link ${p} to ${target}, which is not there`);
        nodes.set(p, { ...t, mtime: t.mtime });
        inode.set(p, inode.get(target)!);
        continue;
      }
      nodes.set(p, nodeOf(header, content));
      inode.set(p, nextInode++);
    }
  }
  const byInode = new Map<string, string[]>();
  for (const [p, i] of inode) if (nodes.get(p)?.type === 'file') byInode.set(String(i), [...(byInode.get(String(i)) ?? []), p]);
  return { nodes, links: groupsOf(byInode) };
}

/** The tree in a directory, read with lstat (the directory itself excluded). */
export async function dirTree(dir: string): Promise<Tree> {
  const nodes = new Map<string, Node>();
  const byInode = new Map<string, string[]>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await fsp.readdir(path.join(dir, rel))) {
      const p = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, p);
      const st = await fsp.lstat(full);
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
      if (st.isDirectory()) {
        nodes.set(p, { type: 'directory', ...base });
        await walk(p);
      } else if (st.isSymbolicLink()) nodes.set(p, { type: 'symlink', ...base, linkname: await fsp.readlink(full) });
      else if (st.isFIFO()) nodes.set(p, { type: 'fifo', ...base });
      else if (st.isCharacterDevice()) nodes.set(p, { type: 'char', ...base });
      else if (st.isBlockDevice()) nodes.set(p, { type: 'block', ...base });
      else {
        nodes.set(p, { type: 'file', ...base, sha: sha(await readAll(createReadStream(full))) });
        byInode.set(String(st.ino), [...(byInode.get(String(st.ino)) ?? []), p]);
      }
    }
  };
  await walk('');
  return { nodes, links: groupsOf(byInode) };
}

/** The tree a tar archive holds; a hard link entry joins its target's group. */
export async function tarTree(file: string): Promise<{ tree: Tree; order: string[] }> {
  const nodes = new Map<string, Node>();
  const group = new Map<string, string>();
  const members = new Map<string, string[]>();
  const order: string[] = [];
  for await (const { header, stream } of tarEntries(createReadStream(file))) {
    const p = clean(header.name);
    order.push(p);
    if (header.type === 'link') {
      const target = clean(header.linkname ?? '');
      const key = group.get(target)!;
      assert.ok(key !== undefined, `hard link ${p} to ${target}, which comes before it`);
      nodes.set(p, nodes.get(target)!);
      group.set(p, key);
      members.get(key)!.push(p);
      continue;
    }
    const content = header.type === 'file' ? await readAll(stream) : undefined;
    nodes.set(p, nodeOf(header, content));
    if (header.type === 'file') {
      group.set(p, p);
      members.set(p, [p]);
    }
  }
  return { tree: { nodes, links: groupsOf(members) }, order };
}

/** Symlink permission bits mean nothing on Linux (lstat always says 0777): compared without them. */
export function comparable(tree: Tree): { nodes: Record<string, Node>; links: string[] } {
  const nodes: Record<string, Node> = {};
  for (const [p, n] of [...tree.nodes].sort(([a], [b]) => (a < b ? -1 : 1))) nodes[p] = n.type === 'symlink' ? { ...n, mode: 0 } : n;
  return { nodes, links: [...tree.links].sort() };
}

