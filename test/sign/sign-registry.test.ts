/**
 * Signing and verification against a real docker-registry, with busybox pushed by kiln: the
 * signature image cosign's tag scheme names, its documents, the OCI 1.1 referrer, appending a
 * second signature, and every reason verification gives when it fails. The stored payload and
 * signature are checked with openssl as well.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { generateKeyPair, loadPrivateKey, signBytes } from '../../src/sign/keys.js';
import { SIMPLE_SIGNING_MEDIA_TYPE } from '../../src/sign/payload.js';
import { signImage, verifyImage, VerificationError, type VerifyFailure } from '../../src/sign/index.js';
import { pushSignature, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, signatureArtifact, signatureConfig, signatureManifest, signatureTag } from '../../src/sign/sign.js';
import { haveTool, rootWithBusybox, runCommand, runKiln, tempDir } from '../helpers.js';
import { skipUnlessRegistry, startRegistry, type Registry } from '../registry/harness.js';
import { makeImage } from '../registry/push-fixtures.js';

let reg: Registry | undefined;
let ws: { root: string; cleanup: () => Promise<void> } | undefined;
let keys: { dir: string; cleanup: () => Promise<void> } | undefined;
let client: RegistryClient | undefined;
const PASSWORD = 'correct horse battery staple';

before(async () => {
  if (process.env.KILN_SKIP_REGISTRY) return;
  ws = await rootWithBusybox();
  await makeImage(ws.root, 'other:1', [Buffer.from('another image\n')]);
  keys = await tempDir('kiln-sign-keys-');
  for (const name of ['a', 'b']) {
    const pair = generateKeyPair(PASSWORD);
    await fs.writeFile(path.join(keys.dir, `${name}.key`), pair.privatePem, { mode: 0o600 });
    await fs.writeFile(path.join(keys.dir, `${name}.pub`), pair.publicPem);
  }
});
after(async () => {
  client?.close();
  await reg?.stop();
  await ws?.cleanup();
  await keys?.cleanup();
});

async function registry(): Promise<Registry> {
  reg ??= await startRegistry();
  client ??= new RegistryClient();
  return reg;
}

const keyFile = (name: string) => path.join(keys!.dir, name);

/** Pushes a stored image to the registry with kiln push; gives the pushed digest. */
async function push(source: string, ref: string): Promise<string> {
  const r = await runKiln(['push', '-q', source, ref], { root: ws!.root });
  assert.equal(r.code, 0, r.stderr);
  const m = /@(sha256:[a-f0-9]{64})$/m.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1];
}

async function sign(ref: string, key = 'a.key', extra: { annotations?: Record<string, string> } = {}) {
  return signImage({ root: ws!.root, ref, key: keyFile(key), password: PASSWORD, client, ...extra });
}

async function expectFailure(ref: string, pub: string, reason: VerifyFailure, message: RegExp): Promise<void> {
  await assert.rejects(
    () => verifyImage({ root: ws!.root, ref, publicKey: keyFile(pub), client }),
    (e: unknown) => {
      assert.ok(e instanceof VerificationError, String(e));
      assert.equal(e.reason, reason, e.message);
      assert.match(e.message, message);
      return true;
    },
  );
}

test('sign then verify: the .sig tag holds cosign’s signature image, a referrer names the image, openssl agrees', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const digest = await push('busybox:latest', `${r.host}/bb:1`);
  const signed = await sign(`${r.host}/bb:1`, 'a.key', { annotations: { team: 'kiln', 'a<b': 'x&y' } });
  assert.equal(signed.digest, digest);
  assert.equal(signed.signed.length, 1);
  assert.deepEqual(signed.warnings, []);
  assert.equal(signed.signed[0].pushed.tag, `sha256-${digest.slice(7)}.sig`);

  const repo = client!.repository(`${r.host}/bb`);
  const sig = await repo.getManifest(signatureTag(digest));
  const manifest = JSON.parse(sig.bytes.toString()) as { mediaType: string; config: { mediaType: string; digest: string }; layers: Array<{ mediaType: string; digest: string; size: number; annotations: Record<string, string> }> };
  assert.equal(manifest.mediaType, MediaType.ociManifest);
  assert.equal(manifest.config.mediaType, MediaType.ociConfig);
  assert.equal(manifest.layers.length, 1);
  assert.equal(manifest.layers[0].mediaType, SIMPLE_SIGNING_MEDIA_TYPE);
  assert.deepEqual(Object.keys(manifest), ['schemaVersion', 'mediaType', 'config', 'layers'], "go-containerregistry's field order");
  const payload = await repo.provider().readBlob(manifest.layers[0].digest);
  assert.equal(
    payload.toString(),
    `{"critical":{"identity":{"docker-reference":"${r.host}/bb"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":{"a\\u003cb":"x\\u0026y","team":"kiln"}}`,
  );
  const config = await repo.provider().readBlob(manifest.config.digest);
  assert.equal(
    config.toString(),
    `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["${manifest.layers[0].digest}"]},"config":{}}`,
  );

  // the OCI 1.1 referrer (through the referrers tag schema on distribution 2.8)
  const referrers = await repo.referrers(digest);
  const referrer = referrers.find((d) => (d as { artifactType?: string }).artifactType === SIGNATURE_ARTIFACT_TYPE);
  assert.ok(referrer, JSON.stringify(referrers));
  assert.equal(referrer.digest, signed.signed[0].pushed.referrer?.digest);
  const refDoc = JSON.parse((await repo.getManifest(referrer.digest)).bytes.toString()) as { subject: { digest: string }; artifactType: string; layers: Array<{ digest: string }> };
  assert.equal(refDoc.subject.digest, digest);
  assert.equal(refDoc.artifactType, SIGNATURE_ARTIFACT_TYPE);
  assert.equal(refDoc.layers[0].digest, manifest.layers[0].digest);

  const verified = await verifyImage({ root: ws!.root, ref: `docker://${r.host}/bb:1`, publicKey: keyFile('a.pub'), client });
  assert.equal(verified.digest, digest);
  assert.equal(verified.verified.length, 1);
  assert.deepEqual(verified.verified[0].payload.optional, { 'a<b': 'x&y', team: 'kiln' });

  if (haveTool('openssl')) {
    const dir = await tempDir('kiln-sign-openssl-');
    t.after(dir.cleanup);
    await fs.writeFile(path.join(dir.dir, 'payload'), payload);
    await fs.writeFile(path.join(dir.dir, 'sig.der'), Buffer.from(manifest.layers[0].annotations[SIGNATURE_ANNOTATION], 'base64'));
    const ok = await runCommand('openssl', ['dgst', '-sha256', '-verify', keyFile('a.pub'), '-signature', 'sig.der', 'payload'], { cwd: dir.dir });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Verified OK/);
    const wrong = await runCommand('openssl', ['dgst', '-sha256', '-verify', keyFile('b.pub'), '-signature', 'sig.der', 'payload'], { cwd: dir.dir });
    assert.notEqual(wrong.code, 0, 'openssl refuses the other key');
  }
});

test('a second signature is appended to the signature image; each key verifies; the same one is not added twice', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const digest = await push('busybox:latest', `${r.host}/twice:1`);
  await sign(`${r.host}/twice:1`, 'a.key');
  const second = await sign(`${r.host}/twice:1`, 'b.key');
  assert.equal(second.signed[0].pushed.signatures, 2);
  const repo = client!.repository(`${r.host}/twice`);
  const manifest = JSON.parse((await repo.getManifest(signatureTag(digest))).bytes.toString()) as { layers: unknown[]; config: { digest: string } };
  assert.equal(manifest.layers.length, 2);
  const config = JSON.parse((await repo.provider().readBlob(manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] }; history: unknown[] };
  assert.equal(config.rootfs.diff_ids.length, 2);
  assert.equal(config.history.length, 2);
  for (const pub of ['a.pub', 'b.pub']) {
    const v = await verifyImage({ root: ws!.root, ref: `${r.host}/twice:1`, publicKey: keyFile(pub), client });
    assert.equal(v.verified.length, 1, pub);
  }
  // ECDSA signatures are randomised: push the very same artifact again to see the dedupe
  const key = loadPrivateKey(await fs.readFile(keyFile('a.key'), 'utf8'), PASSWORD);
  const art = signatureArtifact(digest, `${r.host}/twice`, key);
  assert.equal((await pushSignature(repo, art)).signatures, 3);
  const again = await pushSignature(repo, art);
  assert.equal(again.added, false);
  assert.equal(again.signatures, 3);
});

test('verification fails with its reason: missing signature, wrong key, moved tag, another image’s signature, malformed payload', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const repo = client!.repository(`${r.host}/fail`);

  // missing: nothing signed in this repository yet
  const bb = await push('busybox:latest', `${r.host}/fail:1`);
  await expectFailure(`${r.host}/fail:1`, 'a.pub', 'missing', /is not signed: .* has no signature tag sha256-[a-f0-9]{64}\.sig/);

  // wrong key
  await sign(`${r.host}/fail:1`, 'a.key');
  await verifyImage({ root: ws!.root, ref: `${r.host}/fail:1`, publicKey: keyFile('a.pub'), client });
  await expectFailure(`${r.host}/fail:1`, 'b.pub', 'wrong-key', /is signed, but not with .*b\.pub: its signature does not verify with that key/);

  // changed manifest: the tag now names another image
  const other = await push('other:1', `${r.host}/fail:1`);
  assert.notEqual(other, bb);
  await expectFailure(`${r.host}/fail:1`, 'a.pub', 'changed', new RegExp(`fail:1 now points to ${other}, which no signature names.*the image changed after it was signed, or the tag was moved`));
  // the signed digest still verifies by digest
  await verifyImage({ root: ws!.root, ref: `${r.host}/fail@${bb}`, publicKey: keyFile('a.pub'), client });

  // another image's signature copied under this image's .sig tag
  const busyboxSig = await repo.getManifest(signatureTag(bb));
  await repo.putManifest(signatureTag(other), { mediaType: MediaType.ociManifest, bytes: busyboxSig.bytes });
  await expectFailure(`${r.host}/fail:1`, 'a.pub', 'other-image', new RegExp(`is for another image.*names ${bb}`));

  // a signature for the same digest in another repository
  const elsewhere = signatureArtifact(other, `${r.host}/somewhere-else`, loadPrivateKey(await fs.readFile(keyFile('a.key'), 'utf8'), PASSWORD));
  await pushSignature(repo, elsewhere);
  await expectFailure(`${r.host}/fail:1`, 'a.pub', 'other-image', /names the repository .*somewhere-else/);

  // malformed payloads, each signed with the right key (so only the payload is wrong)
  const key = loadPrivateKey(await fs.readFile(keyFile('a.key'), 'utf8'), PASSWORD);
  const cases: Array<[string, RegExp]> = [
    ['this is not json', /it is not JSON/],
    [JSON.stringify({ critical: { identity: { 'docker-reference': `${r.host}/fail` }, image: { 'docker-manifest-digest': other }, type: 'atomic container signature' }, optional: null }), /critical\.type is "atomic container signature"/],
    [JSON.stringify({ critical: { identity: { 'docker-reference': `${r.host}/fail` }, type: 'cosign container image signature' }, optional: null }), /docker-manifest-digest is missing/],
  ];
  for (const [text, why] of cases) {
    const payload = Buffer.from(text);
    const layer = { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, size: payload.length, digest: digestOf(payload), annotations: { [SIGNATURE_ANNOTATION]: signBytes(key, payload).toString('base64') } };
    const config = signatureConfig([layer]);
    const configDesc = { mediaType: MediaType.ociConfig, size: config.length, digest: digestOf(config) };
    for (const [d, b] of [[layer, payload], [configDesc, config]] as const) await repo.pushBlob(d, async function* () { yield b; });
    await repo.putManifest(signatureTag(other), { mediaType: MediaType.ociManifest, bytes: signatureManifest(configDesc, [layer]) });
    await expectFailure(`${r.host}/fail:1`, 'a.pub', 'malformed', why);
  }
});

test('signImage refuses a name without a registry, and an image the registry does not have', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  await assert.rejects(() => sign('busybox:latest'), /names no registry: signatures live in a registry/);
  await assert.rejects(() => sign(`${r.host}/nothing:here`), /has no image here/);
});
