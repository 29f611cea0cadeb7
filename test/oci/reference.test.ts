/** The one reference model (src/oci/reference.ts): as written, canonical and familiar names. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalName,
  displayName,
  familiarName,
  familiarRepository,
  parseCanonicalReference,
  parseReference,
  tryParseReference,
} from '../../src/oci/reference.js';
import { parseImageReference } from '../../src/dockerfile/checks/words.js';
import { KilnError } from '../../src/errors.js';

const D = 'sha256:' + 'c'.repeat(64);

test('canonical names make Docker Hub explicit', () => {
  assert.equal(canonicalName('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(canonicalName('busybox:1.36'), 'docker.io/library/busybox:1.36');
  assert.equal(canonicalName('team/app'), 'docker.io/team/app:latest');
  assert.equal(canonicalName('docker.io/busybox'), 'docker.io/library/busybox:latest');
  assert.equal(canonicalName('index.docker.io/library/busybox:1'), 'docker.io/library/busybox:1');
  assert.equal(canonicalName('localhost:5000/team/app'), 'localhost:5000/team/app:latest');
  assert.equal(canonicalName('localhost/app:2'), 'localhost/app:2');
  assert.equal(canonicalName('registry.example.com/app'), 'registry.example.com/app:latest');
  assert.equal(canonicalName(`busybox@${D}`), `docker.io/library/busybox@${D}`);
  assert.equal(canonicalName(`busybox:1@${D}`), `docker.io/library/busybox:1@${D}`);
  assert.deepEqual(parseCanonicalReference('localhost:5000/ns/repo:tag'), {
    domain: 'localhost:5000',
    path: 'ns/repo',
    repository: 'localhost:5000/ns/repo',
    tag: 'tag',
    digest: undefined,
  });
  assert.deepEqual(parseCanonicalReference('busybox'), {
    domain: 'docker.io',
    path: 'library/busybox',
    repository: 'docker.io/library/busybox',
    tag: undefined,
    digest: undefined,
  });
});

test('familiar names leave Docker Hub implicit', () => {
  assert.equal(familiarName('docker.io/library/busybox:latest'), 'busybox:latest');
  assert.equal(familiarRepository('docker.io/library/busybox:latest'), 'busybox');
  assert.equal(familiarName('docker.io/team/app:1'), 'team/app:1');
  assert.equal(familiarName('index.docker.io/library/busybox'), 'busybox');
  assert.equal(familiarName(`docker.io/library/busybox:1@${D}`), `busybox:1@${D}`);
  // docker keeps library/ when more components follow
  assert.equal(familiarName('docker.io/library/a/b:1'), 'library/a/b:1');
  // other registries, and names already familiar, as written
  assert.equal(familiarName('localhost:5000/app:1'), 'localhost:5000/app:1');
  assert.equal(familiarName('quay.io/team/app'), 'quay.io/team/app');
  assert.equal(familiarName('app:1'), 'app:1');
  assert.equal(familiarName('Not A Name'), 'Not A Name');
  for (const n of ['busybox', 'team/app:1', `busybox:1@${D}`, 'localhost:5000/ns/repo:tag']) {
    assert.equal(canonicalName(familiarName(canonicalName(n))), canonicalName(n), n);
  }
});

test('references split host:port, path, tag and digest', () => {
  assert.deepEqual(parseReference(`host.example:5000/ns/repo:tag@${D}`), {
    domain: 'host.example:5000',
    path: 'ns/repo',
    repository: 'host.example:5000/ns/repo',
    tag: 'tag',
    digest: D,
  });
  assert.deepEqual(parseReference(`name@${D}`), { domain: undefined, path: 'name', repository: 'name', tag: undefined, digest: D });
  assert.equal(parseReference('[::1]:5000/app').domain, '[::1]:5000');
  assert.equal(displayName('app'), 'app:latest');
  assert.equal(displayName(`app@${D}`), `app@${D}`);
  assert.equal(displayName('sha256:abc'), 'sha256:abc');
});

test('bad references name the wrong part', () => {
  const cases: [string, string][] = [
    ['', 'the name is empty'],
    [':tag', 'the repository name is empty'],
    ['app:-x', `tag "-x" must be 1-128 characters of letters, digits, '_', '.', '-' and not start with '.' or '-'`],
    ['app@sha256:abc', '"sha256:abc" is not a digest'],
    [`app@sha256:${'A'.repeat(64)}`, 'a sha256 digest has exactly 64 lowercase hex digits'],
    ['team/App', 'repository names must be lowercase'],
    ['app_/x', `path component "app_" must be lowercase letters and digits, separated by '.', '_', '__' or '-'`],
    ['-bad.host/app', '"-bad.host" is not a valid registry host[:port]'],
    ['a'.repeat(256), 'the repository name is longer than 255 characters'],
  ];
  for (const [input, problem] of cases) {
    assert.deepEqual(tryParseReference(input), { problem }, input);
    assert.throws(
      () => parseReference(input),
      (e: unknown) => e instanceof KilnError && e.message === `invalid image name ${JSON.stringify(input)}: ${problem}` && !!e.hint,
      input,
    );
  }
  // a bare 64-hex string is an image ID, never a canonical name (docker's ParseNormalizedNamed)
  assert.throws(() => canonicalName('f'.repeat(64)), /image ID, not a repository name/);
  assert.equal(parseReference('f'.repeat(64)).repository, 'f'.repeat(64));
});

test('the checks read references with the same model', () => {
  assert.equal(parseImageReference('busybox:1')?.tag, '1');
  assert.equal(parseImageReference(`busybox@${D}`)?.digest, D);
  assert.equal(parseImageReference('Busybox'), undefined);
  assert.equal(parseImageReference('f'.repeat(64)), undefined);
  assert.equal(parseImageReference(''), undefined);
});
