/**
 * The bench's `sbom` scenario (issue 13): the time of `kiln sbom IMAGE` (SPDX 2.3 JSON to a file)
 * on the real Debian bases of scripts/make-base-image.sh, debian:bookworm and node:18-bookworm:
 * every layer read and decompressed, whiteouts applied, dpkg/npm/Python/Go/Maven catalogued,
 * licences read from the copyright files, the document written. The runs alternate between the
 * two images; the first of each is a warm-up (page cache, code cache), not counted.
 *
 * No peer: syft and trivy (the tools whose SBOMs these are compared with elsewhere) are not
 * installed on this machine and cannot be downloaded here, so kiln's figure stands alone; the
 * output says so.
 *
 * In `npm run bench` (`--only sbom`), or alone: node dist/scripts/bench-sbom.js [--runs N]
 */
import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { have, median, run, tail } from './bench.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const IMAGES = ['debian:bookworm', 'node:18-bookworm'];

export interface SbomBenchOptions {
  work: string;
  /** The kiln command (default: this checkout's bin/kiln). */
  kilnBin?: string;
  runs: number;
  keep: boolean;
  log: (message: string) => void;
}

export interface SbomResult {
  image: string;
  packages?: number;
  /** seconds of each counted run */
  samples: number[];
  medianS?: number;
  error?: string;
}

export async function sbomBench(o: SbomBenchOptions): Promise<{ results: SbomResult[]; table: string; failures: string[] }> {
  const failures: string[] = [];
  const kiln = o.kilnBin ?? path.join(repoRoot, 'bin', 'kiln');
  const dir = await fs.mkdtemp(path.join(o.work, 'sbom-'));
  const root = path.join(dir, 'root');
  const results = IMAGES.map((image): SbomResult => ({ image, samples: [] }));
  try {
    if (!have('mmdebstrap')) {
      const why = 'mmdebstrap is not installed (scripts/setup-host.sh): the Debian bases cannot be made';
      return { results: results.map((r) => ({ ...r, error: why })), table: `sbom: skipped — ${why}`, failures };
    }
    for (const r of results) {
      const made = await run('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), r.image, '--root', root], { env: { KILN_BIN: kiln }, timeoutMs: 1_800_000 });
      if (made.code !== 0) r.error = `make-base-image.sh ${r.image} failed: ${tail(made.stderr)}`;
    }
    for (let i = 0; i <= o.runs; i++) {
      for (const r of results) {
        if (r.error) continue;
        const out = path.join(dir, 'sbom.json');
        const x = await run(kiln, ['--root', root, 'sbom', r.image, '-o', out], { timeoutMs: 600_000 });
        if (x.code !== 0) {
          r.error = `kiln sbom ${r.image} failed: ${tail(x.stderr)}`;
          continue;
        }
        if (i === 0) {
          const doc = JSON.parse(await fs.readFile(out, 'utf8')) as { packages?: Array<{ primaryPackagePurpose?: string }> };
          r.packages = (doc.packages ?? []).filter((p) => p.primaryPackagePurpose === 'LIBRARY').length;
          o.log(`sbom: ${r.image}: ${r.packages} packages (warm-up ${(x.ms / 1000).toFixed(2)} s)`);
        } else r.samples.push(x.ms / 1000);
      }
    }
    for (const r of results) {
      r.medianS = median(r.samples);
      if (r.error) failures.push(`sbom/${r.image}: ${r.error}`);
    }
    const lines = [
      `sbom: kiln sbom (SPDX 2.3 JSON) on the Debian bases, median of ${o.runs} run(s) after a warm-up`,
      '  (no peer: syft and trivy are not installed here and cannot be downloaded, so there is nothing to compare with)',
      ...results.map((r) =>
        r.error ? `  ${r.image.padEnd(18)} error: ${r.error}` : `  ${r.image.padEnd(18)} ${String(r.packages).padStart(5)} packages  ${r.medianS?.toFixed(2)} s  (runs: ${r.samples.map((s) => s.toFixed(2)).join(', ')})`,
      ),
    ];
    return { results, table: lines.join('\n'), failures };
  } finally {
    if (!o.keep) await fs.rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const argv = process.argv.slice(2);
  const runsAt = argv.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(argv[runsAt + 1]) : 3;
  const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-sbom-'));
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  sbomBench({ work, runs, keep: false, log })
    .then(async (r) => {
      process.stdout.write(`${r.table}\n`);
      await fs.rm(work, { recursive: true, force: true });
      process.exit(r.failures.length ? 1 : 0);
    })
    .catch(async (e: unknown) => {
      log(`bench-sbom: ${(e as Error)?.stack ?? String(e)}`);
      await fs.rm(work, { recursive: true, force: true });
      process.exit(1);
    });
}
