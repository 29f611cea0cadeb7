/**
 * The bench's `compress` scenario (issue 12): exporting one big layer compressed, kiln's gzip and
 * zstd (src/oci/compress.ts: fixed 4 MiB members/frames compressed in parallel, deterministic)
 * against `gzip -6`, `pigz -6` and `zstd -3` (single-threaded, as asked, and `-T0` on every core)
 * on the same data in the same run.
 *
 * The layer (full: 500 MiB, quick: 64 MiB) is a realistic mix: a tar of this Debian host's /usr
 * (binaries, libraries, text), repeated as often as needed for 90 % of the size, and 10 %
 * pseudo-random bytes (already-compressed content). It is stored uncompressed in a kiln store as
 * one layer; kiln's figure is layerVariant(store, layer, 'gzip' | 'zstd') — read the blob, check
 * its diff id, compress, write and commit the variant — with the variant dropped before each run;
 * a peer's is `TOOL -c < layer.tar > out` on the same tar (page cache warm for both). Runs are
 * interleaved (run i of every tool before run i+1 of any); the first is a warm-up, not counted.
 * Figures: median MB/s of input (wall clock), the median CPU seconds (user+sys: GNU time for the
 * peers, process.cpuUsage for kiln; steadier than wall time on a busy machine), the compressed
 * size as a ratio of the input, and each tool's throughput as a ratio to pigz's.
 * Target: kiln's gzip ≥ 0.8× pigz's throughput at a similar ratio.
 *
 * In `npm run bench` (`--only compress`), or alone: node dist/scripts/bench-compress.js [--quick] [--runs N]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { layerVariant, writeLayer } from '../src/oci/layer.js';
import { ContentStore } from '../src/oci/store.js';
import type { LayerCompression } from '../src/oci/variants.js';
import { ByteStream, have, median, tail } from './bench.js';

const MiB = 1024 * 1024;

export interface CompressBenchOptions {
  work: string;
  quick: boolean;
  runs: number;
  keep: boolean;
  log: (message: string) => void;
}

export interface CompressResult {
  tool: string;
  /** seconds of each counted run (wall clock) */
  samples: number[];
  cpu: number[];
  /** compressed bytes (the same every run for every tool here) */
  size?: number;
  medianS?: number;
  medianCpuS?: number;
  error?: string;
}

interface Tool {
  id: string;
  cmd?: string;
  args?: string[];
  kiln?: { compression: LayerCompression; level?: number };
}

const TOOLS: Tool[] = [
  { id: 'kiln gzip', kiln: { compression: 'gzip' } },
  { id: 'pigz -6', cmd: 'pigz', args: ['-6', '-c'] },
  { id: 'gzip -6', cmd: 'gzip', args: ['-6', '-n', '-c'] },
  { id: 'kiln zstd', kiln: { compression: 'zstd' } },
  { id: 'zstd -3', cmd: 'zstd', args: ['-3', '-q', '-c'] },
  { id: 'zstd -3 -T0', cmd: 'zstd', args: ['-3', '-T0', '-q', '-c'] },
];

/** The first `bytes` of a tar of the host's /usr, as often as needed, into `out`. */
async function usrTar(out: string, bytes: number): Promise<void> {
  const fh = await fs.open(out, 'w');
  let written = 0;
  try {
    while (written < bytes) {
      const tar = spawn('tar', ['--sort=name', '--numeric-owner', '-cf', '-', '-C', '/', 'usr/bin', 'usr/lib', 'usr/share'], { stdio: ['ignore', 'pipe', 'ignore'] });
      const before = written;
      for await (const chunk of tar.stdout as AsyncIterable<Buffer>) {
        const part = chunk.subarray(0, bytes - written);
        await fh.write(part);
        written += part.length;
        if (written >= bytes) break;
      }
      tar.kill();
      if (written === before) throw new Error('tar of /usr gave nothing');
    }
  } finally {
    await fh.close();
  }
}

/** The layer's content: /usr as tar, repeated to 90 % of `bytes`, then pseudo-random to `bytes`. */
async function makeData(dir: string, bytes: number): Promise<{ rootfs: string; random: string }> {
  const rootfs = path.join(dir, 'rootfs.tar');
  const want = Math.floor(bytes * 0.9);
  await usrTar(rootfs, want);
  const random = path.join(dir, 'random.bin');
  const rs = new ByteStream('kiln-bench-compress');
  const fh = await fs.open(random, 'w');
  for (let left = bytes - want; left > 0; left -= 4 * MiB) await fh.write(rs.bytes(Math.min(4 * MiB, left)));
  await fh.close();
  return { rootfs, random };
}

/** `cmd args < input > output` under GNU time when there is one: wall and CPU seconds. */
function runPeer(cmd: string, args: string[], input: string, output: string): { wall: number; cpu?: number; error?: string } {
  const timeFile = `${output}.time`;
  const gnuTime = have('/usr/bin/time');
  const line = `${gnuTime ? `/usr/bin/time -f '%U %S' -o ${timeFile} ` : ''}${cmd} ${args.join(' ')} < ${input} > ${output}`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', line], { stdio: ['ignore', 'ignore', 'pipe'] });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) return { wall, error: `exit ${r.status}: ${tail(String(r.stderr), 3)}` };
  let cpu: number | undefined;
  if (gnuTime) {
    const [u, s] = spawnSync('cat', [timeFile]).stdout.toString().trim().split(/\s+/).map(Number);
    cpu = u + s;
  }
  return { wall, cpu };
}

export async function compressBench(o: CompressBenchOptions): Promise<{ results: CompressResult[]; table: string; failures: string[]; skipped: string[] }> {
  const skipped: string[] = [];
  const failures: string[] = [];
  const tools = TOOLS.filter((t) => {
    if (t.cmd && !have(t.cmd)) {
      skipped.push(`${t.id}: ${t.cmd} is not installed (scripts/setup-host.sh installs it)`);
      return false;
    }
    return true;
  });
  const dir = path.join(o.work, 'compress');
  await fs.mkdir(dir, { recursive: true });
  const bytes = (o.quick ? 64 : 500) * MiB;
  try {
    o.log(`   compress: making the ${bytes / MiB} MiB layer`);
    const data = await makeData(dir, bytes);
    const store = await ContentStore.open(path.join(dir, 'root'));
    const layer = await writeLayer(
      store,
      [
        { path: 'rootfs.tar', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, sourcePath: data.rootfs, size: (await fs.stat(data.rootfs)).size },
        { path: 'random.bin', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, sourcePath: data.random, size: (await fs.stat(data.random)).size },
      ],
      { compression: 'none' },
    );
    await fs.rm(data.rootfs);
    await fs.rm(data.random);
    // the peers read the very same tar
    const tar = store.blobPath(layer.descriptor.digest);
    const input = layer.uncompressedSize;
    const results = new Map<string, CompressResult>(tools.map((t) => [t.id, { tool: t.id, samples: [], cpu: [] }]));
    for (let i = 0; i < o.runs + 1; i++) {
      for (const t of tools) {
        const res = results.get(t.id)!;
        if (res.error) continue;
        let wall: number;
        let cpu: number | undefined;
        if (t.kiln) {
          await store.variants.remove(layer.diffId);
          const c0 = process.cpuUsage();
          const t0 = process.hrtime.bigint();
          try {
            const v = await layerVariant(store, layer, t.kiln.compression, { level: t.kiln.level });
            wall = Number(process.hrtime.bigint() - t0) / 1e9;
            const c = process.cpuUsage(c0);
            cpu = (c.user + c.system) / 1e6;
            res.size = v.descriptor.size;
            await fs.rm(store.blobPath(v.descriptor.digest), { force: true });
          } catch (e) {
            res.error = (e as Error).message;
            failures.push(`compress ${t.id}: ${res.error}`);
            continue;
          }
        } else {
          const out = path.join(dir, 'out');
          const r = runPeer(t.cmd!, t.args!, tar, out);
          if (r.error) {
            res.error = r.error;
            failures.push(`compress ${t.id}: ${r.error}`);
            continue;
          }
          wall = r.wall;
          cpu = r.cpu;
          res.size = (await fs.stat(out)).size;
          await fs.rm(out, { force: true });
        }
        if (i > 0) {
          res.samples.push(wall);
          if (cpu !== undefined) res.cpu.push(cpu);
        }
        o.log(`   compress ${t.id}: ${wall.toFixed(2)} s${cpu !== undefined ? `, ${cpu.toFixed(2)} s CPU` : ''}${i === 0 ? ' (warm-up)' : ''}`);
      }
    }
    for (const r of results.values()) {
      r.medianS = median(r.samples);
      r.medianCpuS = median(r.cpu);
    }
    const all = [...results.values()];
    const pigz = results.get('pigz -6');
    const mbs = (r: CompressResult): number | undefined => (r.medianS ? input / 1e6 / r.medianS : undefined);
    const f = (x: number | undefined, w: number, d = 2): string => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d)).padStart(w);
    const lines = [
      `compress: one ${(input / MiB).toFixed(0)} MiB layer (a tar of /usr repeated + 10 % random), medians of ${o.runs} run(s)`,
      '  kiln: layerVariant (read the stored tar, check its diff id, compress, commit); peers: TOOL -c < layer.tar > file',
      '',
      `  ${'tool'.padEnd(12)} ${'s'.padStart(7)} ${'MB/s'.padStart(7)} ${'CPU s'.padStart(7)} ${'size/input'.padStart(10)} ${'vs pigz'.padStart(8)}`,
    ];
    for (const r of all) {
      const vs = pigz && r !== pigz && mbs(r) && mbs(pigz) ? `${(mbs(r)! / mbs(pigz)!).toFixed(2)}×` : '';
      lines.push(`  ${r.tool.padEnd(12)} ${f(r.medianS, 7)} ${f(mbs(r), 7, 0)} ${f(r.medianCpuS, 7)} ${f(r.size !== undefined ? r.size / input : undefined, 10, 3)} ${vs.padStart(8)}${r.error ? `  FAILED: ${r.error}` : ''}`);
    }
    const kg = results.get('kiln gzip');
    if (kg && pigz && mbs(kg) && mbs(pigz) && kg.size && pigz.size) {
      const ratio = mbs(kg)! / mbs(pigz)!;
      lines.push('', `  target: kiln gzip ≥ 0.8× pigz at a similar ratio: ${ratio.toFixed(2)}×, size ${((kg.size / pigz.size - 1) * 100).toFixed(1)} % vs pigz — ${ratio >= 0.8 ? 'met' : 'NOT met'}`);
    }
    return { results: all, table: lines.join('\n'), failures, skipped };
  } finally {
    if (!o.keep) await fs.rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const argv = process.argv.slice(2);
  const runsAt = argv.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(argv[runsAt + 1]) : 3;
  const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-compress-'));
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  compressBench({ work, quick: argv.includes('--quick'), runs, keep: false, log })
    .then(async (r) => {
      for (const s of r.skipped) log(`(compress: ${s})`);
      process.stdout.write(`${r.table}\n`);
      await fs.rm(work, { recursive: true, force: true });
      process.exit(r.failures.length ? 1 : 0);
    })
    .catch(async (e: unknown) => {
      log(`bench-compress: ${(e as Error)?.stack ?? String(e)}`);
      await fs.rm(work, { recursive: true, force: true });
      process.exit(1);
    });
}
