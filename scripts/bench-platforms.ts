/**
 * The bench's `platforms` scenario (issue 12): one two-platform build (linux/amd64 and
 * linux/arm64, the arm64 RUN under QEMU user emulation) of a small project, by kiln
 * (`kiln build --platform linux/amd64,linux/arm64`, an OCI index) and by buildah
 * (`buildah build --platform linux/amd64,linux/arm64 --manifest NAME`, a manifest list),
 * interleaved, in one run:
 *
 * - cold: `--no-cache`, both platforms' RUN steps executed (arm64's through qemu-aarch64);
 * - cached: the same build again, nothing changed.
 *
 * Both start from the same bases: this machine's busybox and Debian's busybox-static:arm64
 * (scripts/make-base-image.sh), imported into kiln as busybox:amd64 and busybox:arm64 under an
 * index busybox:latest, and `kiln save`d and pulled by buildah, which gets a manifest list
 * busybox:latest of the two (buildah manifest create/add). The arm64 handler is registered with
 * `kiln setup binfmt --platform linux/arm64` first (needs root). Figures are medians of the
 * build's wall time; the first round of each figure is a warm-up, not timed.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ByteStream, have, median, run, tail, type Exec } from './bench.js';
import type { RegistryBenchOptions } from './bench-registry.js';
import { ContentStore } from '../src/oci/store.js';
import { writeIndex } from '../src/oci/walk.js';
import type { Descriptor, ImageIndex } from '../src/oci/types.js';

// not bench.js's repoRoot: this module is evaluated before bench.js's body (bench.js imports it)
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const PLATFORMS = 'linux/amd64,linux/arm64';
type Tool = 'kiln' | 'buildah';
export type PlatformsFigureId = 'cold' | 'cached';

export interface PlatformsFigure {
  figure: PlatformsFigureId;
  title: string;
  samples: Partial<Record<Tool, number[]>>;
  median: Partial<Record<Tool, number>>;
  errors: Partial<Record<Tool, string>>;
}

/** The registry scenario's options (work dir, kiln, this machine's busybox rootfs tar, sizes, runs), and the peers asked for. */
export interface PlatformsBenchOptions extends RegistryBenchOptions {
  peers: string[];
}

/** The project: sources of deterministic text, and a Dockerfile whose RUN works on them on each platform. */
export async function writePlatformsProject(dir: string, files: number): Promise<void> {
  const s = new ByteStream('kiln-bench-platforms');
  for (let i = 0; i < files; i++) {
    const p = path.join(dir, 'src', `m${String(i).padStart(3, '0')}.txt`);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, s.text(16 * 1024 + s.int(0, 16 * 1024)));
  }
  await fs.writeFile(
    path.join(dir, 'Dockerfile'),
    [
      'FROM busybox:latest',
      'WORKDIR /app',
      'COPY src/ ./src/',
      // a little of everything a build step does: run programs, read and write files, compress
      'RUN uname -m > arch && find src -type f | sort | xargs sha256sum > sums && tar -cf - src | gzip -6 > src.tar.gz && wc -c src.tar.gz >> sums',
      'CMD ["cat", "/app/arch"]',
      '',
    ].join('\n'),
  );
}

/** Imports both bases into a kiln root: busybox:amd64, busybox:arm64 and the index busybox:latest. */
async function kilnBases(kilnBin: string, root: string, hostTar: string, armTar: string): Promise<string | undefined> {
  for (const [tar, name, platform] of [
    [hostTar, 'busybox:amd64', 'linux/amd64'],
    [armTar, 'busybox:arm64', 'linux/arm64'],
  ] as const) {
    const r = await run(kilnBin, ['--root', root, 'import', '--platform', platform, tar, name]);
    if (r.code !== 0) return `kiln import ${name} failed: ${tail(r.stderr, 3)}`;
  }
  const store = await ContentStore.open(root);
  const entries: Descriptor[] = [];
  for (const arch of ['amd64', 'arm64']) {
    const d = await store.resolve(`busybox:${arch}`);
    if (!d) return `busybox:${arch} missing after import`;
    entries.push({ mediaType: d.mediaType, digest: d.digest, size: d.size, platform: { os: 'linux', architecture: arch } });
  }
  await store.setRef('busybox:latest', await writeIndex(store, entries));
  return undefined;
}

/** The platforms of a stored index (to check kiln built both). */
async function storedPlatforms(root: string, name: string): Promise<string[]> {
  const store = await ContentStore.open(root);
  const d = await store.resolve(name);
  if (!d) return [];
  const index = await store.readJSON<ImageIndex>(d.digest);
  return (index.manifests ?? []).map((m) => `${m.platform?.os}/${m.platform?.architecture}`);
}

class Buildah {
  readonly args: string[];
  readonly env: Record<string, string>;
  constructor(readonly dir: string) {
    this.args = ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'overlay'];
    this.env = { CONTAINERS_REGISTRIES_CONF: path.join(dir, 'registries.conf'), BUILDAH_ISOLATION: 'oci' };
  }
  exec(args: string[]): Promise<Exec> {
    return run('buildah', [...this.args, ...args], { env: this.env });
  }
  /** The bases from kiln's archives, and the manifest list busybox:latest of the two. */
  async init(kilnBin: string, root: string): Promise<string | undefined> {
    await fs.mkdir(this.dir, { recursive: true });
    await fs.writeFile(this.env.CONTAINERS_REGISTRIES_CONF, 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n');
    for (const arch of ['amd64', 'arm64']) {
      const tar = path.join(this.dir, `busybox-${arch}.tar`);
      const save = await run(kilnBin, ['--root', root, 'save', '-o', tar, `busybox:${arch}`]);
      if (save.code !== 0) return `kiln save busybox:${arch} failed: ${tail(save.stderr, 3)}`;
      const pull = await this.exec(['pull', '-q', `docker-archive:${tar}`]);
      if (pull.code !== 0) return `buildah pull of busybox:${arch} failed: ${tail(pull.stderr, 3)}`;
      const tag = await this.exec(['tag', pull.stdout.trim().split('\n').pop() ?? '', `localhost/busybox:${arch}`]);
      if (tag.code !== 0) return `buildah tag failed: ${tail(tag.stderr, 3)}`;
    }
    const create = await this.exec(['manifest', 'create', 'localhost/busybox:latest']);
    if (create.code !== 0) return `buildah manifest create failed: ${tail(create.stderr, 3)}`;
    for (const arch of ['amd64', 'arm64']) {
      const add = await this.exec(['manifest', 'add', 'localhost/busybox:latest', `containers-storage:localhost/busybox:${arch}`]);
      if (add.code !== 0) return `buildah manifest add failed: ${tail(add.stderr, 3)}`;
    }
    return undefined;
  }
  build(ctx: string, manifest: string, noCache: boolean): Promise<Exec> {
    const args = ['bud', '--runtime', 'runc', '--layers', '--pull=never', '--network', 'host', '--jobs', String(os.availableParallelism()), '-q', '--platform', PLATFORMS, '--manifest', manifest];
    if (noCache) args.push('--no-cache');
    return this.exec([...args, ctx]);
  }
  /** The platforms of a manifest list in buildah's store. */
  async platforms(name: string): Promise<string[]> {
    const r = await this.exec(['manifest', 'inspect', name]);
    if (r.code !== 0) return [];
    return ((JSON.parse(r.stdout) as ImageIndex).manifests ?? []).map((m) => `${m.platform?.os}/${m.platform?.architecture}`);
  }
  async close(): Promise<void> {
    await this.exec(['rm', '--all']);
    await this.exec(['rmi', '--all', '--force']);
    // the overlay driver leaves its own mount of the layer directory
    spawnSync('sh', ['-c', `grep -o " ${this.dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`], { stdio: 'ignore' });
    await fs.rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || a <= 0 || b <= 0 ? '—' : `${(a / b).toFixed(2)}×`;
}

export async function platformsBench(o: PlatformsBenchOptions): Promise<{ results: PlatformsFigure[]; table: string; failures: string[]; skipped: string[] }> {
  const skipped: string[] = [];
  const none = (why: string) => ({ results: [], table: '', failures: [], skipped: [why] });
  if (process.arch !== 'x64') return none('written for an amd64 machine (arm64 is the emulated platform)');
  if (process.getuid?.() !== 0) return none('needs root (binfmt_misc, runc)');
  const binfmt = await run(o.kilnBin, ['setup', 'binfmt', '--platform', 'linux/arm64']);
  if (binfmt.code !== 0) return none(`kiln setup binfmt --platform linux/arm64 failed: ${tail(binfmt.stderr, 3)}`);
  const armTar = path.join(o.work, 'busybox-arm64-rootfs.tar');
  const mk = await run('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), '--arch', 'arm64', '--tar-only', armTar]);
  if (mk.code !== 0) return none(`make-base-image.sh --arch arm64 failed: ${tail(mk.stderr, 3)}`);
  const root = path.join(o.work, 'kiln-root-platforms');
  const ctx = path.join(o.work, 'platforms-ctx');
  const failures: string[] = [];
  const tools: Tool[] = [];
  const buildah = new Buildah(path.join(o.work, 'buildah-platforms'));
  let buildahStarted = false;
  try {
    await writePlatformsProject(ctx, o.quick ? 20 : 60);
    const kb = await kilnBases(o.kilnBin, root, o.baseTar, armTar);
    if (kb) return { ...none(kb), failures: [`platforms: ${kb}`] };
    if (o.peers.includes('kiln')) tools.push('kiln');
    if (!o.peers.includes('buildah')) skipped.push('buildah: not in --peers');
    else if (!have('buildah')) skipped.push('buildah: not installed (apt-get install buildah)');
    else {
      buildahStarted = true;
      const why = await buildah.init(o.kilnBin, root);
      if (why) skipped.push(`buildah: ${why}`);
      else tools.push('buildah');
    }
    const figures: PlatformsFigure[] = [
      { figure: 'cold', title: `two-platform build (${PLATFORMS}), no cache`, samples: {}, median: {}, errors: {} },
      { figure: 'cached', title: `two-platform build (${PLATFORMS}), everything cached`, samples: {}, median: {}, errors: {} },
    ];
    const buildOnce = async (tool: Tool, fig: PlatformsFigure, i: number): Promise<Exec> => {
      const noCache = fig.figure === 'cold';
      if (tool === 'kiln') return run(o.kilnBin, ['--root', root, 'build', ...(noCache ? ['--no-cache'] : []), '--progress', 'plain', '--platform', PLATFORMS, '-t', `bench-platforms:${fig.figure}${i}`, ctx]);
      return buildah.build(ctx, `localhost/bench-platforms:${fig.figure}${i}`, noCache);
    };
    const checked = new Set<Tool>();
    for (const fig of figures) {
      // interleaved: run i of every tool before run i+1 of any; round 0 is the warm-up
      for (let i = 0; i < o.runs + 1; i++) {
        for (const tool of tools) {
          if (fig.errors[tool]) continue;
          const r = await buildOnce(tool, fig, i);
          if (r.code !== 0) {
            fig.errors[tool] = `exit ${r.code}: ${tail(r.stderr, 3)}`;
            failures.push(`platforms/${fig.figure} ${tool}: ${fig.errors[tool]}`);
            continue;
          }
          if (!checked.has(tool)) {
            // once per tool: the result is an index (manifest list) of both platforms
            checked.add(tool);
            const got = tool === 'kiln' ? await storedPlatforms(root, `bench-platforms:${fig.figure}${i}`) : await buildah.platforms(`localhost/bench-platforms:${fig.figure}${i}`);
            if (got.join(',') !== PLATFORMS) failures.push(`platforms: ${tool}'s result lists ${got.join(', ') || 'no platforms'}, not ${PLATFORMS}`);
          }
          if (i > 0) (fig.samples[tool] ??= []).push(r.ms / 1000);
          o.log(`   platforms ${fig.figure.padEnd(6)} ${tool.padEnd(8)} ${(r.ms / 1000).toFixed(2)} s${i === 0 ? ' (warm-up)' : ''}`);
        }
      }
      for (const [t, xs] of Object.entries(fig.samples)) fig.median[t as Tool] = median(xs);
    }
    const f = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(2)).padStart(9);
    const lines = [
      `platforms: a two-platform build (${PLATFORMS}; arm64's RUN under QEMU user emulation) of a small project (medians, s)`,
      '',
      `  ${'figure'.padEnd(8)} ${'kiln'.padStart(9)} ${'buildah'.padStart(9)} ${'kiln/buildah'.padStart(13)}`,
      ...figures.map((x) => `  ${x.figure.padEnd(8)} ${f(x.median.kiln)} ${f(x.median.buildah)} ${ratio(x.median.kiln, x.median.buildah).padStart(13)}`),
    ];
    for (const x of figures) for (const [t, e] of Object.entries(x.errors)) lines.push(`  ${x.figure} ${t}: FAILED: ${e}`);
    return { results: figures, table: lines.join('\n'), failures, skipped };
  } finally {
    if (!o.keep) {
      if (buildahStarted) await buildah.close();
      await fs.rm(ctx, { recursive: true, force: true });
      await fs.rm(root, { recursive: true, force: true });
      await fs.rm(armTar, { force: true });
    }
  }
}

