/**
 * The bench's `cacheimport` scenario (issue 10): the fresh-runner cache-import build of the deps
 * scenario (scripts/bench.ts depsScenario: its context and Dockerfile), kiln's registry cache
 * against BuildKit's inline cache (docker 20.10's BuildKit offers only that with `docker build`).
 *
 * One docker-registry is started for the scenario, with a counting proxy (test/registry/proxy.ts)
 * in front of it: every peer talks to the proxy, so the bytes each fresh runner downloads are the
 * response bodies the proxy forwarded during its build.
 *
 * - kiln: root A builds with `--cache-to type=registry,ref=…,mode=max`; each timed run builds the
 *   same context on a fresh root B (busybox loaded: the import is not timed) with `--cache-from`.
 *   The figure fails unless B executes no step.
 * - BuildKit: `docker build --build-arg BUILDKIT_INLINE_CACHE=1` and `docker push` of the image;
 *   each timed run first removes the image and all build cache (`docker rmi`, `docker builder
 *   prune -af`; the busybox base stays loaded), then builds with `--cache-from` the pushed image.
 * - The cache-mounts variant: the install step downloads into a `RUN --mount=type=cache` directory
 *   and copies from it (as a package manager does), exported with `cache-mounts=all`; the figure
 *   reports what a fresh runner downloads when every step is cached (target: no mount layer).
 * - The seeded variant: the fresh runner's deps.txt has one package more, so the install step runs;
 *   kiln seeds the mount from the imported cache and "downloads" only the new package (the step
 *   prints "generated N of T"; the figure fails unless N is 1). BuildKit's inline cache carries no
 *   cache mount: it generates them all.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CACHE_CONFIG_KEY, type CacheMetadata } from '../src/cache/format.js';
import { RegistryClient } from '../src/registry/client.js';
import { startRegistry, type Registry } from '../test/registry/harness.js';
import { startProxy, type FaultProxy, type ProxiedRequest } from '../test/registry/proxy.js';
import { depsScenario, median, run, tail, type Exec } from './bench.js';

const dockerCli = '/usr/bin/docker';
const MiB = 1024 * 1024;

export interface CacheBenchOptions {
  work: string;
  kilnBin: string;
  /** busybox:latest as one kiln root saved it (`kiln save`): every root loads this very image. */
  savedTar: string;
  quick: boolean;
  runs: number;
  keep: boolean;
  peers: Array<'kiln' | 'buildkit'>;
  log: (message: string) => void;
}

type Tool = 'kiln' | 'buildkit';

/** What a fresh runner fetched from the registry during one build. */
export interface Download {
  /** Response body bytes of every request. */
  bytes: number;
  /** Of which blob GETs (layers and configs). */
  blobBytes: number;
  blobs: number;
  /** Of which the cache-mount layers (kiln's `cache-mounts=`). */
  mountBytes: number;
  requests: number;
}

/** Steps of the Dockerfile (FROM aside) a build ran and found cached. */
export interface StepCount {
  ran: number;
  cached: number;
}

export interface CacheFigure {
  figure: 'import' | 'import-mounts' | 'mounts-seeded';
  title: string;
  dockerfile: string;
  samples: Partial<Record<Tool, number[]>>;
  median: Partial<Record<Tool, number>>;
  errors: Partial<Record<Tool, string>>;
  /** Per timed run. */
  steps: Partial<Record<Tool, StepCount[]>>;
  downloads: Partial<Record<Tool, Download[]>>;
  /** The size of the cache-mount layers kiln's exported cache holds (what a fresh runner need not fetch). */
  cacheMountBytes?: number;
  /** Per timed run, the install step's "generated N of T" (the variant with a cache mount, when it ran). */
  generated: Partial<Record<Tool, string[]>>;
  target: { text: string; met: boolean | undefined };
}

/**
 * The deps scenario's install step with a cache mount: "download" each package into /cache when it
 * is not there yet, install it from there, and say how many it had to download ("generated N of T").
 */
export const MOUNTS_DOCKERFILE = 'Dockerfile.mounts';
export function mountsDockerfile(): string {
  return [
    'FROM busybox:latest',
    'COPY deps.txt /deps.txt',
    'RUN --mount=type=cache,target=/cache mkdir -p /deps && n=0 && t=0 && while read -r name kib; do t=$((t+1)); [ -f /cache/$name.so ] || { dd if=/dev/urandom of=/cache/$name.so bs=1024 count=$kib 2>/dev/null; n=$((n+1)); }; cp /cache/$name.so /deps/$name.so; done < /deps.txt && echo "generated $n of $t"',
    'COPY src/ /app/src',
    'RUN cat /app/src/*.js | md5sum > /app/build.txt && wc -c /app/src/*.js | tail -1 >> /app/build.txt',
    '',
  ].join('\n');
}

const isStep = (name: string) => /^\[(?:\S+ )?\d+\/\d+\]\s/.test(name) && !/^\[(?:\S+ )?\d+\/\d+\]\s+FROM\s/.test(name);

/** Counts from kiln's `--progress json` events: `done` is a step that ran, `cached` one that did not. */
export function kilnStepCount(jsonLines: string): StepCount {
  const c = { ran: 0, cached: 0 };
  for (const line of jsonLines.split('\n')) {
    if (!line.startsWith('{')) continue;
    let ev: { type?: string; name?: string };
    try {
      ev = JSON.parse(line) as { type?: string; name?: string };
    } catch {
      continue;
    }
    if (!isStep(ev.name ?? '')) continue;
    if (ev.type === 'done') c.ran++;
    else if (ev.type === 'cached') c.cached++;
  }
  return c;
}

/** Counts from BuildKit's `--progress plain` output: a step header `#N [i/n] …`, then `#N CACHED` or `#N DONE`. */
export function buildkitStepCount(plain: string): StepCount {
  const names = new Map<string, string>();
  const state = new Map<string, 'ran' | 'cached'>();
  for (const line of plain.split('\n')) {
    const m = /^#(\d+) (.*)$/.exec(line.trimEnd());
    if (!m) continue;
    const [, id, rest] = m;
    if (rest.startsWith('[') && !names.has(id)) names.set(id, rest);
    else if (rest === 'CACHED') state.set(id, 'cached');
    else if (/^DONE\b/.test(rest) && state.get(id) !== 'cached') state.set(id, 'ran');
  }
  const c = { ran: 0, cached: 0 };
  for (const [id, name] of names) {
    const s = state.get(id);
    if (!isStep(name) || !s) continue;
    c[s]++;
  }
  return c;
}

/** The bytes the proxy forwarded for `requests`, the layers in `mountLayers` counted apart too. */
export function downloaded(requests: ProxiedRequest[], mountLayers: ReadonlyMap<string, number>): Download {
  const d: Download = { bytes: 0, blobBytes: 0, blobs: 0, mountBytes: 0, requests: requests.length };
  for (const r of requests) {
    const n = r.bytes ?? 0;
    d.bytes += n;
    const blob = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(r.path.split('?')[0]);
    if (r.method !== 'GET' || !blob || n === 0) continue;
    d.blobBytes += n;
    d.blobs++;
    if (mountLayers.has(blob[1])) d.mountBytes += n;
  }
  return d;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < MiB) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / MiB).toFixed(2)} MiB`;
}

/** The cache-mount layers a registry cache names (from its config's kiln records), digest → size. */
async function mountLayersOf(ref: string): Promise<Map<string, number>> {
  const client = new RegistryClient({});
  try {
    const repo = client.repository(ref);
    const m = JSON.parse((await repo.getManifest(ref.slice(ref.lastIndexOf(':') + 1))).bytes.toString('utf8')) as { config: { digest: string }; layers: Array<{ digest: string; size: number }> };
    const config = JSON.parse((await repo.provider().readBlob(m.config.digest)).toString('utf8')) as { [CACHE_CONFIG_KEY]?: CacheMetadata };
    return new Map((config[CACHE_CONFIG_KEY]?.mounts ?? []).map((e) => [m.layers[e.layer].digest, m.layers[e.layer].size]));
  } finally {
    client.close();
  }
}

export async function cacheImportBench(o: CacheBenchOptions): Promise<{ results: CacheFigure[]; table: string; failures: string[]; skipped: string[] }> {
  const failures: string[] = [];
  const skipped: string[] = [];
  const figure = (id: CacheFigure['figure'], title: string, dockerfile: string, target: string): CacheFigure => ({
    figure: id,
    title,
    dockerfile,
    samples: {},
    median: {},
    errors: {},
    steps: {},
    downloads: {},
    generated: {},
    target: { text: target, met: undefined },
  });
  const figures = [
    figure('import', 'fresh runner, --cache-from (deps)', 'Dockerfile', 'kiln runs 0 steps'),
    figure('import-mounts', 'fresh runner, cache mount exported (cache-mounts=all)', MOUNTS_DOCKERFILE, 'kiln: 0 steps, no mount layer fetched'),
    figure('mounts-seeded', 'fresh runner, one package added (mount seeded)', MOUNTS_DOCKERFILE, 'kiln generates only the new package'),
  ];
  const ctx = path.join(o.work, 'ctx-cacheimport');
  const shape = await depsScenario.generate(ctx, o.quick);
  await fs.writeFile(path.join(ctx, MOUNTS_DOCKERFILE), mountsDockerfile());
  // the seeded figure's runner builds the same context with one package more in deps.txt
  const ctxAdded = path.join(o.work, 'ctx-cacheimport-added');
  await fs.cp(ctx, ctxAdded, { recursive: true });
  await fs.appendFile(path.join(ctxAdded, 'deps.txt'), 'pkg40 512\n');
  const contextOf = (f: CacheFigure) => (f.figure === 'mounts-seeded' ? ctxAdded : ctx);
  o.log(`\n== cacheimport: a fresh runner builds the deps context (${shape.files} files) with --cache-from a local registry`);

  const kiln = (root: string, args: string[]) => run(o.kilnBin, ['--root', root, ...args]);
  const docker = (args: string[]) => run(dockerCli, args, { env: { DOCKER_BUILDKIT: '1' } });
  const rootA = path.join(o.work, 'kiln-root-cache-a');
  const rootB = path.join(o.work, 'kiln-root-cache-b');
  const dockerTags = new Set<string>();
  let reg: Registry | undefined;
  let proxy: FaultProxy | undefined;
  const setupFailed = (what: string, r: Exec) => {
    failures.push(`cacheimport setup: ${what} failed (exit ${r.code}): ${tail(r.stderr, 4)}`);
    return false;
  };
  try {
    reg = await startRegistry();
    proxy = await startProxy(reg.host);
    const host = proxy.host;
    // the seeded figure imports what the import-mounts figure's exporter pushed
    const exported = (f: CacheFigure) => (f.figure === 'mounts-seeded' ? 'import-mounts' : f.figure);
    const cacheRef = (f: CacheFigure) => `${host}/bench/cache:${exported(f)}`;
    const imageRef = (f: CacheFigure) => `${host}/bench/deps:${exported(f)}`;
    const exporters = figures.filter((f) => exported(f) === f.figure);
    const mountLayers = new Map<CacheFigure, Map<string, number>>();

    // the exporting runner (kiln) and the pushed inline-cache image (BuildKit)
    let kilnOk = o.peers.includes('kiln');
    if (!kilnOk) skipped.push('kiln not in --peers');
    if (kilnOk) {
      const l = await kiln(rootA, ['load', '-i', o.savedTar]);
      kilnOk = l.code === 0 || setupFailed('kiln load (root A)', l);
    }
    for (const f of exporters) {
      if (!kilnOk) break;
      const extra = f.figure === 'import-mounts' ? ',cache-mounts=all' : '';
      const r = await kiln(rootA, ['build', '-q', '--cache-to', `type=registry,ref=${cacheRef(f)},mode=max${extra},ignore-error=false`, '-f', path.join(ctx, f.dockerfile), '-t', `kiln-bench-cache-a:${f.figure}`, ctx]);
      if (r.code !== 0) for (const g of figures.filter((x) => exported(x) === f.figure)) g.errors.kiln = `root A's build with --cache-to failed (exit ${r.code}): ${tail(r.stderr, 4)}`;
      else {
        const layers = await mountLayersOf(cacheRef(f));
        for (const g of figures.filter((x) => exported(x) === f.figure)) {
          mountLayers.set(g, layers);
          g.cacheMountBytes = [...layers.values()].reduce((a, b) => a + b, 0);
        }
      }
      o.log(`   export     kiln     ${f.figure}: ${r.code === 0 ? `${(r.ms / 1000).toFixed(2)} s, ${mountLayers.get(f)?.size ?? 0} mount layer(s) of ${formatBytes(f.cacheMountBytes ?? 0)}` : `FAILED: ${f.errors.kiln}`}`);
    }
    let dockerOk = o.peers.includes('buildkit');
    if (!dockerOk) skipped.push('buildkit not in --peers');
    else if ((await run(dockerCli, ['info'], { timeoutMs: 20_000 })).code !== 0) {
      dockerOk = false;
      skipped.push('buildkit: dockerd not reachable');
    } else {
      const l = await run(dockerCli, ['load', '-i', o.savedTar]);
      dockerOk = l.code === 0 || setupFailed('docker load of the busybox base', l);
      // docker's cache mounts are global: one left by an earlier build would fill /cache for the export
      const p = dockerOk ? await run(dockerCli, ['builder', 'prune', '-af']) : l;
      dockerOk = p.code === 0 || setupFailed('docker builder prune -af', p);
    }
    for (const f of exporters) {
      if (!dockerOk) break;
      const ref = imageRef(f);
      dockerTags.add(ref);
      const b = await docker(['build', '--network', 'host', '-q', '--build-arg', 'BUILDKIT_INLINE_CACHE=1', '-f', path.join(ctx, f.dockerfile), '-t', ref, ctx]);
      const p = b.code === 0 ? await run(dockerCli, ['push', ref]) : b;
      if (p.code !== 0) for (const g of figures.filter((x) => exported(x) === f.figure)) g.errors.buildkit = `${b.code !== 0 ? 'docker build --build-arg BUILDKIT_INLINE_CACHE=1' : 'docker push'} failed (exit ${p.code}): ${tail(p.stderr, 4)}`;
      o.log(`   export     buildkit ${f.figure}: ${p.code === 0 ? `built and pushed ${ref}` : `FAILED: ${f.errors.buildkit}`}`);
    }

    const timed = async (f: CacheFigure, tool: Tool, before: () => Promise<boolean>, build: () => Promise<Exec>, count: (r: Exec) => StepCount) => {
      if (f.errors[tool]) return;
      if (!(await before())) return;
      const mark = proxy!.requests.length;
      const r = await build();
      if (r.code !== 0) {
        f.errors[tool] = `the fresh runner's build failed (exit ${r.code}): ${tail(r.stderr, 4)}`;
        o.log(`   ${f.figure.padEnd(13)} ${tool.padEnd(8)} FAILED: ${f.errors[tool]}`);
        return;
      }
      const steps = count(r);
      const d = downloaded(proxy!.requests.slice(mark), mountLayers.get(f) ?? new Map());
      const gen = generatedOf(r.stderr);
      (f.steps[tool] ??= []).push(steps);
      (f.downloads[tool] ??= []).push(d);
      if (gen) (f.generated[tool] ??= []).push(gen);
      o.log(`   ${f.figure.padEnd(13)} ${tool.padEnd(8)} ${(r.ms / 1000).toFixed(2)} s, ${steps.ran} step(s) ran, ${steps.cached} cached${gen ? `, generated ${gen}` : ''}, downloaded ${formatBytes(d.bytes)} (${d.blobs} blobs, mount layers ${formatBytes(d.mountBytes)})`);
      const why = tool === 'kiln' ? unexpected(f, steps, gen, d) : undefined;
      if (why) {
        f.errors.kiln = why;
        return;
      }
      (f.samples[tool] ??= []).push(r.ms);
    };
    for (let i = 0; i < o.runs; i++) {
      for (const f of figures) {
        if (kilnOk) {
          await timed(
            f,
            'kiln',
            async () => {
              await removeRoot(rootB);
              const l = await kiln(rootB, ['load', '-i', o.savedTar]);
              if (l.code !== 0) f.errors.kiln = `kiln load (fresh root) failed: ${tail(l.stderr, 4)}`;
              return l.code === 0;
            },
            () => kiln(rootB, ['build', '--progress', 'json', '--cache-from', `type=registry,ref=${cacheRef(f)}`, '-f', path.join(contextOf(f), f.dockerfile), '-t', 'kiln-bench-cacheimport:b', contextOf(f)]),
            (r) => kilnStepCount(r.stderr),
          );
          await removeRoot(rootB);
        }
        if (dockerOk) {
          const tag = 'kiln-bench-cacheimport:latest';
          dockerTags.add(tag);
          await timed(
            f,
            'buildkit',
            async () => {
              // a fresh runner: neither the image nor any build cache (the busybox base stays)
              await run(dockerCli, ['rmi', '-f', tag, imageRef(f)]);
              const p = await run(dockerCli, ['builder', 'prune', '-af']);
              if (p.code !== 0) f.errors.buildkit = `docker builder prune -af failed: ${tail(p.stderr, 4)}`;
              return p.code === 0;
            },
            () => docker(['build', '--network', 'host', '--progress', 'plain', '--cache-from', imageRef(f), '-f', path.join(contextOf(f), f.dockerfile), '-t', tag, contextOf(f)]),
            (r) => buildkitStepCount(r.stderr),
          );
        }
      }
    }
  } catch (e) {
    failures.push(`cacheimport: ${(e as Error).message}`);
  } finally {
    await proxy?.stop();
    await reg?.stop();
    if (!o.keep) {
      for (const t of dockerTags) await run(dockerCli, ['rmi', '-f', t]);
      if (dockerTags.size > 0) await run(dockerCli, ['builder', 'prune', '-af']);
      await removeRoot(rootA);
      await removeRoot(rootB);
      await fs.rm(ctx, { recursive: true, force: true });
      await fs.rm(ctxAdded, { recursive: true, force: true });
    }
  }
  for (const f of figures) {
    for (const [tool, xs] of Object.entries(f.samples) as Array<[Tool, number[]]>) {
      const m = median(xs);
      if (m !== undefined) f.median[tool] = m;
    }
    if (f.errors.kiln) f.target.met = false;
    else if ((f.steps.kiln ?? []).length > 0) f.target.met = true;
    for (const [tool, e] of Object.entries(f.errors)) failures.push(`cacheimport/${f.figure} ${tool}: ${e}`);
  }
  return { results: figures, table: cacheTable(figures), failures, skipped };
}

/** The install step's "generated N of T" line in a build's output, if it ran. */
export function generatedOf(output: string): string | undefined {
  const m = /generated (\d+) of (\d+)/.exec(output);
  return m ? `${m[1]} of ${m[2]}` : undefined;
}

/** Why a kiln run misses its figure's point, or undefined. */
export function unexpected(f: Pick<CacheFigure, 'figure'>, steps: StepCount, generated: string | undefined, download?: Download): string | undefined {
  if (f.figure !== 'mounts-seeded') {
    if (steps.ran > 0) return `the fresh runner executed ${steps.ran} step(s) (expected 0: every step is in the imported cache)`;
    if (f.figure === 'import-mounts' && download && download.mountBytes > 0) return `the fresh runner fetched ${formatBytes(download.mountBytes)} of cache-mount layers though no step using the mount ran`;
    return undefined;
  }
  if (!generated) return 'the install step did not run (its output has no "generated N of T")';
  if (!generated.startsWith('1 of ')) return `the install step generated ${generated} packages: the cache mount was not seeded from the imported cache (expected only the added one)`;
  return undefined;
}

/** Removes a kiln root, unmounting anything a build left mounted under it first. */
async function removeRoot(root: string): Promise<void> {
  await run('sh', ['-c', `grep -o " ${root}/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
  await fs.rm(root, { recursive: true, force: true });
}

function cacheTable(figures: CacheFigure[]): string {
  const s = (v: number | undefined) => (v === undefined ? '—' : `${(v / 1000).toFixed(2)} s`);
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b <= 0 ? '—' : `${(a / b).toFixed(2)}×`);
  const last = <T>(xs: T[] | undefined): T | undefined => xs?.[xs.length - 1];
  const steps = (c: StepCount | undefined, gen: string | undefined) => (c ? `${c.ran} ran / ${c.cached} cached${gen ? `; generated ${gen}` : ''}` : '—');
  const bytes = (d: Download | undefined, mountsInCache?: number) =>
    d ? `${formatBytes(d.bytes)} (${d.blobs} blobs, ${formatBytes(d.bytes - d.blobBytes)} manifests${mountsInCache ? `; mount layers ${formatBytes(d.mountBytes)} of ${formatBytes(mountsInCache)}` : ''})` : '—';
  const head = ['cacheimport / figure', 'kiln', 'BuildKit', 'kiln/BuildKit', 'kiln steps', 'BuildKit steps', 'kiln downloaded', 'BuildKit downloaded', 'target', 'met'];
  const rows = figures.map((f) => [
    `cacheimport / ${f.title}`,
    s(f.median.kiln),
    s(f.median.buildkit),
    ratio(f.median.kiln, f.median.buildkit),
    steps(last(f.steps.kiln), last(f.generated.kiln)),
    steps(last(f.steps.buildkit), last(f.generated.buildkit)),
    bytes(last(f.downloads.kiln), f.cacheMountBytes),
    bytes(last(f.downloads.buildkit)),
    f.target.text,
    f.target.met === undefined ? 'n/a' : f.target.met ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
