/**
 * Issue #13's done-means: the whole supply-chain pipeline in one build command, against a real
 * docker-registry, with fixtures written here (an OSV advisory directory, a key pair from kiln
 * generate-key-pair under KILN_PASSWORD):
 *
 *   kiln build --push --sbom=true --provenance=mode=max --sign-key KEY --scan-db DB
 *              --scan-severity CRITICAL --scan-exit-code N -t REG/REPO:TAG CONTEXT
 *
 * - a passing image is pushed with its SBOM and provenance attestation manifests and signed:
 *   skopeo reads the index and each attestation manifest, kiln verify --key passes (also for
 *   the attestations), and fails once the tag names a tampered manifest;
 * - a failing image (an npm package with a CRITICAL advisory) leaves the registry untouched:
 *   no new repository or tag, no new blob in the registry's storage; kiln exits with the scan's
 *   exit code and prints the findings; the local store keeps the image;
 * - a wrong key password stops the build before it starts, and pushes nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { haveTool, isRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry, type Registry } from '../registry/harness.js';
import { registryTags } from '../registry/push-fixtures.js';
import { catalogImage } from '../../src/sbom/catalog.js';
import { ContentStore } from '../../src/oci/store.js';
import { chooseManifest } from '../../src/oci/image.js';
import { hostPlatform } from '../../src/oci/platform.js';
import type { ImageIndex } from '../../src/oci/types.js';
import { importBase, skipExamples } from '../examples/examples.js';

const PASSWORD = 'pipeline-test-password';
const VULNERABLE = { name: 'kiln-gate-demo', version: '1.2.3', advisory: 'GHSA-kiln-gate-0001' };

const skip = !haveRegistry() ? 'needs docker-registry' : !isRoot() ? 'the build needs root' : !haveTool('skopeo') ? 'needs skopeo' : false;

/** Every blob the registry stores (its filesystem driver's blobs/sha256/xx/<hex>). */
async function registryBlobs(reg: Registry): Promise<string[]> {
  const dir = path.join(reg.dataDir, 'docker', 'registry', 'v2', 'blobs', 'sha256');
  const out: string[] = [];
  for (const prefix of await fs.readdir(dir).catch(() => [] as string[])) {
    for (const hex of await fs.readdir(path.join(dir, prefix))) out.push(hex);
  }
  return out.sort();
}

async function catalog(reg: Registry): Promise<string[]> {
  const res = await fetch(`${reg.url}/v2/_catalog`);
  return ((await res.json()) as { repositories: string[] }).repositories.sort();
}

function osvAdvisory(): Record<string, unknown> {
  return {
    schema_version: '1.6.0',
    id: VULNERABLE.advisory,
    modified: '2026-01-01T00:00:00Z',
    published: '2026-01-01T00:00:00Z',
    summary: 'remote code execution in kiln-gate-demo (a fixture of kiln tests)',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
    affected: [
      {
        package: { ecosystem: 'npm', name: VULNERABLE.name, purl: `pkg:npm/${VULNERABLE.name}` },
        ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '1.2.4' }] }],
        database_specific: { severity: 'CRITICAL' },
      },
    ],
    database_specific: { severity: 'CRITICAL' },
  };
}

describe('the supply-chain pipeline: kiln build --push with SBOM, provenance, signature and the scan gate', { skip }, () => {
  let reg: Registry;
  let ws: Workspace;
  let dir: string;
  let cleanupDir: () => Promise<void>;
  let db: string;
  let key: string;
  let pub: string;
  const env = { KILN_PASSWORD: PASSWORD };

  before(async () => {
    reg = await startRegistry();
    ws = await workspace();
    ({ dir, cleanup: cleanupDir } = await tempDir('kiln-pipeline-'));
    db = path.join(dir, 'osv');
    await fs.mkdir(path.join(db, 'npm'), { recursive: true });
    await fs.writeFile(path.join(db, 'npm', `${VULNERABLE.advisory}.json`), JSON.stringify(osvAdvisory(), null, 2));
    key = path.join(dir, 'cosign.key');
    pub = path.join(dir, 'cosign.pub');
    const gen = await runKiln(['generate-key-pair', '--output-key-prefix', path.join(dir, 'cosign')], { root: ws.root, env });
    assert.equal(gen.code, 0, gen.stderr);
    assert.match(await fs.readFile(key, 'utf8'), /-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----/);
  });
  after(async () => {
    await reg?.stop();
    await ws?.cleanup();
    await cleanupDir?.();
  });

  const gateFlags = (exitCode: number) => ['--push', '--sbom=true', '--provenance=mode=max', '--sign-key', key, '--scan-db', db, '--scan-severity', 'CRITICAL', '--scan-exit-code', String(exitCode)];

  test('a passing image is pushed with SBOM, provenance and signature; skopeo reads it, kiln verify passes, a tampered manifest fails', async () => {
    const ctx = await ws.context({
      Dockerfile: 'FROM busybox\nCOPY app/ /app/\nCMD ["cat", "/app/package.json"]\n',
      'app/package.json': JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { [VULNERABLE.name]: '^1.2.4' } }),
      'app/node_modules/kiln-gate-demo/package.json': JSON.stringify({ name: VULNERABLE.name, version: '1.2.4', license: 'MIT' }),
    });
    const ref = `${reg.host}/pipeline/app:1`;
    const b = await runKiln(['build', '--progress', 'plain', ...gateFlags(1), '-t', ref, ctx], { root: ws.root, env });
    assert.equal(b.code, 0, b.stderr);
    const pushed = new RegExp(`^pushed ${ref.replace(/[.]/g, '\\.')}@(sha256:[a-f0-9]{64})$`, 'm').exec(b.stderr);
    assert.ok(pushed, b.stderr);
    assert.match(b.stderr, new RegExp(`^signed ${pushed[1]} `, 'm'));

    // skopeo: the index, its platform manifest and one attestation manifest naming it, with SPDX and SLSA statements
    const raw = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(raw.code, 0, raw.stderr);
    const index = JSON.parse(raw.stdout) as { mediaType: string; manifests: Array<{ digest: string; platform?: { os: string; architecture: string }; annotations?: Record<string, string> }> };
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    const image = index.manifests.find((m) => m.platform?.os === 'linux')!;
    const attestation = index.manifests.find((m) => m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest')!;
    assert.ok(image && attestation, raw.stdout);
    assert.equal(attestation.annotations!['vnd.docker.reference.digest'], image.digest);
    assert.deepEqual(attestation.platform, { os: 'unknown', architecture: 'unknown' });
    const att = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/pipeline/app@${attestation.digest}`]);
    assert.equal(att.code, 0, att.stderr);
    const layers = (JSON.parse(att.stdout) as { layers: Array<{ mediaType: string; annotations?: Record<string, string> }> }).layers;
    assert.deepEqual(layers.map((l) => l.annotations?.['in-toto.io/predicate-type']).sort(), ['https://slsa.dev/provenance/v1', 'https://spdx.dev/Document']);
    assert.ok(layers.every((l) => l.mediaType === 'application/vnd.in-toto+json'));

    // kiln verify: the image and its attestations
    const v = await runKiln(['verify', '--key', pub, '--attestations', ref], { root: ws.root });
    assert.equal(v.code, 0, v.stderr);
    assert.ok(v.stdout.includes(pushed[1]), v.stdout);

    // tampered: the tag now names a changed index (one more annotation), re-pushed by skopeo's peer (the distribution API)
    const tampered = Buffer.from(JSON.stringify({ ...JSON.parse(raw.stdout), annotations: { 'org.example.tampered': 'yes' } }));
    const put = await fetch(`${reg.url}/v2/pipeline/app/manifests/1`, { method: 'PUT', headers: { 'content-type': index.mediaType }, body: tampered });
    assert.equal(put.status, 201, await put.text());
    const bad = await runKiln(['verify', '--key', pub, ref], { root: ws.root });
    assert.notEqual(bad.code, 0, bad.stdout);
    assert.match(bad.stderr, /no signature names/);
  });

  test('a failing image leaves the registry untouched (no repository, tag or blob) and exits with the scan exit code', async () => {
    const ctx = await ws.context({
      Dockerfile: 'FROM busybox\nCOPY app/ /app/\n',
      'app/package.json': JSON.stringify({ name: 'bad-app', version: '1.0.0', dependencies: { [VULNERABLE.name]: VULNERABLE.version } }),
      'app/node_modules/kiln-gate-demo/package.json': JSON.stringify({ name: VULNERABLE.name, version: VULNERABLE.version, license: 'MIT' }),
    });
    const blobs = await registryBlobs(reg);
    const repos = await catalog(reg);
    const ref = `${reg.host}/pipeline/bad:1`;
    const b = await runKiln(['build', '--progress', 'plain', ...gateFlags(7), '-t', ref, ctx], { root: ws.root, env });
    assert.equal(b.code, 7, b.stderr);
    assert.match(b.stderr, /failed the gate: 1 vulnerability; nothing was pushed/);
    assert.match(b.stderr, new RegExp(`CRITICAL\\s+${VULNERABLE.advisory}\\s+${VULNERABLE.name} \\(npm\\)\\s+${VULNERABLE.version.replace(/\./g, '\\.')}\\s+1\\.2\\.4`));
    assert.doesNotMatch(b.stderr, /^pushed /m);
    assert.deepEqual(await catalog(reg), repos);
    assert.deepEqual(await registryTags(reg.url, 'pipeline/bad'), []);
    assert.deepEqual(await registryBlobs(reg), blobs);
    // the local store keeps it, to inspect
    const images = await runKiln(['images', `${reg.host}/pipeline/bad`], { root: ws.root });
    assert.match(images.stdout, /pipeline\/bad\s+1\s/);
  });

  test('on debian:bookworm, a real Debian package with a CRITICAL advisory fails the gate and nothing is pushed', { skip: skipExamples }, async () => {
    await importBase(ws.root, 'debian:bookworm');
    const store = await ContentStore.open(ws.root);
    const base = (await store.resolve('debian:bookworm'))!;
    const manifest = base.mediaType.includes('index') ? chooseManifest(await store.readJSON<ImageIndex>(base.digest), hostPlatform(), 'debian:bookworm') : base;
    const bash = (await catalogImage(store, manifest)).packages.find((p) => p.ecosystem === 'deb' && p.name === 'bash')!;
    const source = { name: bash.sourceName ?? bash.name, version: bash.sourceVersion ?? bash.version };
    const debDb = path.join(dir, 'osv-debian');
    await fs.mkdir(debDb, { recursive: true });
    await fs.writeFile(
      path.join(debDb, 'DEBIAN-KILN-0001.json'),
      JSON.stringify({
        schema_version: '1.6.0',
        id: 'DEBIAN-KILN-0001',
        modified: '2026-01-01T00:00:00Z',
        severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
        affected: [{ package: { ecosystem: 'Debian:12', name: source.name }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: `${source.version}+kiln1` }] }] }],
      }),
    );
    const ctx = await ws.context({ Dockerfile: 'FROM debian:bookworm\nLABEL org.example.test=gate\n' });
    const blobs = await registryBlobs(reg);
    const repos = await catalog(reg);
    const ref = `${reg.host}/pipeline/debian:1`;
    const b = await runKiln(['build', '--progress', 'plain', '--push', '--sign-key', key, '--scan-db', debDb, '--scan-severity', 'CRITICAL', '--scan-exit-code', '5', '-t', ref, ctx], { root: ws.root, env });
    assert.equal(b.code, 5, b.stderr);
    assert.match(b.stderr, new RegExp(`CRITICAL\\s+DEBIAN-KILN-0001\\s+bash \\(deb\\)\\s+${source.version.replace(/[.+]/g, '\\$&')}\\s+${source.version.replace(/[.+]/g, '\\$&')}\\+kiln1\\s+0 /var/lib/dpkg/status`));
    assert.deepEqual(await catalog(reg), repos);
    assert.deepEqual(await registryBlobs(reg), blobs);
  });

  test('a wrong key password fails before the build and pushes nothing', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox\nRUN echo should-not-run > /ran\n' });
    const blobs = await registryBlobs(reg);
    const repos = await catalog(reg);
    const b = await runKiln(['build', '--progress', 'plain', ...gateFlags(1), '-t', `${reg.host}/pipeline/wrongpw:1`, ctx], { root: ws.root, env: { KILN_PASSWORD: 'not the password' } });
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /password/i);
    assert.doesNotMatch(b.stderr, /should-not-run|writing image/);
    assert.deepEqual(await catalog(reg), repos);
    assert.deepEqual(await registryBlobs(reg), blobs);
  });
});
