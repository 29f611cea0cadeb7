/**
 * The bench's `network` scenario (issue 11): what the sandboxed RUN network costs against the
 * host's, on a download-heavy step and on a step that does nothing.
 *
 * A node http server on this machine's own non-loopback address (the sandbox cannot reach the
 * host's loopback, by design) serves a deterministic blob of DOWNLOAD_MIB (quick: 64 MiB, full:
 * 512 MiB). Each timed build is `--no-cache` of
 *
 *   FROM busybox
 *   RUN wget -q -O /dev/null http://ADDR:PORT/blob      (download)
 *   RUN true                                            (step)
 *
 * with kiln's RUN network as: host (`--network host --allow network.host`), the default network
 * through pasta, and through slirp4netns (KILN_NETWORK_HELPER), and for the step also none. With
 * docker 20.10 at hand (the bench's BuildKit peer loaded busybox), BuildKit's default (its bridge)
 * and `--network host` run the download too, for the same comparison on BuildKit's side.
 * Figures are medians of the wall time of the build; the cost of a mode is its ratio to host.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ByteStream, have, median, run, tail, type Exec } from './bench.js';

const dockerCli = '/usr/bin/docker';
const MiB = 1024 * 1024;

export interface NetworkBenchOptions {
  work: string;
  kilnBin: string;
  /** busybox's rootfs tar (make-base-image.sh --tar-only), imported into the scenario's root. */
  baseTar: string;
  quick: boolean;
  runs: number;
  keep: boolean;
  /** Whether docker 20.10 has busybox:latest loaded (the bench's BuildKit peer is up). */
  buildkit: boolean;
  log: (message: string) => void;
}

export interface NetworkFigure {
  figure: 'download' | 'step';
  title: string;
  /** mode → seconds of each timed build */
  samples: Record<string, number[]>;
  median: Record<string, number>;
  errors: Record<string, string>;
}

interface Mode {
  id: string;
  args: string[];
  env?: Record<string, string>;
  tool: 'kiln' | 'buildkit';
}

const KILN_MODES: Mode[] = [
  { id: 'kiln host', args: ['--network', 'host', '--allow', 'network.host'], tool: 'kiln' },
  { id: 'kiln pasta', args: [], env: { KILN_NETWORK_HELPER: 'pasta' }, tool: 'kiln' },
  { id: 'kiln slirp4netns', args: [], env: { KILN_NETWORK_HELPER: 'slirp4netns' }, tool: 'kiln' },
];
const NONE: Mode = { id: 'kiln none', args: ['--network', 'none'], tool: 'kiln' };
const BUILDKIT_MODES: Mode[] = [
  { id: 'buildkit host', args: ['--network', 'host'], tool: 'buildkit' },
  { id: 'buildkit bridge', args: [], tool: 'buildkit' },
];

/** This machine's first non-loopback IPv4 address (not docker's bridge). */
export function hostAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('172.17.')) return a.address;
  }
  return undefined;
}

async function blobServer(address: string, bytes: number): Promise<{ url: string; server: Server }> {
  const blob = new ByteStream('kiln-bench-network').bytes(bytes);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': String(blob.length), 'content-type': 'application/octet-stream' });
    res.end(blob);
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return { url: `http://${address}:${(server.address() as AddressInfo).port}/blob`, server };
}

/** The `real` time busybox's `time` printed in a step's output ("real\t0m 1.23s"), in seconds. */
export function transferSeconds(output: string): number | undefined {
  const m = /real\s+(\d+)m\s*([\d.]+)s/.exec(output);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a !== undefined && b !== undefined && b > 0 ? `${(a / b).toFixed(2)}×` : '—';
}

export async function networkBench(o: NetworkBenchOptions): Promise<{ results: NetworkFigure[]; table: string; failures: string[]; skipped: string[] }> {
  const skipped: string[] = [];
  const address = hostAddress();
  if (!address) return { results: [], table: '', failures: [], skipped: ['no non-loopback IPv4 address on this machine to serve from'] };
  const modes = KILN_MODES.filter((m) => {
    const helper = m.env?.KILN_NETWORK_HELPER;
    if (helper && !have(helper)) {
      skipped.push(`${m.id}: ${helper} is not installed`);
      return false;
    }
    return true;
  });
  const buildkit = o.buildkit && have(dockerCli) ? BUILDKIT_MODES : [];
  if (!buildkit.length) skipped.push('buildkit: docker 20.10 with busybox:latest loaded is not available');
  const mib = o.quick ? 64 : 512;
  const { url, server } = await blobServer(address, mib * MiB);
  const root = path.join(o.work, 'kiln-root-network');
  const ctx = path.join(o.work, 'network-ctx');
  const failures: string[] = [];
  try {
    const imp = await run(o.kilnBin, ['--root', root, 'import', o.baseTar, 'busybox:latest']);
    if (imp.code !== 0) return { results: [], table: '', failures: [`network: kiln import failed: ${tail(imp.stderr, 3)}`], skipped };
    await fs.mkdir(ctx, { recursive: true });
    await fs.writeFile(path.join(ctx, 'Dockerfile.download'), `FROM busybox\nRUN time wget -q -O /dev/null ${url}\n`);
    await fs.writeFile(path.join(ctx, 'Dockerfile.step'), 'FROM busybox\nRUN true\n');
    const figures: Array<{ fig: NetworkFigure; modes: Mode[] }> = [
      { fig: { figure: 'download', title: `RUN wget of ${mib} MiB from ${address}`, samples: {}, median: {}, errors: {} }, modes: [...modes, ...buildkit] },
      { fig: { figure: 'step', title: 'RUN true (network set-up and tear-down)', samples: {}, median: {}, errors: {} }, modes: [...modes, NONE, ...buildkit] },
    ];
    const buildOnce = async (figure: NetworkFigure['figure'], m: Mode, i: number): Promise<Exec> => {
      const file = path.join(ctx, `Dockerfile.${figure}`);
      if (m.tool === 'kiln') return run(o.kilnBin, ['--root', root, 'build', '--no-cache', '--progress', 'plain', '-f', file, ...m.args, ctx], { env: m.env });
      return run(dockerCli, ['build', '--no-cache', '--progress', 'plain', '-t', `kiln-bench-network:${i}`, '-f', file, ...m.args, ctx], { env: { DOCKER_BUILDKIT: '1' } });
    };
    for (const { fig, modes: ms } of figures) {
      // interleaved: run i of every mode before run i+1 of any
      for (let i = 0; i < o.runs + 1; i++) {
        for (const m of ms) {
          if (fig.errors[m.id]) continue;
          const r = await buildOnce(fig.figure, m, i);
          if (r.code !== 0) {
            fig.errors[m.id] = `exit ${r.code}: ${tail(r.stderr, 3)}`;
            failures.push(`network/${fig.figure} ${m.id}: ${fig.errors[m.id]}`);
            continue;
          }
          // the download: the transfer as the step's shell timed it; the empty step: the build
          const secs = fig.figure === 'download' ? transferSeconds(r.stdout + r.stderr) : r.ms / 1000;
          if (secs === undefined) {
            fig.errors[m.id] = `no "real" time in the step's output: ${tail(r.stderr, 3)}`;
            failures.push(`network/${fig.figure} ${m.id}: ${fig.errors[m.id]}`);
            continue;
          }
          // the first round warms the page cache and the helpers' binaries: not timed
          if (i > 0) (fig.samples[m.id] ??= []).push(secs);
          o.log(`   network ${fig.figure} ${m.id}: ${secs.toFixed(2)} s${i === 0 ? ' (warm-up)' : ''}`);
        }
      }
      for (const [id, xs] of Object.entries(fig.samples)) fig.median[id] = median(xs) ?? NaN;
    }
    if (buildkit.length) await run(dockerCli, ['rmi', '-f', ...Array.from({ length: o.runs + 1 }, (_, i) => `kiln-bench-network:${i}`)]);
    const results = figures.map((f) => f.fig);
    const [download, step] = results;
    const lines = [
      'network: the sandboxed RUN network against the host\'s (medians)',
      `  download: the ${mib} MiB wget as the step's own shell timed it; RUN true: a --no-cache build of one empty step`,
      '',
      `  ${'mode'.padEnd(18)} ${'download s'.padStart(10)} ${'MiB/s'.padStart(6)} ${'vs host'.padStart(8)}   ${'RUN true s'.padStart(10)} ${'vs host'.padStart(8)}`,
    ];
    for (const id of [...new Set([...Object.keys(download.median), ...Object.keys(step.median)])]) {
      const host = id.startsWith('buildkit') ? 'buildkit host' : 'kiln host';
      const d = download.median[id];
      const t = step.median[id];
      const f = (x: number | undefined, w: number) => (x === undefined ? '—' : x.toFixed(2)).padStart(w);
      const vs = (x: number | undefined, h: number | undefined) => (id === host ? '' : ratio(x, h)).padStart(8);
      lines.push(`  ${id.padEnd(18)} ${f(d, 10)} ${(d ? (mib / d).toFixed(0) : '—').padStart(6)} ${vs(d, download.median[host])}   ${f(t, 10)} ${vs(t, step.median[host])}`);
    }
    for (const f of results) for (const [id, e] of Object.entries(f.errors)) lines.push(`  ${f.figure} ${id}: FAILED: ${e}`);
    return { results, table: lines.join('\n'), failures, skipped };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!o.keep) {
      await fs.rm(ctx, { recursive: true, force: true });
      // the root holds nothing mounted once its builds are done
      await fs.rm(root, { recursive: true, force: true });
    }
  }
}
