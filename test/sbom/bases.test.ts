/**
 * SBOM accuracy on the real Debian and Node bases (scripts/make-base-image.sh) and on images
 * built from them for real: the dpkg packages kiln catalogues equal what dpkg-query lists
 * inside the image, the npm packages of an `npm ci`-ed project equal `npm ls --all`, and a
 * package apt-get installed is attributed to that RUN's layer while the base's stay on the base
 * layer. Skipped, as test/examples is, where RUN or mmdebstrap cannot run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { repoRoot, runKiln } from '../helpers.js';
import { skipExamples, useExample } from '../examples/examples.js';
import { catalogFromSpdx } from '../../src/sbom/spdx.js';
import type { Catalog } from '../../src/sbom/types.js';
import { ContentStore } from '../../src/oci/store.js';
import { loadImage } from '../../src/oci/image.js';
import { schemaValidator } from './util.js';

/** `kiln sbom IMAGE` (SPDX), validated and read back; with the time it took. */
async function sbom(root: string, image: string): Promise<{ catalog: Catalog; ms: number }> {
  const t0 = Date.now();
  const r = await runKiln(['sbom', image], { root, timeoutMs: 300_000 });
  const ms = Date.now() - t0;
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(schemaValidator('spdx')(doc), []);
  return { catalog: catalogFromSpdx(doc), ms };
}

/** name@version of every installed package, as dpkg-query inside the image says (plain names, no :arch). */
async function dpkgQuery(root: string, image: string): Promise<string[]> {
  const r = await runKiln(['run', image, 'dpkg-query', '-W', '-f', '${db:Status-Status} ${Package}@${Version}\\n'], { root, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  return lines.filter((l) => l.startsWith('installed ')).map((l) => l.slice('installed '.length)).sort();
}

const set = (c: Catalog, ecosystem: string, under = '/'): string[] =>
  [...new Set(c.packages.filter((p) => p.ecosystem === ecosystem && p.locations.some((l) => l.path.startsWith(under))).map((p) => `${p.name}@${p.version}`))].sort();

/** The layer of the first history entry whose command matches (empty layers skipped). */
async function layerOf(root: string, image: string, command: RegExp): Promise<number> {
  const store = await ContentStore.open(root);
  const img = await loadImage(store, image);
  let layer = -1;
  for (const h of img.config.history ?? []) {
    if (!h.empty_layer) layer++;
    if (command.test(h.created_by ?? '')) return layer;
  }
  throw new Error(`no history entry matches ${command}`);
}

describe('SBOM accuracy on the real bases', { skip: skipExamples }, () => {
  const ex = useExample('apt', ['debian:bookworm', 'node:18-bookworm']);

  for (const base of ['debian:bookworm', 'node:18-bookworm']) {
    it(`${base}: the dpkg packages equal dpkg-query -W inside the image`, async (t) => {
      const { catalog, ms } = await sbom(ex.root, base);
      const expected = await dpkgQuery(ex.root, base);
      const found = set(catalog, 'deb');
      t.diagnostic(`${base}: ${found.length} dpkg packages found, ${expected.length} expected (dpkg-query); kiln sbom took ${ms} ms`);
      assert.deepEqual(found, expected);
      assert.equal(catalog.os?.id, 'debian');
      assert.equal(catalog.os?.versionId, '12');
      for (const p of catalog.packages.filter((q) => q.ecosystem === 'deb')) {
        assert.match(p.purl, /^pkg:deb\/debian\/[^@]+@[^?]+\?arch=[a-z0-9]+&distro=debian-12/);
        assert.equal(p.locations[0].layer, 0);
      }
      const withLicences = catalog.packages.filter((p) => p.ecosystem === 'deb' && p.licenses.length > 0).length;
      t.diagnostic(`${base}: ${withLicences} of ${found.length} dpkg packages have licences from their copyright files`);
      assert.ok(withLicences > found.length * 0.8, 'most Debian packages have a DEP-5 or recognisable copyright file');
    });
  }

  it('an apt-get install on debian:bookworm: equal to dpkg-query, the new packages on the RUN layer, the base on the base layer', async (t) => {
    await ex.build('sbom-apt:1');
    const { catalog } = await sbom(ex.root, 'sbom-apt:1');
    const expected = await dpkgQuery(ex.root, 'sbom-apt:1');
    assert.deepEqual(set(catalog, 'deb'), expected);
    const base = new Set(set((await sbom(ex.root, 'debian:bookworm')).catalog, 'deb'));
    const runLayer = await layerOf(ex.root, 'sbom-apt:1', /apt-get install/);
    assert.ok(runLayer > 0);
    const added = catalog.packages.filter((p) => p.ecosystem === 'deb' && !base.has(`${p.name}@${p.version}`));
    t.diagnostic(`apt-get install jq added ${added.map((p) => p.name).join(', ')}`);
    assert.ok(added.some((p) => p.name === 'jq'));
    for (const p of catalog.packages.filter((q) => q.ecosystem === 'deb')) {
      const want = base.has(`${p.name}@${p.version}`) ? 0 : runLayer;
      assert.equal(p.locations[0].layer, want, `${p.name}@${p.version} is attributed to layer ${want}`);
      assert.equal(p.locations[0].diffId, catalog.diffIds[want]);
    }
  });

  it('npm ci of a project with real dependencies on node:18-bookworm: the packages under /app equal npm ls --all', async (t) => {
    const dir = path.join(repoRoot, 'test', 'sbom', 'fixtures', 'npm-app');
    const b = await runKiln(['build', '-t', 'sbom-npm:1', dir], { root: ex.root, timeoutMs: 900_000 });
    assert.equal(b.code, 0, b.stderr.slice(-3000));
    const { catalog, ms } = await sbom(ex.root, 'sbom-npm:1');
    const ls = await runKiln(['run', 'sbom-npm:1', 'npm', 'ls', '--all', '--json'], { root: ex.root, timeoutMs: 120_000 });
    assert.equal(ls.code, 0, ls.stderr);
    const expected = new Set<string>();
    const walk = (deps: Record<string, { version?: string; missing?: boolean; dependencies?: Record<string, unknown> }> | undefined): void => {
      for (const [name, d] of Object.entries(deps ?? {})) {
        if (d.version && !d.missing) expected.add(`${name}@${d.version}`);
        walk(d.dependencies as typeof deps);
      }
    };
    walk((JSON.parse(ls.stdout) as { dependencies?: Record<string, never> }).dependencies);
    const found = set(catalog, 'npm', '/app/');
    t.diagnostic(`npm: ${found.length} packages found under /app, ${expected.size} expected (npm ls --all); kiln sbom took ${ms} ms`);
    assert.deepEqual(found, [...expected].sort());
    assert.ok(found.length > 50, 'a real dependency tree');
    const runLayer = await layerOf(ex.root, 'sbom-npm:1', /npm ci/);
    for (const p of catalog.packages.filter((q) => q.ecosystem === 'npm' && q.locations[0].path.startsWith('/app/'))) assert.equal(p.locations[0].layer, runLayer);
    const scoped = catalog.packages.find((p) => p.name === '@sindresorhus/slugify');
    assert.equal(scoped?.purl, 'pkg:npm/%40sindresorhus/slugify@1.1.2');
    assert.deepEqual(scoped?.licenses, ['MIT']);
  });
});
