/**
 * Cache records: a step's cache key → the layer it produced (or none, for a step that
 * changed nothing). Stored as small JSON files under <root>/cache/records, written
 * atomically; last use is the file's mtime, for least-recently-used eviction.
 */
import { promises as fs, readFileSync, utimesSync } from 'node:fs';
import path from 'node:path';
import type { Descriptor } from '../oci/types.js';
import { writeFileAtomic } from '../fsutil.js';
import { kilnPaths } from '../paths.js';

export interface CacheRecord {
  key: string;
  /** Vertex name when it was made, for `kiln du`. */
  description: string;
  /** The layer the step added; absent when the step changed nothing. */
  layer?: { descriptor: Descriptor; diffId: string };
  createdAt: string;
}

export class CacheRecords {
  readonly dir: string;

  constructor(kilnRoot: string) {
    this.dir = kilnPaths(kilnRoot).cacheRecords;
  }

  private file(key: string): string {
    const hex = key.replace(/^sha256:/, '');
    return path.join(this.dir, hex.slice(0, 2), `${hex}.json`);
  }

  /** Synchronous inside: one small file read, cheaper than threadpool round trips per step. */
  async get(key: string): Promise<CacheRecord | undefined> {
    const f = this.file(key);
    let raw: string;
    try {
      raw = readFileSync(f, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const rec = JSON.parse(raw) as CacheRecord;
      const now = new Date();
      try {
        utimesSync(f, now, now);
      } catch {
        /* removed meanwhile by a prune: the record read is still good */
      }
      return rec;
    } catch {
      return undefined;
    }
  }

  async put(rec: CacheRecord): Promise<void> {
    await writeFileAtomic(this.file(rec.key), JSON.stringify(rec));
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.file(key), { force: true });
  }

  /** Every record with its last-use time. */
  async list(): Promise<Array<{ record: CacheRecord; lastUsed: Date }>> {
    const out: Array<{ record: CacheRecord; lastUsed: Date }> = [];
    const shards = await fs.readdir(this.dir).catch(() => [] as string[]);
    for (const shard of shards) {
      const files = await fs.readdir(path.join(this.dir, shard)).catch(() => [] as string[]);
      for (const name of files) {
        if (!name.endsWith('.json')) continue;
        const f = path.join(this.dir, shard, name);
        try {
          const [raw, st] = await Promise.all([fs.readFile(f, 'utf8'), fs.stat(f)]);
          out.push({ record: JSON.parse(raw) as CacheRecord, lastUsed: st.mtime });
        } catch {
          // a record being written or removed by another process
        }
      }
    }
    return out;
  }
}
