/**
 * kiln sign --attestations / kiln verify --attestations on an index with BuildKit's attestation
 * manifests (made here by hand with the registry API: the busybox manifest kiln pushed, and an
 * attestation manifest for it, platform unknown/unknown, annotated
 * vnd.docker.reference.type=attestation-manifest and vnd.docker.reference.digest).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType, type Descriptor } from '../../src/oci/types.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { RemoteRepository } from '../../src/registry/types.js';
import { generateKeyPair } from '../../src/sign/keys.js';
import { signImage, verifyImage, VerificationError } from '../../src/sign/index.js';
import { signatureTag } from '../../src/sign/sign.js';
import { rootWithBusybox, runKiln, tempDir, writeTree } from '../helpers.js';
import { skipUnlessRegistry, startRegistry, type Registry } from '../registry/harness.js';

let reg: Registry | undefined;
let ws: { root: string; cleanup: () => Promise<void> } | undefined;
let keys: { dir: string; cleanup: () => Promise<void> } | undefined;
let client: RegistryClient | undefined;

before(async () => {
  if (process.env.KILN_SKIP_REGISTRY) return;
  ws = await rootWithBusybox();
  keys = await tempDir('kiln-sign-att-');
  const pair = generateKeyPair('pw');
  await fs.writeFile(path.join(keys.dir, 'k.key'), pair.privatePem, { mode: 0o600 });
  await fs.writeFile(path.join(keys.dir, 'k.pub'), pair.publicPem);
});
after(async () => {
  client?.close();
  await reg?.stop();
  await ws?.cleanup();
  await keys?.cleanup();
});

async function put(repo: RemoteRepository, mediaType: string, bytes: Buffer): Promise<Descriptor> {
  const desc = { mediaType, size: bytes.length, digest: digestOf(bytes) };
  await repo.pushBlob(desc, async function* () {
    yield bytes;
  });
  return desc;
}

/** Pushes busybox, then an index of it and one attestation manifest for it; gives the digests. */
async function attestedIndex(r: Registry, name: string): Promise<{ index: string; image: string; attestation: string }> {
  const pushed = await runKiln(['push', '-q', 'busybox:latest', `${r.host}/${name}:plain`], { root: ws!.root });
  assert.equal(pushed.code, 0, pushed.stderr);
  const repo = client!.repository(`${r.host}/${name}`);
  const image = await repo.getManifest('plain');
  const statement = Buffer.from(
    JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: `${r.host}/${name}`, digest: { sha256: image.descriptor.digest.slice(7) } }], predicateType: 'https://slsa.dev/provenance/v1', predicate: {} }),
  );
  const layer = { ...(await put(repo, 'application/vnd.in-toto+json', statement)), annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v1' } };
  const config = await put(repo, MediaType.ociConfig, Buffer.from(JSON.stringify({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const attBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] }));
  const att = await repo.putManifest(digestOf(attBytes), { mediaType: MediaType.ociManifest, bytes: attBytes });
  const platform = JSON.parse((await repo.provider().readBlob((JSON.parse(image.bytes.toString()) as { config: Descriptor }).config.digest)).toString()) as { architecture: string; os: string };
  const indexBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { ...image.descriptor, platform: { architecture: platform.architecture, os: platform.os } },
        { mediaType: MediaType.ociManifest, digest: att.digest, size: att.size, platform: { architecture: 'unknown', os: 'unknown' }, annotations: { 'vnd.docker.reference.digest': image.descriptor.digest, 'vnd.docker.reference.type': 'attestation-manifest' } },
      ],
    }),
  );
  const index = await repo.putManifest('1', { mediaType: MediaType.ociIndex, bytes: indexBytes });
  return { index: index.digest, image: image.descriptor.digest, attestation: att.digest };
}

test('sign --attestations signs the index and each attestation manifest; verify --attestations checks them all', async (t) => {
  if (skipUnlessRegistry(t)) return;
  reg ??= await startRegistry();
  client ??= new RegistryClient();
  const r = reg;
  const d = await attestedIndex(r, 'att');
  const key = path.join(keys!.dir, 'k.key');
  const pub = path.join(keys!.dir, 'k.pub');

  // without --attestations only the index is signed, and verify --attestations says what is missing
  const plain = await signImage({ root: ws!.root, ref: `${r.host}/att:1`, key, password: 'pw', client });
  assert.deepEqual(plain.signed.map((s) => [s.kind, s.digest]), [['image', d.index]]);
  await verifyImage({ root: ws!.root, ref: `${r.host}/att:1`, publicKey: pub, client });
  await assert.rejects(
    () => verifyImage({ root: ws!.root, ref: `${r.host}/att:1`, publicKey: pub, attestations: true, client }),
    (e: unknown) => e instanceof VerificationError && e.reason === 'missing' && new RegExp(`the attestation manifest ${d.attestation} of .* is not signed`).test(e.message),
  );

  const all = await signImage({ root: ws!.root, ref: `${r.host}/att:1`, key, password: 'pw', attestations: true, client });
  assert.deepEqual(
    all.signed.map((s) => [s.kind, s.digest, s.describes]),
    [
      ['image', d.index, undefined],
      ['attestation', d.attestation, d.image],
    ],
  );
  const repo = client.repository(`${r.host}/att`);
  assert.ok(await repo.headManifest(signatureTag(d.attestation)));
  const v = await verifyImage({ root: ws!.root, ref: `${r.host}/att:1`, publicKey: pub, attestations: true, client });
  // the index carries two signatures now (signed twice), the attestation manifest one
  assert.deepEqual(v.verified.map((s) => [s.kind, s.digest]), [
    ['image', d.index],
    ['image', d.index],
    ['attestation', d.attestation],
  ]);
  assert.equal(v.verified[2].payload.critical.identity['docker-reference'], `${r.host}/att`);

  // an image without attestations: sign warns, verify --attestations fails
  const single = await signImage({ root: ws!.root, ref: `${r.host}/att:plain`, key, password: 'pw', attestations: true, client });
  assert.match(single.warnings.join('\n'), /has no attestation manifests: only the image was signed/);
  await assert.rejects(
    () => verifyImage({ root: ws!.root, ref: `${r.host}/att:plain`, publicKey: pub, attestations: true, client }),
    (e: unknown) => e instanceof VerificationError && e.reason === 'missing' && /has no attestation manifests to verify/.test(e.message),
  );
});

test('an image kiln built with --provenance and pushed: sign --attestations and verify --attestations through the CLI', async (t) => {
  if (skipUnlessRegistry(t)) return;
  reg ??= await startRegistry();
  client ??= new RegistryClient();
  const r = reg;
  const ctx = await tempDir('kiln-sign-ctx-');
  t.after(ctx.cleanup);
  await writeTree(ctx.dir, { Dockerfile: 'FROM busybox:latest\nCOPY hello /hello\n', hello: 'hello\n' });
  const built = await runKiln(['build', '--provenance=mode=min', '-t', 'attested:1', ctx.dir], { root: ws!.root });
  assert.equal(built.code, 0, built.stderr);
  const pushed = await runKiln(['push', '-q', 'attested:1', `${r.host}/built:1`], { root: ws!.root });
  assert.equal(pushed.code, 0, pushed.stderr);
  const env = { KILN_PASSWORD: 'pw' };
  const key = path.join(keys!.dir, 'k.key');
  const pub = path.join(keys!.dir, 'k.pub');
  const signed = await runKiln(['sign', '--key', key, '--attestations', `${r.host}/built:1`], { root: ws!.root, env });
  assert.equal(signed.code, 0, signed.stderr);
  assert.equal(signed.stdout.trim().split('\n').length, 2, 'the index and its attestation manifest');
  assert.match(signed.stderr, /Signed attestation manifest \(of sha256:[a-f0-9]{64}\) sha256:[a-f0-9]{64}/);
  const verified = await runKiln(['verify', '--key', pub, '--attestations', `${r.host}/built:1`], { root: ws!.root });
  assert.equal(verified.code, 0, verified.stderr);
  assert.equal((JSON.parse(verified.stdout) as unknown[]).length, 2);
});
