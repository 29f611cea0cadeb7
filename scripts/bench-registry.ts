/**
 * The bench's `registry` scenario (issue 10): a ~1 GiB image of several layers (random and
 * text data, one COPY each) built by kiln, pushed to a local docker-registry by kiln and by
 * `skopeo copy` of the same image (an OCI layout kiln saves), and by `docker push` where
 * dockerd runs; then pulled back by kiln and skopeo into fresh destinations. Every push goes
 * to a registry started empty for it, so nothing is already there. Target: kiln no slower
 * than skopeo.
 *
 * Figures:
 * - push: the layers' gzip form already made (as after a `kiln save` or an earlier push): kiln
 *   and skopeo upload the same compressed blobs; docker compresses on every push.
 * - push, first time: kiln gzips its plain layers during the push (the variant records are
 *   removed before each run), as docker push always does.
 * - pull: into an empty kiln root, and skopeo into an empty OCI layout directory.
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startRegistry, type Registry } from '../test/registry/harness.js';
import { ByteStream, median } from './bench.js';

const MiB = 1024 * 1024;

export interface RegistryBenchOptions {
  work: string;
  kilnBin: string;
  /** The busybox rootfs tarball kiln imports as busybox:latest. */
  baseTar: string;
  quick: boolean;
  runs: number;
  keep: boolean;
  log: (message: string) => void;
}

type Tool = 'kiln' | 'skopeo' | 'docker';

export interface RegistryFigure {
  figure: 'push' | 'push-cold' | 'pull';
  title: string;
  samples: Partial<Record<Tool, number[]>>;
  median: Partial<Record<Tool, number>>;
  errors: Partial<Record<Tool, string>>;
  target?: { text: string; met: boolean | undefined };
}

interface Exec {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function exec(cmd: string, args: string[], timeoutMs = 1_800_000): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout.length < 1 << 20 ? (stdout += String(c)) : undefined));
    p.stderr.on('data', (c) => (stderr.length < 1 << 20 ? (stderr += String(c)) : undefined));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
  });
}

function lastLines(s: string, n = 4): string {
  return s.trim().split('\n').slice(-n).join(' | ');
}

function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

const WORDS = 'the of and to in is that for it as with was on be by this are from at or an have not which but all were when we there can more if will one about their has would what so out up them some into other than then its time only could new these two may first any like now my such make over our even most me state after also made many did must before back see through way where get much go well your know should down work year because come people just say each those take day good how long'.split(' ');

/** Lines of words the text files are made of (a fixed pool: generating 500 MiB word by word is slow). */
let linePool: string[] | undefined;

/** Text that compresses roughly as prose does: lines of words, each line drawn from a pool by the stream. */
function textBytes(rnd: ByteStream, n: number): Buffer {
  if (!linePool) {
    const words = new ByteStream('registry-words');
    linePool = Array.from({ length: 8192 }, () => `${Array.from(words.bytes(12), (b) => WORDS[b % WORDS.length]).join(' ')}.\n`);
  }
  const pool = linePool;
  const count = Math.ceil(n / 40);
  const picks = rnd.bytes(count * 2);
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < n; i++) {
    const line = pool[picks.readUInt16LE((i % count) * 2) % pool.length];
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

/** Writes the context: one file per layer, random and text alternating, ~1 GiB in all (quick: ~100 MiB). */
export async function generateRegistryContext(ctx: string, quick: boolean): Promise<{ layers: number; bytes: number }> {
  const sizes = (quick ? [24, 24, 16, 16, 12] : [256, 256, 192, 192, 128]).map((m) => m * MiB);
  const rnd = new ByteStream('registry');
  const lines = ['FROM busybox:latest'];
  let bytes = 0;
  for (const [i, size] of sizes.entries()) {
    const name = i % 2 === 0 ? `random${i}.bin` : `text${i}.txt`;
    const fh = await fs.open(path.join(ctx, name), 'w');
    try {
      for (let left = size; left > 0; ) {
        const n = Math.min(left, 8 * MiB);
        await fh.write(i % 2 === 0 ? rnd.bytes(n) : textBytes(rnd, n));
        left -= n;
      }
    } finally {
      await fh.close();
    }
    bytes += size;
    lines.push(`COPY ${name} /data/${name}`);
  }
  lines.push('CMD ["ls", "-l", "/data"]', '');
  await fs.mkdir(ctx, { recursive: true });
  await fs.writeFile(path.join(ctx, 'Dockerfile'), lines.join('\n'));
  return { layers: sizes.length, bytes };
}

const dockerCli = '/usr/bin/docker';
const IMAGE = 'kiln-bench-registry:latest';
const REPO = 'bench/app';

export async function registryBench(o: RegistryBenchOptions): Promise<{ results: RegistryFigure[]; table: string; failures: string[]; skipped: string[] }> {
  const skipped: string[] = [];
  const failures: string[] = [];
  const figures: RegistryFigure[] = [
    { figure: 'push', title: 'push (gzip layers known)', samples: {}, median: {}, errors: {} },
    { figure: 'push-cold', title: 'push, first time (kiln gzips)', samples: {}, median: {}, errors: {} },
    { figure: 'pull', title: 'pull into an empty store', samples: {}, median: {}, errors: {} },
  ];
  const ctx = path.join(o.work, 'ctx-registry');
  await fs.mkdir(ctx, { recursive: true });
  const t0 = Date.now();
  const shape = await generateRegistryContext(ctx, o.quick);
  o.log(`\n== registry: push and pull of a ${(shape.bytes / MiB).toFixed(0)} MiB image of ${shape.layers} layers (random and text)\n   generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const root = path.join(o.work, 'kiln-root-registry');
  const kiln = (args: string[], r = root) => exec(o.kilnBin, ['--root', r, ...args]);
  const setup = async (what: string, p: Promise<Exec>): Promise<boolean> => {
    const r = await p;
    if (r.code !== 0) failures.push(`registry setup: ${what} failed: ${lastLines(r.stderr)}`);
    return r.code === 0;
  };
  if (!(await setup('kiln import', kiln(['import', o.baseTar, 'busybox:latest'])))) return finish();
  if (!(await setup('kiln build', kiln(['build', '-q', '-t', IMAGE, ctx])))) return finish();
  // the same image for skopeo: an OCI layout kiln saves (this also makes kiln's gzip variants)
  const layout = path.join(o.work, 'registry-oci');
  const ociTar = path.join(o.work, 'registry-oci.tar');
  if (!(await setup('kiln save --format oci', kiln(['save', '--format', 'oci', '-o', ociTar, IMAGE])))) return finish();
  await fs.mkdir(layout, { recursive: true });
  if (!(await setup('unpacking the OCI archive', exec('tar', ['-xf', ociTar, '-C', layout])))) return finish();
  await fs.rm(ociTar, { force: true });

  const haveSkopeo = onPath('skopeo');
  if (!haveSkopeo) skipped.push('skopeo not installed');
  let haveDocker = spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
  if (!haveDocker) skipped.push('docker: dockerd not reachable');
  if (haveDocker) {
    const dockerTar = path.join(o.work, 'registry-docker.tar');
    haveDocker =
      (await setup('kiln save (docker)', kiln(['save', '-o', dockerTar, IMAGE]))) && (await setup('docker load', exec(dockerCli, ['load', '-i', dockerTar])));
    await fs.rm(dockerTar, { force: true });
  }

  /** One timed push into a registry started empty for it. */
  const timedPush = async (fig: RegistryFigure, tool: Tool, command: (host: string) => [string, string[]], before?: (host: string) => Promise<unknown>): Promise<void> => {
    if (fig.errors[tool]) return;
    let reg: Registry | undefined;
    try {
      reg = await startRegistry();
      if (before) await before(reg.host);
      const [cmd, args] = command(reg.host);
      const r = await exec(cmd, args);
      if (r.code !== 0) {
        fig.errors[tool] = `${path.basename(cmd)} failed (exit ${r.code}): ${lastLines(r.stderr)}`;
        o.log(`   ${fig.figure.padEnd(10)} ${tool.padEnd(7)} FAILED: ${fig.errors[tool]}`);
        return;
      }
      (fig.samples[tool] ??= []).push(r.ms);
      o.log(`   ${fig.figure.padEnd(10)} ${tool.padEnd(7)} ${(r.ms / 1000).toFixed(2)} s`);
    } finally {
      if (tool === 'docker' && reg) spawnSync(dockerCli, ['rmi', `${reg.host}/${REPO}:1`], { stdio: 'ignore' });
      await reg?.stop();
    }
  };
  const [push, cold, pull] = figures;
  const variants = path.join(root, 'variants');
  for (let i = 0; i < o.runs; i++) {
    await timedPush(push, 'kiln', (host) => [o.kilnBin, ['--root', root, 'push', '-q', IMAGE, `${host}/${REPO}:1`]]);
    if (haveSkopeo) await timedPush(push, 'skopeo', (host) => ['skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}`, `docker://${host}/${REPO}:1`]]);
    // the tag names the registry's port, known once it is up
    if (haveDocker) await timedPush(push, 'docker', (host) => [dockerCli, ['push', `${host}/${REPO}:1`]], (host) => exec(dockerCli, ['tag', IMAGE, `${host}/${REPO}:1`]));
    await timedPush(cold, 'kiln', (host) => [o.kilnBin, ['--root', root, 'push', '-q', IMAGE, `${host}/${REPO}:1`]], () => fs.rm(variants, { recursive: true, force: true }));
  }
  // docker's figure is the same in both rows: it compresses on every push
  if (push.samples.docker) cold.samples.docker = push.samples.docker;
  if (push.errors.docker) cold.errors.docker = push.errors.docker;

  // pull: one registry holding the image as kiln pushed it; fresh destinations every time
  let reg: Registry | undefined;
  try {
    reg = await startRegistry();
    const ref = `${reg.host}/${REPO}:1`;
    if (await setup('kiln push (for the pull figures)', kiln(['push', '-q', IMAGE, ref]))) {
      const help = await kiln(['pull', '--help']);
      const hasPull = help.code === 0 && /Usage: kiln pull/.test(help.stdout);
      if (!hasPull) pull.errors.kiln = 'this kiln has no pull command';
      for (let i = 0; i < o.runs; i++) {
        const fresh = path.join(o.work, `registry-pull-${i}`);
        const timed = async (tool: Tool, cmd: string, args: string[]): Promise<void> => {
          if (pull.errors[tool]) return;
          await fs.rm(fresh, { recursive: true, force: true });
          const r = await exec(cmd, args);
          if (r.code !== 0) pull.errors[tool] = `${path.basename(cmd)} failed (exit ${r.code}): ${lastLines(r.stderr)}`;
          else (pull.samples[tool] ??= []).push(r.ms);
          o.log(`   pull       ${tool.padEnd(7)} ${r.code === 0 ? `${(r.ms / 1000).toFixed(2)} s` : `FAILED: ${pull.errors[tool]}`}`);
          await fs.rm(fresh, { recursive: true, force: true });
        };
        await timed('kiln', o.kilnBin, ['--root', fresh, 'pull', ref]);
        if (haveSkopeo) await timed('skopeo', 'skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${fresh}`]);
      }
    }
  } finally {
    await reg?.stop();
  }
  return finish();

  function finish(): { results: RegistryFigure[]; table: string; failures: string[]; skipped: string[] } {
    for (const f of figures) {
      for (const [tool, xs] of Object.entries(f.samples) as Array<[Tool, number[]]>) {
        const m = median(xs);
        if (m !== undefined) f.median[tool] = m;
      }
      if (f.figure !== 'push-cold') {
        const k = f.median.kiln;
        const s = f.median.skopeo;
        f.target = { text: 'kiln ≤ skopeo', met: k === undefined || s === undefined ? undefined : k <= s };
      }
      for (const [tool, e] of Object.entries(f.errors)) failures.push(`registry/${f.figure} ${tool}: ${e}`);
    }
    if (!o.keep) {
      void fs.rm(ctx, { recursive: true, force: true });
      void fs.rm(layout, { recursive: true, force: true });
      if (haveDockerImage()) spawnSync(dockerCli, ['rmi', IMAGE], { stdio: 'ignore' });
    }
    return { results: figures, table: registryTable(figures), failures, skipped };
  }
}

function haveDockerImage(): boolean {
  return spawnSync(dockerCli, ['image', 'inspect', IMAGE], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

function registryTable(figures: RegistryFigure[]): string {
  const s = (v: number | undefined) => (v === undefined ? '—' : `${(v / 1000).toFixed(2)} s`);
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b <= 0 ? '—' : `${(a / b).toFixed(2)}×`);
  const head = ['registry / figure', 'kiln', 'skopeo', 'docker', 'kiln/skopeo', 'kiln/docker', 'target', 'met'];
  const rows = figures.map((f) => [
    `registry / ${f.title}`,
    s(f.median.kiln),
    s(f.median.skopeo),
    s(f.median.docker),
    ratio(f.median.kiln, f.median.skopeo),
    ratio(f.median.kiln, f.median.docker),
    f.target?.text ?? '',
    f.target ? (f.target.met === undefined ? 'n/a' : f.target.met ? 'yes' : 'NO') : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
