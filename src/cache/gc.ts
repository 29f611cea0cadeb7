/**
 * Cache disk use and its limits. Everything the cache holds is counted: layer blobs that
 * only cache records keep, unpacked layer snapshots, RUN cache mounts, and what ADD fetched
 * (URL content, git repositories: sources/http.ts, sources/git.ts). Pruning evicts
 * least-recently-used first, never what an image or a running build uses.
 */
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { ContentStore, type Leased } from '../oci/store.js';
import type { ImageConfig } from '../oci/types.js';
import { walk } from '../oci/walk.js';
import { kilnPaths } from '../paths.js';
import { CacheRecords, type CacheRecord } from './records.js';
import { writeFileAtomic } from '../fsutil.js';
import { withFileLock } from '../oci/lock.js';

export interface CacheItem {
  kind: 'layer' | 'snapshot' | 'cache-mount' | 'context-index' | 'source';
  id: string;
  description: string;
  size: number;
  lastUsed: Date;
  /** An image in the store (or a running build) uses it: pruning does not free it. */
  inUse: boolean;
}

export interface CacheUsage {
  items: CacheItem[];
  total: number;
  reclaimable: number;
}

export interface PruneCacheOptions {
  /** Remove every cache record, snapshot and cache mount not in use. */
  all?: boolean;
  /** Remove what was last used longer ago than this (milliseconds). */
  olderThanMs?: number;
  /** Evict least-recently-used until the cache uses at most this many bytes. */
  keepBytes?: number;
}

export interface PruneCacheResult {
  records: number;
  snapshots: number;
  mounts: number;
  blobs: number;
  freedBytes: number;
  /** What ADD fetched: the URL cache, git repositories. */
  sources: number;
}

interface State {
  store: ContentStore;
  records: Array<{ record: CacheRecord; lastUsed: Date }>;
  /** Layer digests and diff ids that named images use. */
  imageBlobs: Set<string>;
  imageDiffIds: Set<string>;
  /** Layer dirs in use by mounts right now. */
  activeLowers: Set<string>;
  leased: Leased;
}

/** Hex names of the layer dirs that mounts of running steps stack. */
async function activeLowersOf(root: string): Promise<Set<string>> {
  const activeLowers = new Set<string>();
  const activeRoot = kilnPaths(root).snapshotActive;
  for (const id of await fs.readdir(activeRoot).catch(() => [] as string[])) {
    const links = path.join(activeRoot, id, 'l');
    for (const l of await fs.readdir(links).catch(() => [] as string[])) {
      const target = await fs.readlink(path.join(links, l)).catch(() => undefined);
      if (target) activeLowers.add(path.basename(path.dirname(target)));
    }
  }
  return activeLowers;
}

async function loadState(root: string): Promise<State> {
  const store = await ContentStore.open(root);
  const records = await new CacheRecords(root).list();
  const imageBlobs = new Set<string>();
  const imageDiffIds = new Set<string>();
  const refs = (await store.listRefs()).map((r) => r.descriptor);
  // what an image is missing or has malformed keeps nothing, and is not this count's concern
  await walk(
    store,
    refs,
    async (node) => {
      if (node.kind === 'layer') imageBlobs.add(node.descriptor.digest);
      else if (node.kind === 'config') {
        const config = await store.readJSON<ImageConfig>(node.descriptor.digest).catch(() => undefined);
        for (const d of config?.rootfs?.diff_ids ?? []) imageDiffIds.add(d);
      }
    },
    { missing: 'skip', malformed: 'skip' },
  );
  const activeLowers = await activeLowersOf(root);
  const leased = await store.leased();
  return { store, records, imageBlobs, imageDiffIds, activeLowers, leased };
}

/** Bytes under a directory (apparent sizes), via du; 0 when it is gone. */
async function duBytes(dir: string): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn('du', ['-sb', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (c) => (out += String(c)));
    p.on('error', () => resolve(0));
    p.on('close', () => resolve(Number(out.split(/\s/)[0]) || 0));
  });
}

/** An unpacked layer never changes: its size is measured once and kept beside it. */
async function snapshotSize(layerDir: string): Promise<number> {
  const file = path.join(layerDir, 'size');
  const cached = Number(await fs.readFile(file, 'utf8').catch(() => ''));
  if (cached > 0) return cached;
  const size = await duBytes(path.join(layerDir, 'fs'));
  await fs.writeFile(file, String(size)).catch(() => undefined);
  return size;
}

export async function cacheUsage(root: string): Promise<CacheUsage> {
  const st = await loadState(root);
  return usageOf(root, st);
}

async function usageOf(root: string, st: State): Promise<CacheUsage> {
  const items: CacheItem[] = [];
  const seenBlobs = new Set<string>();
  const recordDiffIds = new Map<string, Date>();
  for (const { record, lastUsed } of st.records) {
    if (!record.layer) continue;
    recordDiffIds.set(record.layer.diffId, lastUsed);
    const digest = record.layer.descriptor.digest;
    if (seenBlobs.has(digest)) continue;
    seenBlobs.add(digest);
    items.push({
      kind: 'layer',
      id: digest.slice(7, 19),
      description: record.description,
      size: record.layer.descriptor.size,
      lastUsed,
      inUse: st.imageBlobs.has(digest) || st.leased.digests.has(digest),
    });
  }
  const layersRoot = kilnPaths(root).snapshotLayers;
  for (const hex of await fs.readdir(layersRoot).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(hex)) continue;
    const dir = path.join(layersRoot, hex);
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat) continue;
    const diffId = `sha256:${hex}`;
    items.push({
      kind: 'snapshot',
      id: hex.slice(0, 12),
      description: `unpacked layer ${diffId.slice(0, 19)}`,
      size: await snapshotSize(dir),
      lastUsed: recordDiffIds.get(diffId) ?? stat.mtime,
      inUse: st.activeLowers.has(hex) || st.leased.layers.has(hex),
    });
  }
  const mountsRoot = kilnPaths(root).cacheMounts;
  for (const id of await fs.readdir(mountsRoot).catch(() => [] as string[])) {
    const dir = path.join(mountsRoot, id);
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory()) continue;
    items.push({ kind: 'cache-mount', id: id.slice(0, 12), description: 'RUN --mount=type=cache', size: await duBytes(dir), lastUsed: stat.mtime, inUse: st.leased.mounts.has(id) });
  }
  const contexts = kilnPaths(root).cacheContexts;
  const ctxStat = await fs.stat(contexts).catch(() => undefined);
  if (ctxStat?.isDirectory()) {
    items.push({ kind: 'context-index', id: 'contexts', description: 'build context hashes and file lists', size: await duBytes(contexts), lastUsed: ctxStat.mtime, inUse: false });
  }
  // what ADD fetched: only a speed-up (a build fetches again what is gone)
  const httpDir = kilnPaths(root).cacheHttp;
  const httpStat = await fs.stat(httpDir).catch(() => undefined);
  if (httpStat?.isDirectory()) {
    items.push({ kind: 'source', id: 'http', description: 'ADD <url>: fetched content, ETags, Last-Modified', size: await duBytes(httpDir), lastUsed: httpStat.mtime, inUse: false });
  }
  const gitDir = kilnPaths(root).cacheGit;
  for (const name of await fs.readdir(gitDir).catch(() => [] as string[])) {
    const stat = await fs.stat(path.join(gitDir, name)).catch(() => undefined);
    if (!stat?.isDirectory()) continue;
    items.push({ kind: 'source', id: `git-${name.slice(0, 8)}`, description: 'ADD <git repository>: fetched objects', size: await duBytes(path.join(gitDir, name)), lastUsed: stat.mtime, inUse: false });
  }
  const total = items.reduce((n, i) => n + i.size, 0);
  const reclaimable = items.filter((i) => !i.inUse).reduce((n, i) => n + i.size, 0);
  return { items, total, reclaimable };
}

export async function pruneCache(root: string, options: PruneCacheOptions): Promise<PruneCacheResult> {
  const st = await loadState(root);
  const result: PruneCacheResult = { records: 0, snapshots: 0, mounts: 0, blobs: 0, freedBytes: 0, sources: 0 };
  const now = Date.now();
  const usage = await usageOf(root, st);
  const victims = new Set<CacheItem>();
  for (const item of usage.items) {
    if (item.inUse) continue;
    if (options.all) victims.add(item);
    else if (options.olderThanMs !== undefined && now - item.lastUsed.getTime() > options.olderThanMs) victims.add(item);
  }
  if (options.keepBytes !== undefined) {
    let total = usage.items.filter((i) => !victims.has(i)).reduce((n, i) => n + i.size, 0);
    const lru = usage.items.filter((i) => !i.inUse && !victims.has(i)).sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
    for (const item of lru) {
      if (total <= options.keepBytes) break;
      victims.add(item);
      total -= item.size;
    }
  }
  const records = new CacheRecords(root);
  const victimIds = (kind: CacheItem['kind']) => new Set([...victims].filter((v) => v.kind === kind).map((v) => v.id));
  const layerVictims = victimIds('layer');
  // a record goes with its layer; records of steps that changed nothing go with --all or age
  for (const { record, lastUsed } of st.records) {
    const byLayer = record.layer !== undefined && layerVictims.has(record.layer.descriptor.digest.slice(7, 19));
    const emptyStep = !record.layer && options.olderThanMs !== undefined && now - lastUsed.getTime() > options.olderThanMs;
    // --all drops every record, even one whose layer an image keeps (the blob stays with the image)
    if (options.all || byLayer || emptyStep) {
      await records.delete(record.key);
      result.records++;
    }
  }
  const snapVictims = victimIds('snapshot');
  const remaining = await records.list();
  const keptDiffIds = new Set([...st.imageDiffIds, ...remaining.flatMap((r) => (r.record.layer ? [r.record.layer.diffId] : []))]);
  const layersRoot = kilnPaths(root).snapshotLayers;
  const mountVictims = victimIds('cache-mount');
  const mountsRoot = kilnPaths(root).cacheMounts;
  const size = (kind: CacheItem['kind'], id: string): number => usage.items.find((i) => i.kind === kind && i.id === id)?.size ?? 0;
  // Deciding and moving away happen under the gc lock, with the leases read again there: a
  // build protects a layer or cache mount under the same lock before it checks that it
  // exists, so either this prune sees the lease or the build sees the victim gone. Victims
  // are renamed into tmp/ (atomic: a prune killed half-way never leaves a half-deleted layer
  // that looks whole) and deleted after the lock is released.
  const trash: string[] = [];
  await st.store.withLock('gc', async () => {
    const leased = await st.store.leased();
    const active = await activeLowersOf(root);
    const moveAway = (dir: string): Promise<boolean> => moveToTrash(st.store, dir, trash);
    for (const hex of await fs.readdir(layersRoot).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}$/.test(hex) || active.has(hex) || leased.layers.has(hex)) continue;
      const orphan = !keptDiffIds.has(`sha256:${hex}`);
      if ((orphan || snapVictims.has(hex.slice(0, 12))) && (await moveAway(path.join(layersRoot, hex)))) {
        result.snapshots++;
        result.freedBytes += size('snapshot', hex.slice(0, 12));
      }
    }
    for (const id of await fs.readdir(mountsRoot).catch(() => [] as string[])) {
      if (!mountVictims.has(id.slice(0, 12)) || leased.mounts.has(id)) continue;
      if (await moveAway(path.join(mountsRoot, id))) {
        result.mounts++;
        result.freedBytes += size('cache-mount', id.slice(0, 12));
      }
    }
    const sourceVictims = victimIds('source');
    const paths = kilnPaths(root);
    if (sourceVictims.has('http') && (await moveAway(paths.cacheHttp))) {
      result.sources++;
      result.freedBytes += size('source', 'http');
    }
    for (const name of await fs.readdir(paths.cacheGit).catch(() => [] as string[])) {
      const id = `git-${name.slice(0, 8)}`;
      if (!sourceVictims.has(id)) continue;
      // under the repository's own lock (sources/git.ts): not while a build fetches into it
      const moved = await withFileLock(path.join(paths.locks, `git-${name}.lock`), () => moveAway(path.join(paths.cacheGit, name)));
      if (moved) {
        result.sources++;
        result.freedBytes += size('source', id);
      }
    }
  });
  for (const t of trash) await fs.rm(t, { recursive: true, force: true });
  const contextVictim = [...victims].find((v) => v.kind === 'context-index');
  if (contextVictim) {
    // the context indexes (content hashes, fingerprints, per-file maps for --explain) are
    // only a speed-up: the next build makes them again
    await fs.rm(kilnPaths(root).cacheContexts, { recursive: true, force: true });
    result.freedBytes += contextVictim.size;
  }
  const roots = remaining.flatMap((r) => (r.record.layer ? [r.record.layer.descriptor.digest] : []));
  const gc = await st.store.gc(roots);
  result.blobs = gc.removedBlobs;
  result.freedBytes += gc.freedBytes;
  return result;
}

/** "10GB", "512MiB", "1.5g", plain bytes → bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m) throw new KilnError(`invalid size "${text}": use a number with an optional unit, e.g. 512MB or 10GB`);
  const unit = m[2].toLowerCase();
  const base = m[3].toLowerCase().startsWith('i') ? 1024 : 1000;
  const pow = { '': 0, k: 1, m: 2, g: 3, t: 4 }[unit] ?? 0;
  return Math.round(Number(m[1]) * base ** pow);
}

/** Go-style durations with days: "24h", "7d", "90m". */
export function parseAge(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!m) throw new KilnError(`invalid duration "${text}": use e.g. 30m, 24h or 7d`);
  const ms = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2]]!;
  return Number(m[1]) * ms;
}

/**
 * The cache size limit: KILN_CACHE_MAX, else `cacheMaxSize` in <root>/config.json, else
 * 10% of the filesystem holding the root (at least 2 GB, at most 50 GB). "0" or "none" turns it off.
 */
export async function cacheLimit(root: string): Promise<number | undefined> {
  let raw = process.env.KILN_CACHE_MAX;
  if (raw === undefined) {
    let cfg: string | undefined;
    try {
      cfg = readFileSync(kilnPaths(root).config, 'utf8');
    } catch {
      cfg = undefined;
    }
    if (cfg) {
      try {
        raw = (JSON.parse(cfg) as { cacheMaxSize?: string }).cacheMaxSize;
      } catch {
        throw new KilnError(`${kilnPaths(root).config} is not valid JSON`);
      }
    }
  }
  if (raw !== undefined) {
    if (raw === '0' || raw.toLowerCase() === 'none') return undefined;
    return parseSize(raw);
  }
  let fsStat: { blocks: number; bsize: number } | undefined;
  try {
    fsStat = statfsSync(root);
  } catch {
    fsStat = undefined;
  }
  if (!fsStat) return 20e9;
  const tenth = (fsStat.blocks * fsStat.bsize) / 10;
  return Math.min(50e9, Math.max(2e9, tenth));
}

/**
 * After a build that added `addedBytes` of layers: evict least-recently-used cache until
 * under the limit. Counting everything reads every record and measures cache mounts, so
 * it is done only when the running estimate (the last full count plus what builds added
 * since, with their unpacked copies) could be over the limit, or once an hour.
 */
export async function enforceCacheLimit(root: string, addedBytes = Infinity): Promise<PruneCacheResult | undefined> {
  const limit = await cacheLimit(root);
  if (limit === undefined) return undefined;
  const file = kilnPaths(root).cacheUsage;
  // the usual case is two tiny reads and a write after every build: synchronous calls
  let last: { total: number; countedAt: number } | undefined;
  try {
    last = JSON.parse(readFileSync(file, 'utf8')) as { total: number; countedAt: number };
  } catch {
    last = undefined;
  }
  // a compressed layer also sits unpacked in snapshots/: count it three times to be safe
  const estimate = last ? last.total + 3 * addedBytes : Infinity;
  const save = (total: number, countedAt: number): Promise<void> => writeFileAtomic(file, JSON.stringify({ total, countedAt }));
  if (last && estimate <= limit && Date.now() - last.countedAt < 3600e3) {
    await save(estimate, last.countedAt);
    return undefined;
  }
  const usage = await cacheUsage(root);
  if (usage.total <= limit) {
    await save(usage.total, Date.now());
    return undefined;
  }
  const result = await pruneCache(root, { keepBytes: limit });
  await save(Math.max(0, usage.total - result.freedBytes), Date.now());
  return result;
}

/**
 * Renames `dir` into the store's tmp/ (atomic: a process killed half-way never leaves a
 * half-deleted directory that looks whole) and adds it to `trash`, to delete once the gc lock
 * is released. False when it was not there.
 */
async function moveToTrash(store: Pick<ContentStore, 'tempPath'>, dir: string, trash: string[]): Promise<boolean> {
  const to = store.tempPath('trash');
  try {
    await fs.rename(dir, to);
    trash.push(to);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    await fs.rm(dir, { recursive: true, force: true });
    return true;
  }
}

/**
 * Starts the cache mounts `names` afresh (a --no-cache build), as prune removes them: under
 * the gc lock, where steps protect the mounts they use, and never a mount that a running
 * build's lease names (pulling its directory out from under it would fail its next step).
 */
export async function resetCacheMounts(store: ContentStore, names: Iterable<string>): Promise<void> {
  const trash: string[] = [];
  await store.withLock('gc', async () => {
    const inUse = (await store.leased()).mounts;
    for (const name of names) if (!inUse.has(name)) await moveToTrash(store, path.join(kilnPaths(store.root).cacheMounts, name), trash);
  });
  for (const t of trash) await fs.rm(t, { recursive: true, force: true });
}
