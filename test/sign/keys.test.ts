/**
 * Keys in cosign's formats: what kiln generates has cosign's PEM type and JSON envelope and
 * decrypts; cosign's own test keys (test/fixtures/cosign, with their password) load and sign;
 * a wrong password and bad files are clear errors; the payload is byte-exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, scryptSync, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { generateKeyPair, keyNeedsPassword, loadPrivateKey, loadPublicKey, readPem, signBytes, verifyBytes, SIGSTORE_KEY_PEM_TYPE } from '../../src/sign/keys.js';
import { parsePayload, simpleSigningPayload, MalformedPayloadError } from '../../src/sign/payload.js';
import { repoRoot } from '../helpers.js';

const fixture = (name: string) => readFileSync(path.join(repoRoot, 'test', 'fixtures', 'cosign', name), 'utf8');

test('a generated key has cosign’s PEM type and envelope, decrypts with its password, and its .pub verifies what it signs', () => {
  const { privatePem, publicPem } = generateKeyPair('s3cret');
  assert.match(privatePem, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n$/);
  assert.match(publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
  const block = readPem(privatePem)!;
  assert.equal(block.type, SIGSTORE_KEY_PEM_TYPE);
  const env = JSON.parse(block.body.toString()) as { kdf: { name: string; params: Record<string, number>; salt: string }; cipher: { name: string; nonce: string }; ciphertext: string };
  assert.deepEqual(Object.keys(env), ['kdf', 'cipher', 'ciphertext'], 'go-securesystemslib field order');
  assert.equal(env.kdf.name, 'scrypt');
  assert.deepEqual(env.kdf.params, { N: 32768, r: 8, p: 1 });
  assert.equal(Buffer.from(env.kdf.salt, 'base64').length, 32);
  assert.equal(env.cipher.name, 'nacl/secretbox');
  assert.equal(Buffer.from(env.cipher.nonce, 'base64').length, 24);
  // decrypt by hand, as go-securesystemslib does: PKCS#8 DER of a P-256 key inside
  const k = scryptSync('s3cret', Buffer.from(env.kdf.salt, 'base64'), 32, { N: 32768, r: 8, p: 1, maxmem: 64 << 20 });
  const der = Buffer.from(xsalsa20poly1305(k, Buffer.from(env.cipher.nonce, 'base64')).decrypt(Buffer.from(env.ciphertext, 'base64')));
  const pub = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
  assert.equal(pub.export({ type: 'spki', format: 'pem' }), publicPem);

  const key = loadPrivateKey(privatePem, 's3cret', 'cosign.key');
  assert.equal(key.algorithm, 'ecdsa-p256-sha256');
  assert.equal(key.publicPem, publicPem);
  const sig = signBytes(key, Buffer.from('hello'));
  assert.equal(sig[0], 0x30, 'DER SEQUENCE');
  assert.ok(verify('sha256', Buffer.from('hello'), createPublicKey(publicPem), sig));
  assert.ok(verifyBytes(loadPublicKey(publicPem), Buffer.from('hello'), sig));
  assert.ok(!verifyBytes(loadPublicKey(publicPem), Buffer.from('hellO'), sig));
  assert.ok(keyNeedsPassword(privatePem));
});

test('a wrong password is a KilnError naming the key, never a crypto error', () => {
  const { privatePem } = generateKeyPair('right');
  assert.throws(
    () => loadPrivateKey(privatePem, 'wrong', 'cosign.key'),
    (e: unknown) => e instanceof KilnError && e.code === 'denied' && e.message === 'wrong password for cosign.key',
  );
  assert.throws(() => loadPrivateKey(privatePem, undefined, 'cosign.key'), /cosign\.key is encrypted and no password was given/);
  assert.throws(() => loadPrivateKey(fixture('sigstore-ec.key'), 'Hello', 'sigstore-ec.key'), /wrong password for sigstore-ec\.key/);
});

test('cosign’s own test keys load with their password and sign; the plain PKCS#8 and SEC1 keys need none', () => {
  for (const [file, password] of [
    ['cosign-ec.key', 'hello'],
    ['sigstore-ec.key', 'hello'],
    ['cosign-sec1-n65536.key', 'hello'],
    ['pkcs8-ec.key', undefined],
    ['sec1-ec.key', undefined],
  ] as const) {
    const pem = fixture(file);
    assert.equal(keyNeedsPassword(pem), password !== undefined, file);
    const key = loadPrivateKey(pem, password, file);
    assert.equal(key.algorithm, 'ecdsa-p256-sha256', file);
    const data = Buffer.from(`signed by ${file}`);
    assert.ok(verifyBytes(loadPublicKey(key.publicPem), data, signBytes(key, data)), file);
  }
});

test('bad key files are clear errors: no PEM, a public key, an unsupported curve, a hostile scrypt cost, garbage', () => {
  assert.throws(() => loadPrivateKey('nothing here', 'x', 'k'), /k is not a cosign private key: no PEM block/);
  assert.throws(() => loadPrivateKey(generateKeyPair('x').publicPem, 'x', 'k.pub'), /k\.pub is a public key; signing needs the private key/);
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.throws(() => loadPrivateKey(p384, undefined, 'p384.key'), (e: unknown) => e instanceof KilnError && e.code === 'unsupported' && /curve secp384r1/.test(e.message));
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.throws(() => loadPrivateKey(ed, undefined, 'ed.key'), /ed\.key is an Ed25519 key/);
  const hostile = Buffer.from(JSON.stringify({ kdf: { name: 'scrypt', params: { N: 1 << 30, r: 8, p: 1 }, salt: 'AAAA' }, cipher: { name: 'nacl/secretbox', nonce: Buffer.alloc(24).toString('base64') }, ciphertext: Buffer.alloc(40).toString('base64') }));
  const hostilePem = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${hostile.toString('base64')}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
  assert.throws(() => loadPrivateKey(hostilePem, 'x', 'h.key'), /ask for more than 256 MiB of work/);
  const garbage = `-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n${Buffer.from('not json').toString('base64')}\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n`;
  assert.throws(() => loadPrivateKey(garbage, 'x', 'g.key'), /g\.key is not a cosign private key: its body is not the JSON envelope/);
  assert.throws(() => loadPublicKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', 'x.pub'), /x\.pub: its PUBLIC KEY block is not a public key/);
  assert.throws(() => loadPublicKey(generateKeyPair('x').privatePem, 'x.key'), /x\.key is an encrypted private key; verification takes the public key/);
});

test('the payload is cosign’s bytes; parsePayload reads it back and names what is wrong with others', () => {
  const digest = `sha256:${'ab'.repeat(32)}`;
  assert.equal(
    simpleSigningPayload(digest, 'registry.local:5000/team/app').toString(),
    `{"critical":{"identity":{"docker-reference":"registry.local:5000/team/app"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
  );
  const withClaims = simpleSigningPayload(digest, 'r/app', { z: '1', a: '<&>' });
  assert.equal(withClaims.toString().slice(-46), `"optional":{"a":"\\u003c\\u0026\\u003e","z":"1"}}`);
  assert.deepEqual(parsePayload(withClaims).optional, { a: '<&>', z: '1' });
  const bad = (s: string) => () => parsePayload(Buffer.from(s));
  assert.throws(bad('[1]'), (e: unknown) => e instanceof MalformedPayloadError && e.why === 'it is not a JSON object');
  assert.throws(bad('{}'), /it has no "critical" object/);
  assert.throws(bad(JSON.stringify({ critical: { type: 'cosign container image signature', identity: { 'docker-reference': 'x' }, image: { 'docker-manifest-digest': 'sha256:1' } } })), /is not a sha256 digest/);
  assert.throws(bad(JSON.stringify({ critical: { type: 'cosign container image signature', image: { 'docker-manifest-digest': digest } } })), /docker-reference is missing/);
});

test('an RSA key (2048 to 4096 bits) signs with PKCS #1 v1.5 SHA-256, as cosign does with one; a small one is refused', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  for (const pem of [rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()]) {
    const key = loadPrivateKey(pem, undefined, 'rsa.key');
    assert.equal(key.algorithm, 'rsa-pkcs1v15-sha256');
    const data = Buffer.from('payload');
    const sig = signBytes(key, data);
    assert.equal(sig.length, 256);
    assert.ok(verify('sha256', data, rsa.publicKey, sig));
    assert.ok(verifyBytes(loadPublicKey(key.publicPem), data, sig));
  }
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.throws(() => loadPrivateKey(small, undefined, 'small.key'), /small\.key is an RSA key of 1024 bits; cosign accepts 2048 to 4096/);
});
