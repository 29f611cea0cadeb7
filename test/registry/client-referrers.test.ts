/** OCI 1.1 referrers against distribution 2.8, which has no referrers API: the sha256-<hex> tag index fallback. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
