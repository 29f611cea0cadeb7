/** OCI 1.1 referrers against distribution 2.8, which has no referrers API: the sha256-<hex> tag index fallback. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { referrersTag, withReferrer } from '../../src/registry/referrers.js';
import type { RemoteRepository } from '../../src/registry/types.js';
import { pushBuffer, seedImage, skipUnlessRegistry, startRegistry, type SeededImage } from './harness.js';

const EMPTY = Buffer.from('{}');

async function pushArtifact(repo: RemoteRepository, subject: SeededImage, artifactType: string, content: string): Promise<{ digest: string; size: number }> {
  const blob = Buffer.from(content);
  for (const b of [EMPTY, blob]) await pushBuffer(repo, b);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(EMPTY), size: EMPTY.length },
      layers: [{ mediaType: 'application/octet-stream', digest: digestOf(blob), size: blob.length }],
      subject: { mediaType: MediaType.ociManifest, digest: subject.digest, size: subject.manifest.length },
      annotations: { 'org.example.kind': artifactType },
    }),
  );
  const d = await repo.putManifest(digestOf(bytes), { mediaType: MediaType.ociManifest, bytes });
  return { digest: d.digest, size: d.size };
}

test('referrersTag and withReferrer: sha256-<hex>, entries added once', () => {
  const d = digestOf('x');
  assert.equal(referrersTag(d), `sha256-${d.slice(7)}`);
  const a = { mediaType: MediaType.ociManifest, digest: digestOf('a'), size: 1, artifactType: 't/a' };
  const first = withReferrer(undefined, a)!;
  assert.deepEqual(JSON.parse(first.toString()), { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [a] });
  assert.equal(withReferrer(first, a), undefined);
  const b = { mediaType: MediaType.ociManifest, digest: digestOf('b'), size: 1 };
  assert.deepEqual(JSON.parse(withReferrer(first, b)!.toString()).manifests, [a, b]);
});

test('manifests with a subject are listed as referrers through the tag fallback, deduplicated and filterable', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const c = new RegistryClient({ backoffMs: 10 });
  t.after(() => c.close());
  const repo = c.repository(`${reg.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  assert.deepEqual(await repo.referrers(img.digest), []);

  const sbom = await pushArtifact(repo, img, 'application/vnd.example.sbom', 'sbom');
  const sig = await pushArtifact(repo, img, 'application/vnd.example.signature', 'sig');
  const expect = (d: { digest: string; size: number }, type: string) => ({
    mediaType: MediaType.ociManifest,
    digest: d.digest,
    size: d.size,
    artifactType: type,
    annotations: { 'org.example.kind': type },
  });
  assert.deepEqual(await repo.referrers(img.digest), [expect(sbom, 'application/vnd.example.sbom'), expect(sig, 'application/vnd.example.signature')]);
  assert.deepEqual(await repo.referrers(img.digest, 'application/vnd.example.signature'), [expect(sig, 'application/vnd.example.signature')]);
  // pushing the same referrer again does not list it twice
  await pushArtifact(repo, img, 'application/vnd.example.sbom', 'sbom');
  assert.equal((await repo.referrers(img.digest)).length, 2);
  // the fallback index is an ordinary OCI index under the referrers tag
  assert.ok((await repo.listTags()).includes(referrersTag(img.digest)));
  const index = await repo.getManifest(referrersTag(img.digest));
  assert.equal(index.descriptor.mediaType, MediaType.ociIndex);
  assert.deepEqual(await repo.referrers(digestOf('nothing points here')), []);
});

test('a registry with the referrers API is asked directly, and a manifest it takes with OCI-Subject needs no fallback tag', async (t) => {
  const subject = digestOf('the subject manifest');
  const listed = [
    { mediaType: MediaType.ociManifest, digest: digestOf('sbom'), size: 10, artifactType: 'application/vnd.example.sbom' },
    { mediaType: MediaType.ociManifest, digest: digestOf('sig'), size: 11, artifactType: 'application/vnd.example.signature' },
  ];
  const seen: string[] = [];
  // a registry that speaks OCI 1.1 (distribution 2.8 does not): referrers API and OCI-Subject
  const srv = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v2/') {
        res.writeHead(200);
        res.end();
      } else if (req.method === 'GET' && req.url?.split('?')[0] === `/v2/x/referrers/${subject}`) {
        // it does not apply the artifactType filter (no OCI-Filters-Applied): the client does
        res.writeHead(200, { 'content-type': MediaType.ociIndex });
        res.end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: listed }));
      } else if (req.method === 'PUT') {
        const body = Buffer.concat(chunks);
        res.writeHead(201, { 'docker-content-digest': digestOf(body), 'oci-subject': subject });
        res.end();
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    srv.closeAllConnections();
    srv.close();
  });
  const c = new RegistryClient({ backoffMs: 10 });
  t.after(() => c.close());
  const repo = c.repository(`127.0.0.1:${(srv.address() as AddressInfo).port}/x`);
  assert.deepEqual(await repo.referrers(subject), listed);
  assert.deepEqual(await repo.referrers(subject, 'application/vnd.example.signature'), [listed[1]]);
  const artifact = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(EMPTY), size: 2 }, layers: [], subject: { mediaType: MediaType.ociManifest, digest: subject, size: 20 } }),
  );
  await repo.putManifest(digestOf(artifact), { mediaType: MediaType.ociManifest, bytes: artifact });
  assert.deepEqual(seen.filter((s) => s.startsWith('PUT')), [`PUT /v2/x/manifests/${digestOf(artifact)}`]);
  assert.ok(!seen.some((s) => s.includes(referrersTag(subject))));
});
