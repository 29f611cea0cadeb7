/**
 * `kiln scan` on the real Debian bases (scripts/make-base-image.sh): advisories written for
 * packages the base really has, checked against dpkg-query run inside the image, and the time
 * of a scan against a database of realistic size (20 000 generated OSV records across
 * ecosystems, made here, never committed). Skips like test/examples when the bases cannot be
 * made on this machine.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ContentStore } from '../../src/oci/store.js';
import { loadImage } from '../../src/oci/image.js';
import { catalogImage } from '../../src/sbom/catalog.js';
import type { Catalog } from '../../src/sbom/types.js';
import type { OsvRecord } from '../../src/scan/osv.js';
import { runKiln, tempDir } from '../helpers.js';
import { importBase, skipExamples } from '../examples/examples.js';
import { advisory, fixedIn, osvSchemaErrors, writeOsvDir, writeOsvZip } from './osv-fixtures.js';

interface JsonReport {
  findings: Array<{ id: string; installed: string; fixed?: string; package: { name: string; ecosystem: string }; layer: { index: number; diffId: string; path: string } }>;
}

async function catalogOf(root: string, ref: string): Promise<Catalog> {
  const store = await ContentStore.open(root);
  const img = await loadImage(store, ref);
  return catalogImage(store, img.manifestDescriptor);
}

/**
 * A database of `total` records: for each Debian source package of the catalogue one advisory
 * fixed above the installed version and one fixed below (0~~ sorts before every version with a digit); for each npm package (name and
 * version) one listing that exact version; the rest filler for names no image has, across
 * Debian, npm, PyPI, Go, Maven and Alpine. Returns it with the findings it must give.
 */
function realisticDb(catalog: Catalog, total: number): { records: OsvRecord[]; expected: number } {
  const records: OsvRecord[] = [];
  let expected = 0;
  const sources = new Map<string, string>();
  const npm = new Set<string>();
  for (const p of catalog.packages) {
    const places = new Set(p.locations.map((l) => l.path)).size;
    if (p.ecosystem === 'deb') {
      sources.set(p.sourceName ?? p.name, p.sourceVersion ?? p.version);
      expected += places;
    } else if (p.ecosystem === 'npm') {
      expected += places;
      // the same name@version at several places is one catalogue entry each: one advisory covers them all
      if (npm.has(`${p.name}@${p.version}`)) continue;
      npm.add(`${p.name}@${p.version}`);
      records.push(advisory(`GHSA-npm0-${records.length}`, [{ package: { ecosystem: 'npm', name: p.name }, versions: [p.version] }]));
    }
  }
  for (const [name, version] of sources) {
    records.push(advisory(`DEBIAN-CVE-2026-${records.length}`, [fixedIn('Debian:12', name, `${version}+kiln1`)]));
    records.push(advisory(`DEBIAN-CVE-2025-${records.length}`, [fixedIn('Debian:12', name, '0~~')]));
  }
  const kinds: Array<(n: number) => OsvRecord> = [
    (n) => advisory(`DEBIAN-CVE-2024-${n}`, [fixedIn('Debian:12', `nosuchsrc${n % 3000}`, `1.${n}-1`)]),
    (n) => advisory(`GHSA-fill-${n}`, [fixedIn('npm', `no-such-package-${n % 5000}`, `1.${n % 50}.0`, 'SEMVER')]),
    (n) => advisory(`PYSEC-2026-${n}`, [fixedIn('PyPI', `no_such_project_${n % 4000}`, `2.${n % 30}`)]),
    (n) => advisory(`GO-2026-${n}`, [fixedIn('Go', `example.org/no/such/${n % 3000}`, `0.${n % 20}.0`, 'SEMVER')]),
    (n) => advisory(`GHSA-mvn0-${n}`, [fixedIn('Maven', `org.example:no-such-${n % 3000}`, `3.${n % 10}.1`)]),
    (n) => advisory(`ALPINE-CVE-2026-${n}`, [fixedIn('Alpine:v3.19', `nosuchapk${n % 2000}`, `1.${n % 9}-r0`)]),
  ];
  for (const k of kinds) assert.deepEqual(osvSchemaErrors(k(1)), []);
  for (let n = 0; records.length < total; n++) records.push(kinds[n % kinds.length](n));
  return { records, expected };
}

describe('kiln scan on the Debian bases', { skip: skipExamples }, () => {
  let root = '';
  let work = '';
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    const r = await tempDir('kiln-root-scan-');
    cleanups.push(r.cleanup);
    root = r.dir;
    const w = await tempDir('kiln-scan-work-');
    cleanups.push(w.cleanup);
    work = w.dir;
    await importBase(root, 'debian:bookworm');
    await importBase(root, 'node:18-bookworm');
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("debian:bookworm: an advisory for libc6's real source package (as dpkg-query says) fixed above → a finding with that fix and layer; fixed below or withdrawn → none", async () => {
    const q = await runKiln(['run', 'debian:bookworm', 'dpkg-query', '-W', '-f=${source:Package} ${source:Version} ${Version}\\n', 'libc6'], { root });
    assert.equal(q.code, 0, q.stderr);
    const [source, sourceVersion] = q.stdout.trim().split(' ');
    assert.equal(source, 'glibc');
    const fix = `${sourceVersion}+kiln1`;
    const db = await writeOsvDir(path.join(work, 'bookworm-db'), [
      advisory('DSA-9001-1', [fixedIn('Debian:12', 'glibc', fix)], { severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }] }),
      advisory('DSA-9002-1', [fixedIn('Debian:12', 'glibc', '2.31-1')]),
      advisory('DSA-9003-1', [fixedIn('Debian:12', 'glibc', fix)], { withdrawn: '2026-01-02T00:00:00Z' }),
      advisory('DSA-9004-1', [fixedIn('Debian:11', 'glibc', fix)]),
    ]);
    const r = await runKiln(['scan', 'debian:bookworm', '--db', db, '--format', 'json', '--exit-code', '2'], { root });
    assert.equal(r.code, 2, r.stderr);
    const rep = JSON.parse(r.stdout) as JsonReport;
    assert.ok(rep.findings.length > 0);
    assert.deepEqual([...new Set(rep.findings.map((f) => f.id))], ['DSA-9001-1']);
    const libc = rep.findings.find((f) => f.package.name === 'libc6');
    assert.ok(libc, 'libc6 is reported under its source glibc');
    assert.equal(libc.installed, sourceVersion);
    assert.equal(libc.fixed, fix);
    assert.equal(libc.layer.path, '/var/lib/dpkg/status');
    // every binary package built from glibc in the image, each once
    const fromGlibc = (await catalogOf(root, 'debian:bookworm')).packages.filter((p) => p.ecosystem === 'deb' && (p.sourceName ?? p.name) === 'glibc');
    assert.deepEqual(rep.findings.map((f) => f.package.name).sort(), fromGlibc.map((p) => p.name).sort());
    const inspect = JSON.parse((await runKiln(['inspect', 'debian:bookworm'], { root })).stdout) as { config: { rootfs: { diff_ids: string[] } } };
    assert.equal(libc.layer.diffId, inspect.config.rootfs.diff_ids[libc.layer.index]);
  });

  for (const image of ['debian:bookworm', 'node:18-bookworm']) {
    it(`${image}: scan time against 20 000 OSV records (zip), and every expected finding`, async (t) => {
      const catalog = await catalogOf(root, image);
      const { records, expected } = realisticDb(catalog, 20_000);
      const zip = await writeOsvZip(path.join(work, `${image.replace(/[:/]/g, '-')}.zip`), records);
      const start = performance.now();
      const r = await runKiln(['scan', image, '--db', zip, '--format', 'json'], { root, timeoutMs: 600_000 });
      const ms = performance.now() - start;
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as JsonReport;
      assert.equal(rep.findings.length, expected, 'one finding per package place: each Debian package by its source, each npm package by its version');
      assert.ok(rep.findings.every((f) => !f.id.startsWith('DEBIAN-CVE-2025-')), 'advisories fixed below the installed versions give nothing');
      const packages = catalog.packages.length;
      t.diagnostic(`kiln scan ${image}: ${packages} packages, ${records.length} advisories, ${rep.findings.length} findings in ${(ms / 1000).toFixed(2)} s`);
      process.stderr.write(`# MEASURE kiln scan ${image}: ${packages} packages (${catalog.packages.filter((p) => p.ecosystem === 'deb').length} deb, ${catalog.packages.filter((p) => p.ecosystem === 'npm').length} npm), ${records.length} advisories, ${rep.findings.length} findings, ${(ms / 1000).toFixed(2)} s\n`);
    });
  }
});
