/**
 * The gate's push (src/gate/push.ts) against a real docker-registry: the signature names the
 * digest the registry holds (not the local one: the store keeps layers uncompressed), tags come
 * last, and a failure before them leaves no tag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pushSigned } from '../../src/gate/push.js';
import { writeImage } from '../../src/oci/image.js';
import { writeLayer } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import { registryClient } from '../../src/registry/settings.js';
import { generateKeyPair, loadPrivateKey, loadPublicKey } from '../../src/sign/keys.js';
import { verifyImage } from '../../src/sign/index.js';
import { skipUnlessRegistry, startRegistry } from '../registry/harness.js';
import { registryTags } from '../registry/push-fixtures.js';
import { tempDir } from '../oci/util.js';

async function plainImage(store: ContentStore, seed: string) {
  const layer = await writeLayer(store, [{ path: 'hello.txt', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: Buffer.from(`${seed}\n`) }], { compression: 'none' });
  return writeImage(store, { config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.diffId] } }, layers: [layer.descriptor] }, []);
}

test('pushSigned: blobs and manifest by digest, the signature of the pushed digest, the tag last; a failure before the tag leaves none', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const root = tempDir(t, 'kiln-gate-push-');
  const store = await ContentStore.open(root);
  const client = registryClient({ root });
  const pair = generateKeyPair('gate-test');
  const key = loadPrivateKey(pair.privatePem, 'gate-test');

  const { manifestDescriptor } = await plainImage(store, 'signed');
  const ref = `${reg.host}/gate/app:1`;
  const result = await pushSigned({ store, client, image: manifestDescriptor, names: [ref], key });
  // the local manifest names the plain layer; the registry holds the gzip form, and that is what is signed
  assert.notEqual(result.descriptor.digest, manifestDescriptor.digest);
  assert.deepEqual(result.references, [`${ref}@${result.descriptor.digest}`]);
  const head = await client.repository(ref).headManifest('1');
  assert.equal(head?.digest, result.descriptor.digest);
  assert.equal(result.signatures.length, 1);
  assert.equal(result.signatures[0].subject, result.descriptor.digest);
  const verified = await verifyImage({ root, ref, publicKey: loadPublicKey(pair.publicPem), client });
  assert.equal(verified.digest, result.descriptor.digest);

  // stopped after the blobs and manifest went up: no tag, no signature
  const other = await plainImage(store, 'stopped after push');
  const ref2 = `${reg.host}/gate/stopped:1`;
  await assert.rejects(
    pushSigned({ store, client, image: other.manifestDescriptor, names: [ref2], key, step: (s) => { if (s === 'pushed') throw new Error('stop'); } }),
    /stop/,
  );
  assert.deepEqual(await registryTags(reg.url, 'gate/stopped'), []);
  // stopped after signing: the signature tag is there, the image tag is not
  await assert.rejects(
    pushSigned({ store, client, image: other.manifestDescriptor, names: [ref2], key, step: (s) => { if (s === 'signed') throw new Error('stop'); } }),
    /stop/,
  );
  // (and the referrers tag sha256-<hex> the registry needs without the OCI 1.1 API)
  const tags = await registryTags(reg.url, 'gate/stopped');
  assert.ok(!tags.includes('1'), tags.join(' '));
  assert.ok(tags.some((tag) => /^sha256-[a-f0-9]{64}\.sig$/.test(tag)), tags.join(' '));
  assert.ok(tags.every((tag) => /^sha256-[a-f0-9]{64}(?:\.sig)?$/.test(tag)), tags.join(' '));
});
