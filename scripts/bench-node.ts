/**
 * The bench's `node-app` scenario (issue 11): examples/node-app — `COPY package.json
 * package-lock.json`, `RUN --mount=type=cache,target=/root/.npm npm ci` from the npm registry,
 * `COPY . .` into a slim runtime stage — built on the Debian bases of scripts/make-base-image.sh
 * (node:18-bookworm and node:18-bookworm-slim) by kiln, BuildKit (docker 20.10) and buildah,
 * interleaved, in one run:
 *
 * - cold: nothing cached, the npm cache mount empty: kiln builds on a fresh root (the bases
 *   imported and unpacked by a `RUN true` on each, untimed, as docker load and buildah pull
 *   leave them), BuildKit after `docker builder prune -af` (its cache mounts go with it;
 *   the bases stay loaded), buildah with --no-cache and a fresh TMPDIR (where it keeps cache
 *   mounts);
 * - src-change: a rebuild after one source file changed (npm ci stays cached);
 * - dep-change: a rebuild after a dependency was added or removed (package.json and its lock
 *   change): npm ci runs again, with the npm cache mount warm from the earlier builds.
 *
 * Every build gets content no earlier build had (the revision goes into a source file or into
 * package.json's description), so no peer's persistent cache can already hold the result.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { have, median, run, tail, type PeerId } from './bench.js';

// not bench.js's repoRoot: this module is evaluated before bench.js's body (bench.js imports it)
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const dockerCli = '/usr/bin/docker';
export const NODE_BASES = ['node:18-bookworm', 'node:18-bookworm-slim'] as const;

export type NodeFigureId = 'cold' | 'src-change' | 'dep-change';
type Tool = Exclude<PeerId, 'baseline'>;

export interface NodeFigure {
  figure: NodeFigureId;
  title: string;
  samples: Partial<Record<Tool, number[]>>;
  median: Partial<Record<Tool, number>>;
  errors: Partial<Record<Tool, string>>;
}

export const NODE_FIGURES: Array<{ id: NodeFigureId; title: string }> = [
  { id: 'cold', title: 'cold build (no cache, npm cache mount empty)' },
  { id: 'src-change', title: 'rebuild, one source file changed' },
  { id: 'dep-change', title: 'rebuild, a dependency added or removed (npm cache warm)' },
];

export interface NodeBenchOptions {
  work: string;
  kilnBin: string;
  runs: number;
  keep: boolean;
  peers: PeerId[];
  log: (message: string) => void;
}

/** The two dependency sets the dep-change figure alternates between: examples/node-app's, and it plus bytes. */
export const DEP_VARIANTS = [path.join(repoRoot, 'examples', 'node-app'), path.join(repoRoot, 'test', 'examples', 'fixtures', 'node-app-dep')];

/**
 * Writes dependency set `variant` (0 or 1) into the context: its package-lock.json as it is,
 * and its package.json with the revision as the description (npm ci does not compare that
 * field with the lock, and the COPY of the manifests is new to every peer's cache).
 */
export async function writeDeps(ctx: string, variant: number, revision: string): Promise<void> {
  const dir = DEP_VARIANTS[variant % DEP_VARIANTS.length];
  const pkg = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
  pkg.description = `bench revision ${revision}`;
  await fs.writeFile(path.join(ctx, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  await fs.copyFile(path.join(dir, 'package-lock.json'), path.join(ctx, 'package-lock.json'));
}

/** One source file with the revision in it (the src-change figure). */
export async function writeSource(ctx: string, revision: string): Promise<void> {
  await fs.writeFile(path.join(ctx, 'src', 'greeting.js'), `'use strict';\n// revision ${revision}\nexports.greeting = (name) => \`Hello, \${name} (${revision})\`;\n`);
}

class NodeBuildError extends Error {}

interface NodePeer {
  id: Tool;
  skip?: string;
  /** Forget everything cached (the cold figure), untimed. */
  reset(): Promise<void>;
  build(ctx: string, tag: string, noCache: boolean): Promise<number>;
  close(): Promise<void>;
}

/** Removes a kiln root, unmounting anything a build left mounted under it first. */
async function removeRoot(root: string): Promise<void> {
  await run('sh', ['-c', `grep -o " ${root}/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
  await fs.rm(root, { recursive: true, force: true });
}

function kilnPeer(o: NodeBenchOptions): NodePeer {
  let n = 0;
  let root = '';
  return {
    id: 'kiln',
    async reset() {
      if (root) await removeRoot(root);
      root = path.join(o.work, `kiln-node-root-${++n}`);
      for (const base of NODE_BASES) {
        const r = await run('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), base, '--root', root], { env: { KILN_BIN: o.kilnBin } });
        if (r.code !== 0) throw new NodeBuildError(`make-base-image.sh ${base} failed: ${tail(r.stderr)}`);
        // unpack the base now, as docker load and buildah pull do: the cold build then starts
        // where the others' do (a RUN of its own, not a step of the example's Dockerfile)
        const warm = path.join(o.work, 'kiln-node-unpack');
        await fs.mkdir(warm, { recursive: true });
        await fs.writeFile(path.join(warm, 'Dockerfile'), `FROM ${base}\nRUN true\n`);
        const u = await run(o.kilnBin, ['--root', root, 'build', '-q', warm]);
        if (u.code !== 0) throw new NodeBuildError(`kiln could not unpack ${base}: ${tail(u.stderr)}`);
      }
    },
    async build(ctx, tag, noCache) {
      const r = await run(o.kilnBin, ['--root', root, 'build', '-q', '-t', tag, ...(noCache ? ['--no-cache'] : []), ctx]);
      if (r.code !== 0) throw new NodeBuildError(`kiln build failed (exit ${r.code}): ${tail(r.stderr)}`);
      return r.ms;
    },
    async close() {
      if (root && !o.keep) await removeRoot(root);
    },
  };
}

function buildkitPeer(o: NodeBenchOptions, saved: string): NodePeer & { init(): Promise<void> } {
  const env = { DOCKER_BUILDKIT: '1' };
  const tags = new Set<string>();
  const loaded: string[] = [];
  const peer = {
    id: 'buildkit' as const,
    skip: undefined as string | undefined,
    async init() {
      if (!have(dockerCli)) return void (peer.skip = `${dockerCli} not installed`);
      if ((await run(dockerCli, ['info'], { timeoutMs: 10_000 })).code !== 0) return void (peer.skip = 'dockerd is not running');
      for (const base of NODE_BASES) if ((await run(dockerCli, ['image', 'inspect', base])).code !== 0) loaded.push(base);
      const r = await run(dockerCli, ['load', '-i', saved]);
      if (r.code !== 0) peer.skip = `docker load of the node bases failed: ${tail(r.stderr, 3)}`;
    },
    async reset() {
      for (const t of tags) await run(dockerCli, ['rmi', '-f', t]);
      const r = await run(dockerCli, ['builder', 'prune', '-af']);
      if (r.code !== 0) throw new NodeBuildError(`docker builder prune failed: ${tail(r.stderr)}`);
    },
    async build(ctx: string, tag: string, noCache: boolean) {
      tags.add(tag);
      const r = await run(dockerCli, ['build', '--network', 'host', '-q', '-t', tag, ...(noCache ? ['--no-cache'] : []), ctx], { env });
      if (r.code !== 0) throw new NodeBuildError(`docker build failed (exit ${r.code}): ${tail(r.stderr)}`);
      return r.ms;
    },
    async close() {
      if (o.keep) return;
      for (const t of tags) await run(dockerCli, ['rmi', '-f', t]);
      if (loaded.length) await run(dockerCli, ['rmi', ...loaded]);
    },
  };
  return peer;
}

function buildahPeer(o: NodeBenchOptions, saved: string): NodePeer & { init(): Promise<void> } {
  const dir = path.join(o.work, 'buildah-node');
  const store = ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'overlay'];
  // buildah keeps cache mounts under $TMPDIR/buildah-cache-UID: a fresh TMPDIR is an empty npm cache
  let tmp = '';
  let n = 0;
  const env = () => ({ CONTAINERS_REGISTRIES_CONF: path.join(dir, 'registries.conf'), BUILDAH_ISOLATION: 'oci', TMPDIR: tmp });
  const peer = {
    id: 'buildah' as const,
    skip: undefined as string | undefined,
    async init() {
      if (!have('buildah')) return void (peer.skip = 'buildah not installed');
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, 'registries.conf'), 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n');
      await peer.reset();
      for (const base of NODE_BASES) {
        const pull = await run('buildah', [...store, 'pull', `docker-archive:${saved}:${base}`], { env: env() });
        const id = pull.stdout.trim().split('\n').pop() ?? '';
        const tag = pull.code === 0 ? await run('buildah', [...store, 'tag', id, `localhost/${base}`], { env: env() }) : pull;
        if (tag.code !== 0) return void (peer.skip = `buildah pull of ${base} failed: ${tail(tag.stderr, 3)}`);
      }
    },
    async reset() {
      if (tmp) await fs.rm(tmp, { recursive: true, force: true });
      tmp = path.join(dir, `tmp-${++n}`);
      await fs.mkdir(tmp, { recursive: true });
    },
    async build(ctx: string, tag: string, noCache: boolean) {
      const args = [...store, 'bud', '--runtime', 'runc', '--layers', '--pull=never', '--network', 'host', '--jobs', String(os.availableParallelism()), '-q', '-t', tag, ...(noCache ? ['--no-cache'] : []), ctx];
      const r = await run('buildah', args, { env: env() });
      if (r.code !== 0) throw new NodeBuildError(`buildah bud failed (exit ${r.code}): ${tail(r.stderr)}`);
      return r.ms;
    },
    async close() {
      if (!o.keep) await fs.rm(dir, { recursive: true, force: true });
    },
  };
  return peer;
}

/** A markdown table. */
export function markdownTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function nodeTable(figures: NodeFigure[], runs: number): string {
  const s = (xs: number[] | undefined, v: number | undefined) => (v === undefined ? '—' : `${(v / 1000).toFixed(2)} s${xs && xs.length < runs ? ` (n=${xs.length})` : ''}`);
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || a <= 0 || b <= 0 ? '—' : `${(a / b).toFixed(2)}×`);
  return markdownTable(
    ['node-app / figure', 'kiln', 'BuildKit', 'buildah', 'kiln/BuildKit', 'kiln/buildah'],
    figures.map((f) => [
      `node-app / ${f.title}`,
      s(f.samples.kiln, f.median.kiln),
      s(f.samples.buildkit, f.median.buildkit),
      s(f.samples.buildah, f.median.buildah),
      ratio(f.median.kiln, f.median.buildkit),
      ratio(f.median.kiln, f.median.buildah),
    ]),
  );
}

export async function nodeAppBench(o: NodeBenchOptions): Promise<{ results: NodeFigure[]; table: string; failures: string[]; skipped: string[] }> {
  const failures: string[] = [];
  const skipped: string[] = [];
  const figures: NodeFigure[] = NODE_FIGURES.map((f) => ({ figure: f.id, title: f.title, samples: {}, median: {}, errors: {} }));
  o.log('\n== node-app: examples/node-app on node:18-bookworm (npm ci from the registry, cache mount), slim runtime stage');
  // the bases, made (or taken from the cache) once, saved once for docker and buildah
  const seed = path.join(o.work, 'kiln-node-seed');
  const saved = path.join(o.work, 'node-bases.tar');
  for (const base of NODE_BASES) {
    const r = await run('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), base, '--root', seed], { timeoutMs: 1_800_000 });
    if (r.code !== 0) {
      failures.push(`node-app: make-base-image.sh ${base} failed: ${tail(r.stderr)}`);
      return { results: [], table: '', failures, skipped };
    }
  }
  const save = await run(o.kilnBin, ['--root', seed, 'save', '-o', saved, ...NODE_BASES]);
  await removeRoot(seed);
  if (save.code !== 0) {
    failures.push(`node-app: kiln save of the bases failed: ${tail(save.stderr)}`);
    return { results: [], table: '', failures, skipped };
  }
  const kiln = kilnPeer(o);
  const buildkit = buildkitPeer(o, saved);
  const buildah = buildahPeer(o, saved);
  if (!o.peers.includes('kiln')) kiln.skip = 'not in --peers';
  if (o.peers.includes('buildkit')) await buildkit.init();
  else buildkit.skip = 'not in --peers';
  if (o.peers.includes('buildah')) await buildah.init();
  else buildah.skip = 'not in --peers';
  const peers: NodePeer[] = [kiln, buildkit, buildah];
  for (const p of peers) if (p.skip) skipped.push(`${p.id}: ${p.skip}`);
  const active = peers.filter((p) => !p.skip);

  const ctx = path.join(o.work, 'ctx-node-app');
  await fs.cp(path.join(repoRoot, 'examples', 'node-app'), ctx, { recursive: true });
  const nonce = Math.random().toString(36).slice(2, 8);
  let serial = 0;
  const revision = () => `${nonce}-${String(++serial).padStart(5, '0')}`;
  let variant = 0;
  const tag = 'kiln-bench-node-app:latest';
  try {
    for (const [i, def] of NODE_FIGURES.entries()) {
      const fig = figures[i];
      const attempt = async (p: NodePeer, timed: boolean) => {
        if (fig.errors[p.id]) return;
        try {
          if (def.id === 'cold') {
            await p.reset();
            await writeSource(ctx, revision());
          } else if (def.id === 'src-change') await writeSource(ctx, revision());
          else await writeDeps(ctx, ++variant, revision());
          const ms = await p.build(ctx, tag, def.id === 'cold');
          if (!timed) return;
          (fig.samples[p.id] ??= []).push(ms);
          o.log(`   ${def.id.padEnd(10)} ${p.id.padEnd(8)} ${(ms / 1000).toFixed(2)} s`);
        } catch (e) {
          if (!(e instanceof NodeBuildError)) throw e;
          fig.errors[p.id] = e.message;
          failures.push(`node-app/${def.id} ${p.id}: ${e.message}`);
          o.log(`   ${def.id.padEnd(10)} ${p.id.padEnd(8)} FAILED: ${e.message}`);
        }
      };
      // a rebuild figure starts warm: one untimed build per peer (the cold figure left them warm too)
      if (def.id !== 'cold') for (const p of active) await attempt(p, false);
      for (let r = 0; r < o.runs; r++) for (const p of active) await attempt(p, true);
      for (const p of active) {
        const m = median(fig.samples[p.id] ?? []);
        if (m !== undefined) fig.median[p.id] = m;
      }
    }
  } finally {
    for (const p of active) await p.close();
    if (!o.keep) await fs.rm(ctx, { recursive: true, force: true });
  }
  return { results: figures, table: nodeTable(figures, o.runs), failures, skipped };
}
