/**
 * What the shared-cache tests share: fresh kiln roots holding one base image (new CI
 * runners), builds through the library with their warnings, and reading a cache's layout.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { build, type BuildOptions, type BuildResult } from '../../src/build.js';
import { CACHE_CONFIG_KEY } from '../../src/cache/format.js';
import { mountsUnder } from '../../src/lifecycle.js';
import { rootWithBusybox, runKiln, tempDir } from '../helpers.js';

export interface CacheConfig {
  architecture: string;
  os: string;
  rootfs: { diff_ids: string[] };
  [CACHE_CONFIG_KEY]: { steps: Array<{ key: string; layer?: number; description: string; definition?: string; chain?: number[] }>; mounts?: Array<{ id: string; layer: number }> };
}

export interface CacheManifest {
  config: { digest: string };
  layers: Array<{ digest: string; mediaType: string }>;
}

/** The manifest and config a type=local cache directory's index.json names. */
export async function readLayout(dir: string): Promise<{ manifest: CacheManifest; config: CacheConfig }> {
  const blob = async (d: string) => JSON.parse(await fs.readFile(path.join(dir, 'blobs', 'sha256', d.slice(7)), 'utf8')) as unknown;
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = (await blob(index.manifests[0].digest)) as CacheManifest;
  return { manifest, config: (await blob(manifest.config.digest)) as CacheConfig };
}

export async function blobsOf(root: string): Promise<Set<string>> {
  return new Set((await fs.readdir(path.join(root, 'blobs', 'sha256'))).map((h) => `sha256:${h}`));
}

/**
 * Root A (busybox imported), a scratch dir, and fresh roots holding A's very busybox image (an
 * import of the same tar elsewhere is another image: its time differs). SOURCE_DATE_EPOCH is
 * set while the fixture lives, so that re-run steps make the same files and `created` matches.
 */
export interface CacheFixture {
  rootA: string;
  work: string;
  freshRoot(): Promise<string>;
  context(files: Record<string, string>): Promise<string>;
  run(root: string, contextDir: string, extra?: Partial<BuildOptions>): Promise<BuildResult & { warnings: string[] }>;
  cleanup(): Promise<void>;
}

export async function cacheFixture(): Promise<CacheFixture> {
  const savedEpoch = process.env.SOURCE_DATE_EPOCH;
  process.env.SOURCE_DATE_EPOCH = '1700000000';
  const cleanups: Array<() => Promise<void>> = [];
  const a = await rootWithBusybox();
  cleanups.push(a.cleanup);
  const t = await tempDir('kiln-cache-work-');
  cleanups.push(t.cleanup);
  const baseTar = path.join(t.dir, 'busybox.tar');
  const r = await runKiln(['save', 'busybox:latest', '-o', baseTar], { root: a.root });
  assert.equal(r.code, 0, r.stderr);
  let n = 0;
  return {
    rootA: a.root,
    work: t.dir,
    async freshRoot() {
      const b = await tempDir('kiln-root-b-');
      cleanups.push(async () => {
        for (const mp of mountsUnder(b.dir).sort((x, y) => y.length - x.length)) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
        await b.cleanup();
      });
      const l = await runKiln(['load', '-i', baseTar], { root: b.dir });
      assert.equal(l.code, 0, l.stderr);
      return b.dir;
    },
    async context(files) {
      const dir = path.join(t.dir, `ctx-${n++}`);
      for (const [rel, content] of Object.entries(files)) {
        await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
        await fs.writeFile(path.join(dir, rel), content);
      }
      return dir;
    },
    async run(root, contextDir, extra = {}) {
      const warnings: string[] = [];
      const res = await build({ root, contextDir, parallelism: 2, tags: ['cache-test:latest'], warn: (m) => warnings.push(m), ...extra });
      return { ...res, warnings };
    },
    async cleanup() {
      if (savedEpoch === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = savedEpoch;
      for (const c of cleanups.reverse()) await c();
    },
  };
}
