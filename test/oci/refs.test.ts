import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeName, normalizeTagName, parseReference, splitRepoTag } from '../../src/oci/reference.js';
import { canonicalJSON } from '../../src/oci/canonical.js';
import { digestOf, isDigest, sha256Hex, HashingStream } from '../../src/oci/digest.js';
import { KilnError } from '../../src/errors.js';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const D = 'sha256:' + 'a'.repeat(64);

test('names normalise to repo:tag, keeping registry hosts as written', () => {
  assert.equal(normalizeName('app'), 'app:latest');
  assert.equal(normalizeName('app:1'), 'app:1');
  assert.equal(normalizeName('team/app:1.0-rc_1'), 'team/app:1.0-rc_1');
  assert.equal(normalizeName('localhost:5000/app:1'), 'localhost:5000/app:1');
  assert.equal(normalizeName('localhost:5000/app'), 'localhost:5000/app:latest');
  assert.equal(normalizeName('localhost/app'), 'localhost/app:latest');
  assert.equal(normalizeName('Registry.Example.com/a/b/c:v'), 'Registry.Example.com/a/b/c:v');
  assert.equal(normalizeName('docker.io/library/alpine'), 'docker.io/library/alpine:latest');
  assert.equal(normalizeName(`app@${D}`), `app@${D}`);
  assert.equal(normalizeName(`app:1@${D}`), 'app:1');
  assert.equal(normalizeName('a__b-c---e/x.y_z'), 'a__b-c---e/x.y_z:latest');
});

test('parseReference splits domain, path, tag and digest', () => {
  assert.deepEqual(parseReference(`localhost:5000/team/app:2@${D}`), {
    domain: 'localhost:5000',
    path: 'team/app',
    repository: 'localhost:5000/team/app',
    tag: '2',
    digest: D,
  });
  assert.equal(parseReference('team/app').domain, undefined);
});

test('bad names are KilnErrors that say why', () => {
  const cases: [string, RegExp][] = [
    ['App:1', /lowercase/],
    ['team/App', /lowercase/],
    ['', /empty/],
    ['app:', /tag/],
    ['app:-x', /tag/],
    ['app@sha256:abc', /digest/],
    ['-app', /path component/],
    ['app//x', /path component/],
    ['app_:1', /path component/],
    ['host:port/app', /registry host/],
    ['a'.repeat(256), /255/],
  ];
  for (const [input, re] of cases) {
    assert.throws(() => normalizeName(input), (e: unknown) => e instanceof KilnError && re.test(e.message), input);
  }
  assert.throws(() => normalizeTagName(`app@${D}`), /digest/);
});

test('splitRepoTag for display', () => {
  assert.deepEqual(splitRepoTag('localhost:5000/app:1'), { repository: 'localhost:5000/app', tag: '1' });
  assert.deepEqual(splitRepoTag('NotAName'), { repository: 'NotAName', tag: '<none>' });
});

test('digests', async () => {
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(digestOf('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.ok(isDigest(D));
  assert.ok(!isDigest('sha256:' + 'A'.repeat(64)));
  assert.ok(!isDigest('sha256:abc'));
  const h = new HashingStream();
  const sink: Buffer[] = [];
  await pipeline(Readable.from([Buffer.from('a'), Buffer.from('bc')]), h, async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) sink.push(c);
  });
  assert.equal(h.digest(), digestOf('abc'));
  assert.equal(h.size, 3);
  assert.equal(Buffer.concat(sink).toString(), 'abc');
});

test('canonicalJSON is compact and keeps insertion order', () => {
  assert.equal(canonicalJSON({ b: 1, a: [1, { y: 2, x: undefined }] }), '{"b":1,"a":[1,{"y":2}]}');
  assert.equal(canonicalJSON({ b: 1, a: 2 }), canonicalJSON({ b: 1, a: 2 }));
  assert.throws(() => canonicalJSON({ n: NaN }), /non-finite/);
});
