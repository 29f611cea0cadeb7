/**
 * kiln's benchmark (issue 4): the same Dockerfiles built by kiln, BuildKit (dockerd's builtin, via
 * Debian's docker 20.10 CLI) and buildah, interleaved, medians per figure, ratios and targets.
 *
 *   npm run bench -- [--only NAME[,NAME]] [--runs N] [--quick] [--json FILE] [--peers kiln,buildkit,buildah] [--baseline DIR] [--keep]
 *
 * --baseline DIR adds a fourth peer: the kiln built in another checkout DIR (e.g. the last release
 * or main before a change), run the same way and interleaved with the others, so a change's cost
 * is a ratio measured under the same load rather than a comparison with an old table.
 *
 * Contexts are generated deterministically by the code below into a temp dir (see bench/README.md).
 * A peer that is not installed or cannot start is skipped with the reason printed; the bench never
 * fails for that. Run as root (runc, overlayfs, dockerd and buildah all need it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, promises as fs, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cacheImportBench } from './bench-cache.js';
import { registryBench } from './bench-registry.js';
import { networkBench } from './bench-network.js';
import { nodeAppBench } from './bench-node.js';
import { platformsBench } from './bench-platforms.js';
import { compressBench } from './bench-compress.js';
import { sbomBench } from './bench-sbom.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * The kiln command the bench runs: bin/kiln (what npm installs as `kiln`) in a private copy
 * of the compiled tree (see snapshotKiln).
 */
let kilnBin = path.join(repoRoot, 'bin', 'kiln');

/**
 * Copies bin/ and dist/src/ (with package.json, node_modules linked) into the work dir and runs
 * kiln from there, so a rebuild of dist/ while the bench runs cannot change kiln mid-measurement.
 * The CLI bundle (dist/kiln.cjs) is copied too, after dist/src so that bin/kiln.js does not take
 * it for stale, with its V8 code caches (each is checked against the bundle before use).
 */
async function snapshotKiln(work: string, from = repoRoot, name = 'kiln'): Promise<string> {
  if (!existsSync(path.join(from, 'dist', 'src', 'cli', 'main.js'))) throw new Error(`${from} has no built kiln (run npm run build there)`);
  const dir = path.join(work, name);
  await fs.mkdir(path.join(dir, 'dist'), { recursive: true });
  await fs.cp(path.join(from, 'bin'), path.join(dir, 'bin'), { recursive: true });
  await fs.cp(path.join(from, 'dist', 'src'), path.join(dir, 'dist', 'src'), { recursive: true });
  const bundled = (await fs.readdir(path.join(from, 'dist'))).filter((f) => f === 'kiln.cjs' || (f.startsWith('kiln.cjs.') && f.endsWith('.cache')));
  for (const f of bundled) await fs.copyFile(path.join(from, 'dist', f), path.join(dir, 'dist', f));
  await fs.copyFile(path.join(from, 'package.json'), path.join(dir, 'package.json'));
  await fs.symlink(path.join(from, 'node_modules'), path.join(dir, 'node_modules'));
  return path.join(dir, 'bin', 'kiln');
}
const dockerCli = '/usr/bin/docker';

// ---------------------------------------------------------------------------------------------
// Deterministic data

/** A deterministic byte stream: AES-128-CTR keystream keyed by a seed string. */
export class ByteStream {
  private readonly cipher;
  constructor(seed: string) {
    const k = createHash('sha256').update(seed).digest();
    this.cipher = createCipheriv('aes-128-ctr', k.subarray(0, 16), k.subarray(16, 32));
  }
  bytes(n: number): Buffer {
    return this.cipher.update(Buffer.alloc(n));
  }
  /** A whole number in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + (this.bytes(4).readUInt32LE(0) % (hi - lo + 1));
  }
  /** Printable text (base64 lines of 76 chars), as compressible as source code roughly is not, but close enough. */
  text(n: number): Buffer {
    const raw = this.bytes(Math.ceil((n * 3) / 4) + 3).toString('base64');
    const lines = raw.match(/.{1,76}/g) ?? [];
    return Buffer.from(lines.join('\n')).subarray(0, n);
  }
}

const MiB = 1024 * 1024;

async function writeFile(p: string, data: string | Buffer): Promise<void> {
  await fs.mkdir(path.dirname(p), { recursive: true });
  await fs.writeFile(p, data);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

export type ScenarioName = 'parallel' | 'deps' | 'bigcontext' | 'bigrun' | 'steps' | 'registry' | 'cacheimport' | 'network' | 'node-app' | 'platforms' | 'compress' | 'sbom';

/** Compared with a figure's kiln median. */
export type Target =
  | { kind: 'absolute'; maxMs: number; text: string }
  | { kind: 'vs-buildkit'; maxRatio: number; text: string };

export interface Figure {
  id: string;
  title: string;
  /** --no-cache for every peer. */
  noCache: boolean;
  /** Dockerfile name in the context (default Dockerfile). */
  dockerfile?: string;
  /** One untimed build per peer before the timed runs (rebuild figures). */
  warmup?: boolean;
  /**
   * Called before each timed build (and the warm-up) with a revision string unique to this call
   * and this bench run (fixed length): content no earlier run produced, so no peer's persistent
   * cache (docker's is global) can already hold a result for it.
   */
  before?: (ctx: string, revision: string) => Promise<void>;
  target?: Target;
}

export interface Scenario {
  name: ScenarioName;
  title: string;
  /** Writes the build context into ctx; returns a short description of what was generated. */
  generate: (ctx: string, quick: boolean) => Promise<{ files: number; bytes: number }>;
  figures: Figure[];
}

/** Scenario 1: two independent 2 s stages and a final stage copying from both. */
export const parallelScenario: Scenario = {
  name: 'parallel',
  title: '1. two independent `RUN sleep 2` stages, COPY --from both',
  async generate(ctx) {
    const df = [
      'FROM busybox:latest AS a',
      'RUN sleep 2 && head -c 1048576 /dev/urandom > /a.bin',
      'FROM busybox:latest AS b',
      'RUN sleep 2 && head -c 1048576 /dev/urandom > /b.bin',
      'FROM busybox:latest',
      'COPY --from=a /a.bin /a.bin',
      'COPY --from=b /b.bin /b.bin',
      '',
    ].join('\n');
    await writeFile(path.join(ctx, 'Dockerfile'), df);
    return { files: 1, bytes: df.length };
  },
  figures: [
    {
      id: 'cold',
      title: 'cold build',
      noCache: true,
      target: { kind: 'absolute', maxMs: 2400, text: 'kiln ≤ 1.2 × 2 s' },
    },
  ],
};

/** Scenario 2: dependency install, then source; rebuild after a one-file change in src/. */
export const depsScenario: Scenario = {
  name: 'deps',
  title: '2. COPY deps.txt, RUN install (20 MB), COPY src/, RUN build; one src file changed',
  async generate(ctx, quick) {
    const rnd = new ByteStream('deps');
    const total = (quick ? 4 : 20) * MiB;
    const count = 40;
    const deps: string[] = [];
    let left = total;
    for (let i = 0; i < count; i++) {
      // sizes in KiB, deterministic, summing to the total
      const kib = i === count - 1 ? Math.round(left / 1024) : rnd.int(Math.round(total / count / 1024 / 2), Math.round((total / count / 1024) * 1.5));
      left -= kib * 1024;
      deps.push(`pkg${String(i).padStart(2, '0')} ${kib}`);
    }
    await writeFile(path.join(ctx, 'deps.txt'), `${deps.join('\n')}\n`);
    let bytes = 0;
    const srcFiles = quick ? 20 : 100;
    for (let i = 0; i < srcFiles; i++) {
      const data = rnd.text(rnd.int(500, 4000));
      bytes += data.length;
      await writeFile(path.join(ctx, 'src', `mod${String(i).padStart(3, '0')}.js`), data);
    }
    const df = [
      'FROM busybox:latest',
      'COPY deps.txt /deps.txt',
      // "install": every package's files from /dev/urandom, sizes from deps.txt
      'RUN mkdir -p /deps && while read -r name kib; do dd if=/dev/urandom of=/deps/$name.so bs=1024 count=$kib 2>/dev/null; done < /deps.txt',
      'COPY src/ /app/src',
      'RUN cat /app/src/*.js | md5sum > /app/build.txt && wc -c /app/src/*.js | tail -1 >> /app/build.txt',
      '',
    ].join('\n');
    await writeFile(path.join(ctx, 'Dockerfile'), df);
    return { files: srcFiles + 2, bytes };
  },
  figures: [
    { id: 'cold', title: 'cold build', noCache: true },
    {
      id: 'src-change',
      title: 'rebuild, one src file changed',
      noCache: false,
      warmup: true,
      before: (ctx, revision) => fs.writeFile(path.join(ctx, 'src', 'mod000.js'), `// revision ${revision}\nexport const v = '${revision}';\n`),
      target: { kind: 'vs-buildkit', maxRatio: 1, text: 'kiln ≤ BuildKit' },
    },
  ],
};

/** The big context's shape: file count and total size. */
export function bigContextShape(quick: boolean): { files: number; bytes: number; big: number } {
  return quick ? { files: 2000, bytes: 30 * MiB, big: 4 } : { files: 20_000, bytes: 300 * MiB, big: 20 };
}

/** Scenario 3: a 20,000-file / 300 MB context copied whole. */
export const bigContextScenario: Scenario = {
  name: 'bigcontext',
  title: '3. 20,000-file / 300 MB context, COPY . /ctx + RUN',
  async generate(ctx, quick) {
    const shape = bigContextShape(quick);
    const rnd = new ByteStream('bigcontext');
    const df = 'FROM busybox:latest\nCOPY . /ctx\nRUN find /ctx -type f | wc -l > /count && du -s /ctx >> /count\n';
    await writeFile(path.join(ctx, 'Dockerfile'), df);
    let bytes = df.length;
    const small = shape.files - shape.big - 1;
    const perDir = 100;
    for (let d = 0; d * perDir < small; d++) await fs.mkdir(path.join(ctx, 'src', `d${String(d).padStart(3, '0')}`), { recursive: true });
    // small files: text, 256 B .. 16 KiB
    for (let i = 0; i < small; i++) {
      const data = rnd.text(rnd.int(256, 16 * 1024));
      bytes += data.length;
      writeFileSync(path.join(ctx, 'src', `d${String(Math.floor(i / perDir)).padStart(3, '0')}`, `f${String(i).padStart(5, '0')}.txt`), data);
    }
    // big files: random bytes, the rest of the total split evenly
    mkdirSync(path.join(ctx, 'assets'), { recursive: true });
    const bigEach = Math.floor((shape.bytes - bytes) / shape.big);
    for (let i = 0; i < shape.big; i++) {
      const size = i === shape.big - 1 ? shape.bytes - bytes : bigEach;
      bytes += size;
      writeFileSync(path.join(ctx, 'assets', `blob${String(i).padStart(2, '0')}.bin`), rnd.bytes(size));
    }
    return { files: shape.files, bytes };
  },
  figures: [
    { id: 'cold', title: 'cold build', noCache: true },
    {
      id: 'noop',
      title: 'no-op rebuild',
      noCache: false,
      warmup: true,
      target: { kind: 'vs-buildkit', maxRatio: 0.5, text: 'kiln ≤ 0.5 × BuildKit' },
    },
    {
      id: 'touch1',
      title: 'rebuild, one file changed',
      noCache: false,
      // the no-op figure's builds left every peer's cache warm
      before: async (ctx, revision) => {
        const p = path.join(ctx, 'src', 'd000', 'f00000.txt');
        const old = await fs.readFile(p);
        const tag = Buffer.from(`rev ${revision}\n`);
        tag.copy(old, 0); // same size, new content
        await fs.writeFile(p, old);
      },
    },
  ],
};

/** Scenario 4: one RUN writing 500 MB (random, base64 text and zeros: a mix gzip can partly shrink). */
export function bigRunDockerfile(quick: boolean): string {
  const [rand, text, zero] = quick ? [20, 15, 15] : [200, 150, 150];
  return [
    'FROM busybox:latest',
    `RUN mkdir /big && head -c ${rand}m /dev/urandom > /big/random.bin && head -c ${Math.round((text * 3) / 4)}m /dev/urandom | base64 > /big/text.b64 && dd if=/dev/zero of=/big/zero.bin bs=1M count=${zero} 2>/dev/null`,
    '',
  ].join('\n');
}

export const bigRunScenario: Scenario = {
  name: 'bigrun',
  title: '4. one RUN writing 500 MB (200 MB random, 150 MB base64 text, 150 MB zeros)',
  async generate(ctx, quick) {
    const df = bigRunDockerfile(quick);
    await writeFile(path.join(ctx, 'Dockerfile'), df);
    return { files: 1, bytes: df.length };
  },
  figures: [{ id: 'cold', title: 'cold build', noCache: true }],
};

export const STEP_COUNT = 40;

/** Scenario 5: 40 small RUN steps; Dockerfile.one is the same with 1 step, for the fixed cost. */
export const stepsScenario: Scenario = {
  name: 'steps',
  title: `5. ${STEP_COUNT} small steps (RUN echo N > /fN)`,
  async generate(ctx) {
    const many = ['FROM busybox:latest', ...Array.from({ length: STEP_COUNT }, (_, i) => `RUN echo ${i + 1} > /f${i + 1}`), ''].join('\n');
    const one = ['FROM busybox:latest', 'RUN echo 1 > /f1', ''].join('\n');
    await writeFile(path.join(ctx, 'Dockerfile'), many);
    await writeFile(path.join(ctx, 'Dockerfile.one'), one);
    return { files: 2, bytes: many.length + one.length };
  },
  figures: [
    { id: 'cold', title: 'cold build', noCache: true },
    { id: 'cached', title: `fully cached rebuild (${STEP_COUNT} steps)`, noCache: false, warmup: true },
    { id: 'cached-one', title: 'fully cached rebuild (1 step)', noCache: false, warmup: true, dockerfile: 'Dockerfile.one' },
  ],
};

export const scenarios: Scenario[] = [parallelScenario, depsScenario, bigContextScenario, bigRunScenario, stepsScenario];

// ---------------------------------------------------------------------------------------------
// Running things

export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export function run(cmd: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms });
    });
  });
}

export function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

export function tail(s: string, lines = 8): string {
  return s.trim().split('\n').slice(-lines).join('\n');
}

interface BuildRequest {
  ctx: string;
  tag: string;
  noCache: boolean;
  dockerfile?: string;
}

interface Sample {
  ms: number;
  /** kiln only: ms per cached step from its progress events, when the build had ≥ 2 cached steps. */
  cachedStepMs?: number;
  /** kiln only: each executed step's duration from its progress events. */
  steps?: Array<{ name: string; ms: number }>;
}

export type PeerId = 'kiln' | 'buildkit' | 'buildah' | 'baseline';

interface Peer {
  id: PeerId;
  /** Why this peer is skipped, or undefined when it runs. */
  skip?: string;
  startScenario(name: string): Promise<void>;
  build(req: BuildRequest): Promise<Sample>;
  endScenario(keep: boolean): Promise<void>;
  close(keep: boolean): Promise<void>;
}

class BuildError extends Error {}

/** ms per cached step: the span between the first and last `cached` event over the steps between them. */
export function cachedStepMsFromEvents(jsonLines: string): number | undefined {
  const times = parseEvents(jsonLines)
    .filter((ev) => ev.type === 'cached' && ev.ts)
    .map((ev) => Date.parse(ev.ts!));
  if (times.length < 2) return undefined;
  return (times[times.length - 1] - times[0]) / (times.length - 1);
}

/** Executed steps and their durations, from kiln's `done` events. */
export function stepTimesFromEvents(jsonLines: string): Array<{ name: string; ms: number }> {
  return parseEvents(jsonLines)
    .filter((ev) => ev.type === 'done' && typeof ev.ms === 'number')
    .map((ev) => ({ name: ev.name ?? '?', ms: ev.ms! }));
}

function parseEvents(jsonLines: string): Array<{ type?: string; ts?: string; name?: string; ms?: number }> {
  const out = [];
  for (const line of jsonLines.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as { type?: string; ts?: string; name?: string; ms?: number });
    } catch {
      // not an event line
    }
  }
  return out;
}

class KilnPeer implements Peer {
  skip?: string;
  private root?: string;
  constructor(
    private readonly work: string,
    private readonly baseTar: string,
    private readonly bin: () => string = () => kilnBin,
    readonly id: 'kiln' | 'baseline' = 'kiln',
  ) {}
  async startScenario(name: string): Promise<void> {
    this.root = path.join(this.work, `${this.id}-root-${name}`);
    await fs.rm(this.root, { recursive: true, force: true });
    const r = await run(this.bin(), ['--root', this.root, 'import', this.baseTar, 'busybox:latest']);
    if (r.code !== 0) throw new BuildError(`kiln import failed: ${tail(r.stderr)}`);
  }
  async build(req: BuildRequest): Promise<Sample> {
    if (!this.root) throw new Error('kiln: no scenario started');
    const args = ['--root', this.root, 'build', '--progress', 'json', '-t', req.tag];
    if (req.noCache) args.push('--no-cache');
    if (req.dockerfile) args.push('-f', path.join(req.ctx, req.dockerfile));
    args.push(req.ctx);
    const r = await run(this.bin(), args);
    if (r.code !== 0) throw new BuildError(`${this.id} build failed (exit ${r.code}): ${tail(r.stderr)}`);
    return { ms: r.ms, cachedStepMs: cachedStepMsFromEvents(r.stderr), steps: stepTimesFromEvents(r.stderr) };
  }
  async endScenario(keep: boolean): Promise<void> {
    if (this.root && !keep) await fs.rm(this.root, { recursive: true, force: true });
  }
  async close(): Promise<void> {}
}

class BuildKitPeer implements Peer {
  readonly id = 'buildkit' as const;
  skip?: string;
  private readonly tags = new Set<string>();
  private readonly env = { DOCKER_BUILDKIT: '1' };
  private work = '';
  private savedTar = '';

  /** Undefined when the daemon answers (started here if need be), else why not. */
  private async ensureDaemon(): Promise<string | undefined> {
    if (await this.ping()) return undefined;
    if (!have('dockerd')) return 'dockerd not installed and no daemon running';
    if (process.getuid?.() !== 0) return 'dockerd not running and not root to start it';
    const log = path.join(this.work, 'dockerd.log');
    const child = spawn('sh', ['-c', `dockerd >>${log} 2>&1`], { detached: true, stdio: 'ignore' });
    child.unref();
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 500));
      if (await this.ping()) return undefined;
    }
    return `dockerd did not start within 30 s (see ${log})`;
  }

  async init(savedTar: string, work: string): Promise<void> {
    this.work = work;
    this.savedTar = savedTar;
    if (!existsSync(dockerCli)) return void (this.skip = `${dockerCli} not installed (apt-get install docker.io)`);
    const why = await this.ensureDaemon();
    if (why) return void (this.skip = why);
    const load = await run(dockerCli, ['load', '-i', savedTar]);
    if (load.code !== 0) return void (this.skip = `docker load of the busybox base failed: ${tail(load.stderr, 3)}`);
    const probeDir = path.join(work, 'buildkit-probe');
    await writeFile(path.join(probeDir, 'Dockerfile'), 'FROM busybox:latest\nRUN true\n');
    try {
      await this.build({ ctx: probeDir, tag: 'kiln-bench-probe:latest', noCache: true });
    } catch (e) {
      this.skip = `a trivial BuildKit build failed: ${(e as Error).message}`;
    }
  }
  private async ping(): Promise<boolean> {
    return (await run(dockerCli, ['info'], { timeoutMs: 10_000 })).code === 0;
  }
  async startScenario(): Promise<void> {}
  async build(req: BuildRequest): Promise<Sample> {
    const args = ['build', '--network', 'host', '-q', '-t', req.tag];
    if (req.noCache) args.push('--no-cache');
    if (req.dockerfile) args.push('-f', path.join(req.ctx, req.dockerfile));
    args.push(req.ctx);
    this.tags.add(req.tag);
    let r = await run(dockerCli, args, { env: this.env });
    if (r.code !== 0 && this.work && !(await this.ping())) {
      // the daemon went away under us (something else stopped it): start it again, retry once
      const why = await this.ensureDaemon();
      if (why) throw new BuildError(`dockerd stopped during the bench and could not be restarted: ${why}`);
      log('   (dockerd had stopped; restarted it and retried this build)');
      await run(dockerCli, ['load', '-i', this.savedTar]);
      r = await run(dockerCli, args, { env: this.env });
    }
    if (r.code !== 0) throw new BuildError(`docker build failed (exit ${r.code}): ${tail(r.stderr)}`);
    return { ms: r.ms };
  }
  async endScenario(keep: boolean): Promise<void> {
    if (keep) return;
    for (const t of this.tags) await run(dockerCli, ['rmi', t]);
    this.tags.clear();
  }
  async close(keep: boolean): Promise<void> {
    await this.endScenario(keep);
  }
}

class BuildahPeer implements Peer {
  readonly id = 'buildah' as const;
  skip?: string;
  private readonly storeArgs: string[];
  private readonly storeDir: string;
  private readonly env: Record<string, string>;
  constructor(work: string) {
    this.storeDir = path.join(work, 'buildah');
    this.storeArgs = ['--root', path.join(this.storeDir, 'storage'), '--runroot', path.join(this.storeDir, 'run'), '--storage-driver', 'overlay'];
    // no registry lookups for short names: busybox:latest is localhost/busybox:latest in the private store
    const conf = path.join(this.storeDir, 'registries.conf');
    this.env = { CONTAINERS_REGISTRIES_CONF: conf, BUILDAH_ISOLATION: 'oci' };
  }
  async init(savedTar: string): Promise<void> {
    if (!have('buildah')) return void (this.skip = 'buildah not installed (apt-get install buildah)');
    if (process.getuid?.() !== 0) return void (this.skip = 'buildah with runc and overlay needs root here');
    if (!have('runc')) return void (this.skip = 'runc not installed');
    await writeFile(path.join(this.storeDir, 'registries.conf'), 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n');
    const pull = await run('buildah', [...this.storeArgs, 'pull', `docker-archive:${savedTar}`], { env: this.env });
    if (pull.code !== 0) return void (this.skip = `buildah pull of the busybox base failed: ${tail(pull.stderr, 3)}`);
    const id = pull.stdout.trim().split('\n').pop() ?? '';
    const tag = await run('buildah', [...this.storeArgs, 'tag', id, 'localhost/busybox:latest'], { env: this.env });
    if (tag.code !== 0) return void (this.skip = `buildah tag failed: ${tail(tag.stderr, 3)}`);
    const probeDir = path.join(this.storeDir, 'probe');
    await writeFile(path.join(probeDir, 'Dockerfile'), 'FROM busybox:latest\nRUN true\n');
    try {
      await this.build({ ctx: probeDir, tag: 'kiln-bench-probe:latest', noCache: true });
    } catch (e) {
      this.skip = `a trivial buildah build failed: ${(e as Error).message}`;
    }
  }
  async startScenario(): Promise<void> {}
  async build(req: BuildRequest): Promise<Sample> {
    const args = [...this.storeArgs, 'bud', '--runtime', 'runc', '--layers', '--pull=never', '--network', 'host', '--jobs', String(os.availableParallelism()), '-q', '-t', req.tag];
    if (req.noCache) args.push('--no-cache');
    if (req.dockerfile) args.push('-f', path.join(req.ctx, req.dockerfile));
    args.push(req.ctx);
    const r = await run('buildah', args, { env: this.env });
    if (r.code !== 0) throw new BuildError(`buildah bud failed (exit ${r.code}): ${tail(r.stderr)}`);
    return { ms: r.ms };
  }
  async endScenario(): Promise<void> {}
  async close(keep: boolean): Promise<void> {
    if (keep || this.skip) return;
    await run('buildah', [...this.storeArgs, 'rm', '--all'], { env: this.env });
    await run('buildah', [...this.storeArgs, 'rmi', '--all', '--force'], { env: this.env });
    // the overlay driver leaves its own mount of the layer directory
    spawnSync('sh', ['-c', `grep -o " ${this.storeDir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`], { stdio: 'ignore' });
    await fs.rm(this.storeDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Results

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface FigureResult {
  scenario: ScenarioName;
  figure: string;
  title: string;
  unit: 's' | 'ms';
  samples: Partial<Record<PeerId, number[]>>;
  errors: Partial<Record<PeerId, string>>;
  median: Partial<Record<PeerId, number>>;
  target?: { text: string; met: boolean | undefined };
  /** kiln's executed steps in its last timed build of this figure. */
  kilnSteps?: Array<{ name: string; ms: number }>;
}

function evaluateTarget(t: Target | undefined, med: Partial<Record<PeerId, number>>): FigureResult['target'] {
  if (!t) return undefined;
  const k = med.kiln;
  if (k === undefined) return { text: t.text, met: undefined };
  if (t.kind === 'absolute') return { text: t.text, met: k <= t.maxMs };
  const b = med.buildkit;
  return { text: t.text, met: b === undefined ? undefined : k <= b * t.maxRatio };
}

function fmt(v: number | undefined, unit: 's' | 'ms', n?: number, runs?: number): string {
  if (v === undefined) return '—';
  const text = unit === 's' ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`;
  // fewer samples than asked for (the per-figure time budget): say how many
  return n !== undefined && runs !== undefined && n < runs ? `${text} (n=${n})` : text;
}

function ratio(a: number | undefined, b: number | undefined): string {
  // a derived figure can come out ≤ 0 from noise (per-step cost below the run-to-run jitter)
  return a === undefined || b === undefined || a <= 0 || b <= 0 ? '—' : `${(a / b).toFixed(2)}×`;
}

function table(results: FigureResult[], runs: number): string {
  const withBaseline = results.some((r) => r.median.baseline !== undefined);
  const head = ['scenario / figure', 'kiln', 'BuildKit', 'buildah', ...(withBaseline ? ['baseline'] : []), 'kiln/BuildKit', 'kiln/buildah', ...(withBaseline ? ['kiln/baseline'] : []), 'target', 'met'];
  const rows = results.map((r) => [
    `${r.scenario} / ${r.title}`,
    fmt(r.median.kiln, r.unit, r.samples.kiln?.length, runs),
    fmt(r.median.buildkit, r.unit, r.samples.buildkit?.length, runs),
    fmt(r.median.buildah, r.unit, r.samples.buildah?.length, runs),
    ...(withBaseline ? [fmt(r.median.baseline, r.unit, r.samples.baseline?.length, runs)] : []),
    ratio(r.median.kiln, r.median.buildkit),
    ratio(r.median.kiln, r.median.buildah),
    ...(withBaseline ? [ratio(r.median.kiln, r.median.baseline)] : []),
    r.target?.text ?? '',
    r.target ? (r.target.met === undefined ? 'n/a' : r.target.met ? 'yes' : 'NO') : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

export interface BenchOptions {
  only?: ScenarioName[];
  runs: number;
  quick: boolean;
  json?: string;
  peers: PeerId[];
  /** Another checkout whose built kiln runs as the 'baseline' peer. */
  baseline?: string;
  keep: boolean;
  /** Stop repeating a figure for a peer once its timed builds add up to this many seconds. */
  budgetS: number;
}

export function parseArgs(argv: string[]): BenchOptions {
  const o: BenchOptions = { runs: 3, quick: false, peers: ['kiln', 'buildkit', 'buildah'], keep: false, budgetS: 90 };
  const names = [...scenarios.map((s) => s.name), 'registry', 'cacheimport', 'network', 'node-app', 'platforms', 'compress', 'sbom'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--only') {
      const list = value().split(',');
      for (const n of list) if (!names.includes(n as ScenarioName)) throw new Error(`unknown scenario "${n}": use ${names.join(', ')}`);
      o.only = list as ScenarioName[];
    } else if (a === '--runs') {
      o.runs = Number(value());
      if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs must be a positive whole number');
    } else if (a === '--quick') o.quick = true;
    else if (a === '--json') o.json = value();
    else if (a === '--keep') o.keep = true;
    else if (a === '--baseline') o.baseline = path.resolve(value());
    else if (a === '--budget') {
      o.budgetS = Number(value());
      if (!(o.budgetS > 0)) throw new Error('--budget must be a positive number of seconds');
    }
    else if (a === '--peers') {
      const list = value().split(',');
      for (const p of list) if (!['kiln', 'buildkit', 'buildah'].includes(p)) throw new Error(`unknown peer "${p}": use kiln, buildkit, buildah`);
      o.peers = list as PeerId[];
    } else if (a === '-h' || a === '--help') {
      throw new Error('usage');
    } else throw new Error(`unknown option "${a}"`);
  }
  return o;
}

const USAGE = `usage: node dist/scripts/bench.js [--only ${[...scenarios.map((s) => s.name), 'registry', 'cacheimport', 'network', 'node-app', 'platforms', 'compress', 'sbom'].join(',')}] [--runs N] [--quick] [--json FILE] [--peers kiln,buildkit,buildah] [--baseline DIR] [--budget SECONDS] [--keep]`;

/** "[stage 2/3] COPY . /ctx" → "2/3 COPY". */
function shortStep(name: string): string {
  const m = /^\[(?:\S+ )?(\d+\/\d+)\]\s+(\S+)/.exec(name);
  return m ? `${m[1]} ${m[2]}` : name.slice(0, 20);
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

async function main(argv: string[]): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    log((e as Error).message === 'usage' ? USAGE : `bench: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (process.getuid?.() !== 0) log('bench: not root: kiln RUN steps, dockerd and buildah need root; expect failures');
  const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-'));
  log(`bench: work dir ${work}; ${opts.quick ? 'quick sizes' : 'full sizes'}; ${opts.runs} run(s) per figure`);
  const started = Date.now();
  kilnBin = await snapshotKiln(work);

  // the busybox base, for kiln (import) and the peers (kiln save → docker load / buildah pull)
  const baseTar = path.join(work, 'busybox-rootfs.tar');
  const mk = await run('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), '--tar-only', baseTar]);
  if (mk.code !== 0) {
    log(`bench: make-base-image.sh failed: ${tail(mk.stderr)}`);
    return 1;
  }
  const seedRoot = path.join(work, 'kiln-root-seed');
  const savedTar = path.join(work, 'busybox-image.tar');
  const imp = await run(kilnBin, ['--root', seedRoot, 'import', baseTar, 'busybox:latest']);
  const save = imp.code === 0 ? await run(kilnBin, ['--root', seedRoot, 'save', '-o', savedTar, 'busybox:latest']) : imp;
  if (save.code !== 0) {
    log(`bench: kiln import/save of the base image failed: ${tail(save.stderr)}`);
    return 1;
  }

  const kiln = new KilnPeer(work, baseTar);
  const buildkit = new BuildKitPeer();
  const buildah = new BuildahPeer(work);
  if (opts.peers.includes('buildkit')) await buildkit.init(savedTar, work);
  else buildkit.skip = 'not in --peers';
  if (opts.peers.includes('buildah')) await buildah.init(savedTar);
  else buildah.skip = 'not in --peers';
  if (!opts.peers.includes('kiln')) kiln.skip = 'not in --peers';
  let baselineBin = '';
  const baseline = new KilnPeer(work, baseTar, () => baselineBin, 'baseline');
  if (opts.baseline) {
    try {
      baselineBin = await snapshotKiln(work, opts.baseline, 'baseline');
    } catch (e) {
      baseline.skip = (e as Error).message;
    }
  }
  const peers: Peer[] = [kiln, buildkit, buildah, ...(opts.baseline ? [baseline] : [])];
  for (const p of peers) if (p.skip) log(`bench: skipping ${p.id}: ${p.skip}`);
  const active = peers.filter((p) => !p.skip);

  const results: FigureResult[] = [];
  const setupFailures: string[] = [];
  const selected = scenarios.filter((s) => !opts.only || opts.only.includes(s.name));
  let serial = 0;
  const runNonce = randomBytes(6).toString('hex');
  const revision = () => `${runNonce}-${String(++serial).padStart(6, '0')}`;
  for (const sc of selected) {
    const ctx = path.join(work, `ctx-${sc.name}`);
    const t0 = Date.now();
    const shape = await sc.generate(ctx, opts.quick);
    log(`\n== ${sc.title}\n   context: ${shape.files} files, ${(shape.bytes / MiB).toFixed(1)} MiB (generated in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    const broken = new Map<PeerId, string>();
    const startFailures: string[] = [];
    for (const p of active) {
      try {
        await p.startScenario(sc.name);
      } catch (e) {
        broken.set(p.id, (e as Error).message);
        startFailures.push(`${sc.name} ${p.id}: ${(e as Error).message}`);
        log(`   ${p.id}: ${(e as Error).message}`);
      }
    }
    const tag = `kiln-bench-${sc.name}:latest`;
    const kilnStepMs: number[] = [];
    for (const fig of sc.figures) {
      const res: FigureResult = { scenario: sc.name, figure: fig.id, title: fig.title, unit: 's', samples: {}, errors: {}, median: {} };
      const overBudget = (p: Peer) => (res.samples[p.id] ?? []).reduce((a, b) => a + b, 0) >= opts.budgetS * 1000;
      const attempt = async (p: Peer, timed: boolean) => {
        if (broken.has(p.id) || res.errors[p.id] || (timed && overBudget(p))) return;
        if (fig.before) await fig.before(ctx, revision());
        try {
          const s = await p.build({ ctx, tag, noCache: fig.noCache, dockerfile: fig.dockerfile });
          if (!timed) return;
          (res.samples[p.id] ??= []).push(s.ms);
          if (p.id === 'kiln' && fig.id === 'cached' && s.cachedStepMs !== undefined) kilnStepMs.push(s.cachedStepMs);
          if (p.id === 'kiln') res.kilnSteps = s.steps;
          const steps = s.steps?.length ? `  [${s.steps.map((x) => `${shortStep(x.name)} ${(x.ms / 1000).toFixed(2)}s`).join(', ')}]` : '';
          log(`   ${fig.id.padEnd(10)} ${p.id.padEnd(8)} ${(s.ms / 1000).toFixed(2)} s${steps.length > 200 ? `  [${s.steps!.length} steps]` : steps}`);
        } catch (e) {
          if (!(e instanceof BuildError)) throw e;
          res.errors[p.id] = e.message;
          log(`   ${fig.id.padEnd(10)} ${p.id.padEnd(8)} FAILED: ${e.message}`);
        }
      };
      if (fig.warmup) for (const p of active) await attempt(p, false);
      for (let i = 0; i < opts.runs; i++) for (const p of active) await attempt(p, true);
      for (const p of active) {
        const m = median(res.samples[p.id] ?? []);
        if (m !== undefined) res.median[p.id] = m;
      }
      res.target = evaluateTarget(fig.target, res.median);
      results.push(res);
    }
    if (sc.name === 'steps') {
      // per cached step: (40-step cached rebuild − 1-step cached rebuild) / 39, for every peer
      const many = results.find((r) => r.scenario === 'steps' && r.figure === 'cached');
      const one = results.find((r) => r.scenario === 'steps' && r.figure === 'cached-one');
      const per: FigureResult = { scenario: 'steps', figure: 'per-step', title: `per cached step ((T${STEP_COUNT} − T1) / ${STEP_COUNT - 1})`, unit: 'ms', samples: {}, errors: {}, median: {} };
      for (const p of active) {
        const a = many?.median[p.id];
        const b = one?.median[p.id];
        if (a !== undefined && b !== undefined) per.median[p.id] = (a - b) / (STEP_COUNT - 1);
      }
      per.target = evaluateTarget({ kind: 'absolute', maxMs: 5, text: 'kiln < 5 ms' }, per.median);
      results.push(per);
      const ev: FigureResult = { scenario: 'steps', figure: 'per-step-events', title: 'per cached step (kiln progress events)', unit: 'ms', samples: { kiln: kilnStepMs }, errors: {}, median: {} };
      const m = median(kilnStepMs);
      if (m !== undefined) ev.median.kiln = m;
      ev.target = evaluateTarget({ kind: 'absolute', maxMs: 5, text: 'kiln < 5 ms' }, ev.median);
      results.push(ev);
    }
    setupFailures.push(...startFailures);
    for (const p of active) await p.endScenario(opts.keep);
    if (!opts.keep) await fs.rm(ctx, { recursive: true, force: true });
  }
  // the registry scenario (scripts/bench-registry.ts): kiln against skopeo and docker push
  const registry = !opts.only || opts.only.includes('registry') ? await registryBench({ work, kilnBin, baseTar, quick: opts.quick, runs: opts.runs, keep: opts.keep, log }) : undefined;
  // the cacheimport scenario (scripts/bench-cache.ts): a fresh runner's --cache-from build of deps
  const cacheimport =
    !opts.only || opts.only.includes('cacheimport')
      ? await cacheImportBench({ work, kilnBin, savedTar, quick: opts.quick, runs: opts.runs, keep: opts.keep, peers: opts.peers.filter((p): p is 'kiln' | 'buildkit' => p !== 'buildah'), log })
      : undefined;
  // the network scenario (scripts/bench-network.ts): the sandboxed RUN network against the host's
  const network =
    (!opts.only || opts.only.includes('network')) && opts.peers.includes('kiln')
      ? await networkBench({ work, kilnBin, baseTar, quick: opts.quick, runs: opts.runs, keep: opts.keep, buildkit: !buildkit.skip, log })
      : undefined;
  // the node-app scenario (scripts/bench-node.ts): examples/node-app on the Debian node bases
  const nodeApp = !opts.only || opts.only.includes('node-app') ? await nodeAppBench({ work, kilnBin, runs: opts.runs, keep: opts.keep, peers: opts.peers, log }) : undefined;
  // the platforms scenario (scripts/bench-platforms.ts): a two-platform build, arm64 under QEMU, against buildah's
  const platforms = !opts.only || opts.only.includes('platforms') ? await platformsBench({ work, kilnBin, baseTar, quick: opts.quick, runs: opts.runs, keep: opts.keep, peers: opts.peers, log }) : undefined;
  // the compress scenario (scripts/bench-compress.ts): kiln's gzip and zstd against gzip, pigz, zstd
  const compress = !opts.only || opts.only.includes('compress') ? await compressBench({ work, quick: opts.quick, runs: opts.runs, keep: opts.keep, log }) : undefined;
  // the sbom scenario (scripts/bench-sbom.ts): kiln sbom on debian:bookworm and node:18-bookworm (no peer here)
  const sbom = !opts.only || opts.only.includes('sbom') ? await sbomBench({ work, kilnBin, runs: opts.runs, keep: opts.keep, log }) : undefined;
  for (const p of active) await p.close(opts.keep);
  if (!opts.keep) await fs.rm(work, { recursive: true, force: true });
  else log(`bench: kept ${work}`);

  const totalS = ((Date.now() - started) / 1000).toFixed(0);
  const out = [
    '',
    `kiln bench — ${opts.quick ? 'quick sizes' : 'full sizes'}, median of ${opts.runs} run(s), ${os.availableParallelism()} CPUs, ${totalS} s total`,
    ...peers.filter((p) => p.skip).map((p) => `(${p.id} skipped: ${p.skip})`),
    '',
    ...(results.length > 0 ? [table(results, opts.runs), ''] : []),
    ...(registry ? [...registry.skipped.map((x) => `(registry: ${x})`), registry.table, ''] : []),
    ...(cacheimport ? [...cacheimport.skipped.map((x) => `(cacheimport: ${x})`), cacheimport.table, ''] : []),
    ...(network ? [...network.skipped.map((x) => `(network: ${x})`), network.table, ''] : []),
    ...(nodeApp ? [...nodeApp.skipped.map((x) => `(node-app: ${x})`), nodeApp.table, ''] : []),
    ...(platforms ? [...platforms.skipped.map((x) => `(platforms: ${x})`), platforms.table, ''] : []),
    ...(compress ? [...compress.skipped.map((x) => `(compress: ${x})`), compress.table, ''] : []),
    ...(sbom ? [sbom.table, ''] : []),
  ];
  const failures = [...setupFailures, ...results.flatMap((r) => Object.entries(r.errors).map(([p, e]) => `${r.scenario}/${r.figure} ${p}: ${e}`)), ...(registry?.failures ?? []), ...(cacheimport?.failures ?? []), ...(network?.failures ?? []), ...(nodeApp?.failures ?? []), ...(platforms?.failures ?? []), ...(compress?.failures ?? []), ...(sbom?.failures ?? [])];
  if (failures.length) out.push('failures:', ...failures.map((f) => `  ${f}`), '');
  process.stdout.write(out.join('\n'));
  if (opts.json) {
    const doc = {
      date: new Date().toISOString(),
      quick: opts.quick,
      runs: opts.runs,
      cpus: os.availableParallelism(),
      skipped: Object.fromEntries(peers.filter((p) => p.skip).map((p) => [p.id, p.skip])),
      results,
      ...(registry ? { registry: registry.results } : {}),
      ...(cacheimport ? { cacheimport: cacheimport.results } : {}),
      ...(network ? { network: network.results } : {}),
      ...(nodeApp ? { nodeApp: nodeApp.results } : {}),
      ...(platforms ? { platforms: platforms.results } : {}),
      ...(compress ? { compress: compress.results } : {}),
      ...(sbom ? { sbom: sbom.results } : {}),
      failures,
    };
    await fs.writeFile(opts.json, `${JSON.stringify(doc, null, 2)}\n`);
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      log(`bench: ${(e as Error)?.stack ?? String(e)}`);
      process.exit(1);
    },
  );
}
