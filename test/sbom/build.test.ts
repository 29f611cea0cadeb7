/**
 * The cataloguer on images kiln builds for real (busybox, RUN in runc over overlayfs): files a
 * RUN deletes become whiteouts in its layer and their packages are gone; a RUN that rewrites
 * dpkg's status keeps the packages it did not change on the layer that brought them; and the
 * `kiln sbom` command's formats, output file, platform choice and errors.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';
import { catalogFromSpdx } from '../../src/sbom/spdx.js';
import { ContentStore } from '../../src/oci/store.js';
import { loadImage } from '../../src/oci/image.js';
import { readLayer } from '../../src/oci/layer.js';
import { dpkgStanza, schemaValidator } from './util.js';

const pkgJson = (name: string, version: string): string => JSON.stringify({ name, version, license: 'MIT' });

describe('kiln sbom on images kiln built', { skip: isRoot() ? false : 'RUN needs root' }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws?.cleanup();
  });

  it('a RUN that deletes files and rewrites dpkg status: deleted packages are absent, kept ones keep their layer, new ones get the RUN layer', async () => {
    const ctx = await ws.context({
      'rootfs/var/lib/dpkg/status': [dpkgStanza('base-a', '1.0'), dpkgStanza('base-b', '2.0'), dpkgStanza('base-c', '3.0')].join('\n'),
      'rootfs/app/node_modules/keep/package.json': pkgJson('keep', '1.0.0'),
      'rootfs/app/node_modules/drop/package.json': pkgJson('drop', '1.0.0'),
      'rootfs/usr/lib/python3/dist-packages/gone-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: gone\nVersion: 1.0\n',
      Dockerfile: [
        'FROM busybox:latest',
        'COPY rootfs/ /',
        // removes base-b from the status file (base-a and base-c stay as they were), adds new-d
        "RUN sed -i '/^Package: base-b$/,/^$/d' /var/lib/dpkg/status && printf '\\nPackage: new-d\\nStatus: install ok installed\\nArchitecture: amd64\\nVersion: 4.0\\n' >> /var/lib/dpkg/status",
        'RUN rm -rf /app/node_modules/drop /usr/lib/python3/dist-packages/gone-1.0.dist-info && mkdir -p /app/node_modules/fresh && echo \'{"name":"fresh","version":"2.0.0"}\' > /app/node_modules/fresh/package.json',
        '',
      ].join('\n'),
    });
    const b = await runKiln(['build', '-t', 'sbom-run:1', ctx], { root: ws.root, timeoutMs: 300_000 });
    assert.equal(b.code, 0, b.stderr);
    const store = await ContentStore.open(ws.root);
    const img = await loadImage(store, 'sbom-run:1');
    // the deleting RUN's layer really has whiteouts (what is tested is the cataloguer reading them)
    const last = img.manifest.layers.length - 1;
    const names: string[] = [];
    for await (const e of readLayer(store, img.manifest.layers[last])) names.push(e.header.name);
    assert.ok(names.some((n) => /\.wh\.drop$/.test(n)), `whiteout for drop in ${names.join(' ')}`);
    const r = await runKiln(['sbom', 'sbom-run:1'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /catalogued from the layers/);
    const c = catalogFromSpdx(JSON.parse(r.stdout));
    const copyLayer = 1; // busybox is one layer
    const got = Object.fromEntries(c.packages.map((p) => [`${p.ecosystem}:${p.name}@${p.version}`, p.locations[0].layer]));
    assert.deepEqual(got, {
      'deb:base-a@1.0': copyLayer,
      'deb:base-c@3.0': copyLayer,
      'deb:new-d@4.0': copyLayer + 1,
      'npm:fresh@2.0.0': copyLayer + 2,
      'npm:keep@1.0.0': copyLayer,
    });
    for (const p of c.packages) assert.equal(p.locations[0].diffId, c.diffIds[p.locations[0].layer]);
  });

  it('formats, -o FILE, --platform, and clear errors', async () => {
    const ctx = await ws.context({ 'p.json': pkgJson('solo', '0.1.0'), Dockerfile: 'FROM busybox:latest\nCOPY p.json /srv/node_modules/solo/package.json\n' });
    const b = await runKiln(['build', '-t', 'sbom-cli:1', ctx], { root: ws.root, timeoutMs: 300_000 });
    assert.equal(b.code, 0, b.stderr);
    const out = path.join(ctx, 'bom.json');
    const cdx = await runKiln(['sbom', 'sbom-cli:1', '--format', 'cyclonedx-json', '-o', out], { root: ws.root, env: { SOURCE_DATE_EPOCH: '1700000000' } });
    assert.equal(cdx.code, 0, cdx.stderr);
    assert.equal(cdx.stdout, '');
    const doc = JSON.parse(await fs.readFile(out, 'utf8')) as { specVersion: string; metadata: { timestamp: string }; components: Array<{ name: string }> };
    assert.deepEqual(schemaValidator('cyclonedx')(doc), []);
    assert.equal(doc.metadata.timestamp, '2023-11-14T22:13:20.000Z');
    assert.deepEqual(doc.components.map((x) => x.name), ['solo']);
    const spdx = await runKiln(['sbom', 'sbom-cli:1', '--platform', 'linux/amd64'], { root: ws.root, env: { SOURCE_DATE_EPOCH: '1700000000' } });
    assert.equal(spdx.code, 0, spdx.stderr);
    assert.equal((JSON.parse(spdx.stdout) as { creationInfo: { created: string } }).creationInfo.created, '2023-11-14T22:13:20Z');
    const other = await runKiln(['sbom', 'sbom-cli:1', '--platform', 'linux/s390x'], { root: ws.root });
    assert.notEqual(other.code, 0);
    const bad = await runKiln(['sbom', 'sbom-cli:1', '--format', 'syft-json'], { root: ws.root });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown SBOM format "syft-json"[\s\S]*spdx-json, cyclonedx-json/);
    const missing = await runKiln(['sbom', 'nothing:here'], { root: ws.root });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /not found in the store/);
    assert.doesNotMatch(missing.stderr + bad.stderr, /\n\s+at /, 'no stack trace');
  });
});
