/**
 * Attestations travel: `kiln push` (and `build --push`) sends the index with its attestation
 * manifests to a real docker-registry, where skopeo reads them byte for byte; `kiln pull` into
 * a fresh root keeps the pulled platform's attestation manifest, so `kiln attestations` works
 * there; `kiln save --format oci` + `kiln load` keep them; a docker archive drops them, as
 * buildx's docker exporter does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { haveTool, isRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry, type Registry } from '../registry/harness.js';
import { ContentStore } from '../../src/oci/store.js';
import { validateOCI } from '../../src/oci/schema.js';
import { MediaType, type ImageIndex, type ImageManifest } from '../../src/oci/types.js';
import { statementProblems, type Statement } from '../../src/attest/intoto.js';
import { readAttached } from './helpers.js';

const skip = !isRoot() ? 'RUN and overlayfs need root' : !haveRegistry() ? 'docker-registry is not installed' : !haveTool('skopeo') ? 'skopeo is not installed' : false;

describe('attestations travel with push, pull, save and load', { skip }, () => {
  let ws: Workspace;
  let registry: Registry;
  let ctx: string;

  before(async () => {
    ws = await workspace();
    registry = await startRegistry();
    ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nARG V\nRUN echo "$V" > /v\n' });
    const r = await runKiln(['build', '-q', '--provenance=mode=max', '--build-arg', 'V=1', '-t', 'travel:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await registry?.stop();
    await ws?.cleanup();
  });

  const skopeoRaw = async (ref: string): Promise<unknown> => {
    const r = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  it('kiln push sends the index and its attestation manifest as stored: skopeo reads the same bytes, and the statement', async () => {
    const ref = `${registry.host}/att/app:1`;
    const pushed = await runKiln(['push', 'travel:1', ref], { root: ws.root });
    assert.equal(pushed.code, 0, pushed.stderr);
    const local = await readAttached(ws.root, 'travel:1');
    const index = (await skopeoRaw(ref)) as ImageIndex;
    assert.deepEqual(validateOCI('index', index), []);
    // built with gzip layers: nothing is rewritten on the way, so the digests the statements name are the registry's
    assert.deepEqual(index, local.index);
    const att = index.manifests.find((m) => m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest');
    assert.ok(att, JSON.stringify(index));
    assert.deepEqual(att.platform, { architecture: 'unknown', os: 'unknown' });
    assert.equal(att.annotations?.['vnd.docker.reference.digest'], index.manifests[0].digest);
    const manifest = (await skopeoRaw(`${registry.host}/att/app@${att.digest}`)) as ImageManifest;
    assert.deepEqual(validateOCI('manifest', manifest), []);
    assert.equal(manifest.layers[0].mediaType, 'application/vnd.in-toto+json');
    // the statement blob, read back from the registry over its own API
    const blob = await fetch(`${registry.url}/v2/att/app/blobs/${manifest.layers[0].digest}`);
    assert.equal(blob.status, 200);
    const statement = (await blob.json()) as Statement;
    assert.deepEqual(statementProblems(statement), []);
    assert.equal(statement.subject[0].digest.sha256, index.manifests[0].digest.slice(7));
    // the image manifest the statement names is in the registry
    const image = (await skopeoRaw(`${registry.host}/att/app@${index.manifests[0].digest}`)) as ImageManifest;
    assert.deepEqual(validateOCI('manifest', image), []);
  });

  it('kiln build --push sends them too', async () => {
    const ref = `${registry.host}/att/built:1`;
    const r = await runKiln(['build', '-q', '--push', '--attest', 'type=provenance,mode=min', '-t', ref, ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const index = (await skopeoRaw(ref)) as ImageIndex;
    assert.equal(index.manifests.length, 2);
    assert.equal(index.manifests[1].annotations?.['vnd.docker.reference.type'], 'attestation-manifest');
    assert.equal(index.manifests[1].annotations?.['vnd.docker.reference.digest'], index.manifests[0].digest);
    const store = await ContentStore.open(ws.root);
    assert.equal((await store.resolve(ref))?.digest, r.stdout.trim());
  });

  it('kiln pull into a fresh root keeps the attestation manifest; kiln attestations reads it; the image runs', async (t) => {
    const ref = `${registry.host}/att/app:1`;
    const fresh = await tempDir('kiln-att-pull-');
    t.after(fresh.cleanup);
    const pulled = await runKiln(['pull', ref], { root: fresh.dir });
    assert.equal(pulled.code, 0, pulled.stderr);
    const remote = (await skopeoRaw(ref)) as ImageIndex;
    const { index } = await readAttached(fresh.dir, ref);
    assert.deepEqual(index.manifests, remote.manifests);
    const list = await runKiln(['attestations', '--format', 'json', ref], { root: fresh.dir });
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as Array<{ subject: string; predicateType: string; statement: Statement }>;
    assert.equal(rows.length, 1);
    assert.equal(rows[0].predicateType, 'https://slsa.dev/provenance/v1');
    assert.equal(rows[0].subject, remote.manifests[0].digest);
    const local = await readAttached(ws.root, 'travel:1');
    assert.deepEqual(rows[0].statement, local.attestations[0].statements[0]);
    const ran = await runKiln(['run', '--rm', ref, 'cat', '/v'], { root: fresh.dir });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, '1\n');
    // pulling again changes nothing; a prune keeps what the name reaches
    const again = await runKiln(['pull', ref], { root: fresh.dir });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await runKiln(['prune', '-f'], { root: fresh.dir })).code, 0);
    assert.equal((await runKiln(['attestations', '--predicate-type', 'https://slsa.dev/provenance/v1', ref], { root: fresh.dir })).code, 0);
    // an image without attestations is still named by its manifest
    const plain = `${registry.host}/att/plain:1`;
    assert.equal((await runKiln(['push', 'busybox:latest', plain], { root: ws.root })).code, 0);
    assert.equal((await runKiln(['pull', plain], { root: fresh.dir })).code, 0);
    const store = await ContentStore.open(fresh.dir);
    assert.equal((await store.resolve(plain))?.mediaType, MediaType.ociManifest);
  });

  it('kiln save --format oci and kiln load keep them; a docker archive holds the image alone', async (t) => {
    const dir = await tempDir('kiln-att-save-');
    t.after(dir.cleanup);
    const oci = path.join(dir.dir, 'x.oci.tar');
    assert.equal((await runKiln(['save', '--format', 'oci', '-o', oci, 'travel:1'], { root: ws.root })).code, 0);
    const fresh = path.join(dir.dir, 'root');
    const loaded = await runKiln(['load', '-i', oci], { root: fresh });
    assert.equal(loaded.code, 0, loaded.stderr);
    const a = await readAttached(ws.root, 'travel:1');
    const b = await readAttached(fresh, 'travel:1');
    assert.equal(b.top.digest, a.top.digest);
    assert.deepEqual(b.attestations.map((x) => x.statements), a.attestations.map((x) => x.statements));
    const shown = await runKiln(['attestations', 'travel:1'], { root: fresh });
    assert.match(shown.stdout, /https:\/\/slsa.dev\/provenance\/v1/);

    const docker = path.join(dir.dir, 'x.docker.tar');
    assert.equal((await runKiln(['save', '-o', docker, 'travel:1'], { root: ws.root })).code, 0);
    const extracted = path.join(dir.dir, 'docker');
    await fs.mkdir(extracted);
    assert.equal((await runCommand('tar', ['-xf', docker, '-C', extracted])).code, 0);
    const manifest = JSON.parse(await fs.readFile(path.join(extracted, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
    assert.equal(manifest.length, 1);
    const bytes = await Promise.all(manifest[0].Layers.map((l) => fs.readFile(path.join(extracted, l))));
    assert.ok(!bytes.some((b) => b.includes('https://slsa.dev/provenance/v1')), 'a docker archive layer holds a statement');
  });
});
