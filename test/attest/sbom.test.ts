/**
 * `kiln build --sbom=true`: an SPDX 2.3 document of each platform image (src/sbom/ catalogues it)
 * attached as an in-toto statement beside the provenance, valid against the official SPDX
 * schema; on Debian's bookworm base its dpkg packages are what dpkg-query lists in the image.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, runKiln, workspace, tempDir, type Workspace } from '../helpers.js';
import { statementProblems } from '../../src/attest/intoto.js';
import { catalogFromSpdx } from '../../src/sbom/spdx.js';
import { schemaValidator } from '../sbom/util.js';
import { importBase, skipExamples } from '../examples/examples.js';
import { readAttached } from './helpers.js';

describe('kiln build --sbom=true', { skip: isRoot() ? false : 'RUN and overlayfs need root' }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => ws?.cleanup());

  it('attaches an SPDX statement and the provenance in one attestation manifest; the document validates', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN echo hi > /hi\n' });
    const r = await runKiln(['build', '-q', '--sbom=true', '--provenance=mode=max', '-t', 'sbom:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const { index, attestations } = await readAttached(ws.root, 'sbom:1');
    assert.equal(index.manifests.length, 2);
    assert.equal(attestations.length, 1);
    const a = attestations[0];
    assert.deepEqual(a.manifest.layers.map((l) => l.annotations?.['in-toto.io/predicate-type']), ['https://spdx.dev/Document', 'https://slsa.dev/provenance/v1']);
    assert.deepEqual(a.config.rootfs, { type: 'layers', diff_ids: a.manifest.layers.map((l) => l.digest) });
    for (const s of a.statements) {
      assert.deepEqual(statementProblems(s), []);
      assert.equal(s.subject[0].digest.sha256, index.manifests[0].digest.slice(7));
    }
    const spdx = a.statements[0].predicate;
    assert.deepEqual(schemaValidator('spdx')(spdx), []);
    assert.equal(spdx.spdxVersion, 'SPDX-2.3');
    const shown = await runKiln(['attestations', 'sbom:1', '--predicate-type', 'https://spdx.dev/Document'], { root: ws.root });
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(JSON.parse(shown.stdout), a.statements[0]);
    // --sbom=false and --attest type=sbom,disabled=true ask for nothing
    const none = await runKiln(['build', '-q', '--sbom=false', '--attest', 'type=sbom,disabled=true', '-t', 'sbom:none', ctx], { root: ws.root });
    assert.equal(none.code, 0, none.stderr);
    const plain = await runKiln(['attestations', 'sbom:none'], { root: ws.root });
    assert.match(plain.stderr, /has no attestations/);
  });

  it('on debian:bookworm the attached SBOM lists the dpkg packages dpkg-query lists in the image', { skip: skipExamples }, async (t) => {
    const root = await tempDir('kiln-att-deb-');
    t.after(root.cleanup);
    await importBase(root.dir, 'debian:bookworm');
    const ctx = await ws.context({ Dockerfile: 'FROM debian:bookworm\n' });
    const r = await runKiln(['build', '-q', '--sbom=true', '-t', 'deb:sbom', ctx], { root: root.dir, timeoutMs: 600_000 });
    assert.equal(r.code, 0, r.stderr);
    const { attestations } = await readAttached(root.dir, 'deb:sbom');
    const spdx = attestations[0].statements[0].predicate;
    assert.deepEqual(schemaValidator('spdx')(spdx), []);
    const listed = new Set(catalogFromSpdx(spdx).packages.filter((p) => p.ecosystem === 'deb').map((p) => `${p.name}@${p.version}`));
    const q = await runKiln(['run', '--rm', 'deb:sbom', 'dpkg-query', '-W', '-f', '${Package}@${Version}\\n'], { root: root.dir });
    assert.equal(q.code, 0, q.stderr);
    const installed = new Set(q.stdout.trim().split('\n'));
    assert.ok(installed.size > 50, `${installed.size} packages`);
    assert.deepEqual([...listed].sort(), [...installed].sort());
  });
});
