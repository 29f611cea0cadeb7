/** The in-toto statement rules, BuildKit's image package URLs, and buildx's attestation flags. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imagePurl, imageSubjects, makeStatement, statementProblems } from '../../src/attest/intoto.js';
import { parseAttestationFlags } from '../../src/attest/options.js';
import { invocationId, provenancePredicate, defaultBuilderId } from '../../src/attest/provenance.js';
import { KilnError } from '../../src/errors.js';

const D = 'sha256:' + 'a'.repeat(64);

test('image package URLs as BuildKit writes them (familiar name, tag or digest, encoded platform)', () => {
  assert.equal(imagePurl('busybox', { os: 'linux', architecture: 'amd64' }), 'pkg:docker/busybox@latest?platform=linux%2Famd64');
  assert.equal(imagePurl('docker.io/library/alpine:3.17', { os: 'linux', architecture: 'arm', variant: 'v7' }), 'pkg:docker/alpine@3.17?platform=linux%2Farm%2Fv7');
  assert.equal(imagePurl('team/app:1'), 'pkg:docker/team/app@1');
  assert.equal(imagePurl('localhost:5000/a/b:v2', { os: 'linux', architecture: 'arm64' }), 'pkg:docker/localhost:5000/a/b@v2?platform=linux%2Farm64');
  assert.equal(imagePurl(`busybox@${D}`), `pkg:docker/busybox?digest=sha256%3A${'a'.repeat(64)}`);
  assert.equal(imagePurl(`busybox:1@${D}`), `pkg:docker/busybox@1?digest=sha256%3A${'a'.repeat(64)}`);
});

test('subjects: one per name with the manifest digest, "_" for an unnamed build', () => {
  const p = { os: 'linux', architecture: 'amd64' };
  assert.deepEqual(imageSubjects([], p, D), [{ name: '_', digest: { sha256: 'a'.repeat(64) } }]);
  assert.deepEqual(imageSubjects(['x', 'x:latest', 'y:2'], p, D).map((s) => s.name), ['pkg:docker/x@latest?platform=linux%2Famd64', 'pkg:docker/y@2?platform=linux%2Famd64']);
});

test('statementProblems follows the statement layer: _type, subjects with digests, unique names, a URI predicate type', () => {
  const ok = makeStatement([{ name: 'a', digest: { sha256: 'ab' } }], 'https://slsa.dev/provenance/v1', {});
  assert.deepEqual(statementProblems(ok), []);
  assert.deepEqual(Object.keys(ok), ['_type', 'predicateType', 'subject', 'predicate']);
  assert.notDeepEqual(statementProblems({ ...ok, _type: 'https://in-toto.io/Statement/v0.1' }), []);
  assert.notDeepEqual(statementProblems({ ...ok, subject: [] }), []);
  assert.notDeepEqual(statementProblems({ ...ok, subject: [{ name: 'a', digest: {} }] }), []);
  assert.notDeepEqual(statementProblems({ ...ok, subject: [{ name: 'a', digest: { sha256: 'zz' } }] }), []);
  assert.notDeepEqual(statementProblems({ ...ok, subject: [ok.subject[0], ok.subject[0]] }), []);
  assert.notDeepEqual(statementProblems({ ...ok, predicateType: 'not a uri' }), []);
  assert.notDeepEqual(statementProblems({ ...ok, predicate: [] }), []);
  assert.notDeepEqual(statementProblems('text'), []);
});

test('--sbom, --provenance and --attest as buildx reads them', () => {
  assert.deepEqual(parseAttestationFlags({}), {});
  assert.deepEqual(parseAttestationFlags({ sbom: true }), { sbom: true });
  assert.deepEqual(parseAttestationFlags({ sbom: 'false' }), { sbom: false });
  assert.deepEqual(parseAttestationFlags({ provenance: true }), { provenance: { mode: 'min' } });
  assert.deepEqual(parseAttestationFlags({ provenance: 'mode=max,builder-id=https://ci.example/run/1' }), { provenance: { mode: 'max', builderId: 'https://ci.example/run/1' } });
  assert.deepEqual(parseAttestationFlags({ provenance: 'false' }), {});
  assert.deepEqual(parseAttestationFlags({ attest: ['type=sbom', 'type=provenance,mode=max'] }), { sbom: true, provenance: { mode: 'max' } });
  // the flags after --attest, and the last word on a type wins
  assert.deepEqual(parseAttestationFlags({ attest: ['type=provenance,mode=max'], provenance: 'false' }), {});
  assert.deepEqual(parseAttestationFlags({ attest: ['type=provenance,mode=max', 'type=provenance,disabled=true'] }), {});
  for (const bad of [{ sbom: '.' }, { provenance: 'maybe' }, { provenance: 'mode=all' }, { attest: ['mode=max'] }, { attest: ['type=vex'] }, { attest: ['type=sbom,generator=img'] }, { provenance: 'version=v0.2' }, { provenance: 'disabled=perhaps' }]) {
    assert.throws(() => parseAttestationFlags(bad), (e: unknown) => e instanceof KilnError && /--(sbom|provenance|attest)/.test(e.message), JSON.stringify(bad));
  }
});

test('provenance: min has no build-arg values or secrets; max never holds a secret value; the remote loses its credentials', () => {
  const input = {
    dockerfilePath: 'Dockerfile',
    dockerfileDigest: D,
    platforms: [{ os: 'linux', architecture: 'amd64' }],
    builderPlatform: { os: 'linux', architecture: 'amd64' },
    buildArgs: { FOO: 'bar' },
    labels: { l: 'v' },
    secrets: [{ id: 'tok', optional: true }, { id: 'tok', optional: false }, { id: 'a', optional: true }],
    ssh: [{ id: 'default', optional: true }],
    namedContexts: ['other'],
    bases: [{ ref: 'busybox', platform: { os: 'linux', architecture: 'amd64' }, digest: D }, { ref: 'busybox', platform: { os: 'linux', architecture: 'amd64' }, digest: D }],
    vcs: { revision: 'c'.repeat(40), source: 'https://u:p@example.invalid/r.git' },
    invocationId: invocationId(),
    startedOn: '2024-01-01T00:00:00Z',
    finishedOn: '2024-01-01T00:00:01Z',
    builderId: '',
  };
  const min = JSON.stringify(provenancePredicate({ ...input, mode: 'min' }));
  assert.ok(!min.includes('bar') && !min.includes('"secrets"') && !min.includes('u:p@'), min);
  const max = provenancePredicate({ ...input, mode: 'max' }) as { buildDefinition: { externalParameters: { request: Record<string, unknown> }; resolvedDependencies: unknown[] } };
  assert.deepEqual(max.buildDefinition.externalParameters.request.args, { 'build-arg:FOO': 'bar', 'context:other': '', 'label:l': 'v', platform: 'linux/amd64' });
  assert.deepEqual(max.buildDefinition.externalParameters.request.secrets, [{ id: 'a', optional: true }, { id: 'tok', optional: false }]);
  assert.deepEqual(max.buildDefinition.externalParameters.request.ssh, [{ id: 'default', optional: true }]);
  assert.equal(max.buildDefinition.resolvedDependencies.length, 2, 'the base once, and the context');
  assert.ok(!JSON.stringify(max).includes('u:p@'));
  assert.equal(invocationId('seed'), invocationId('seed'));
  assert.notEqual(invocationId(), invocationId());
});

test('the builder id of a GitHub Actions run, as buildx derives it; else empty, as BuildKit', () => {
  assert.equal(defaultBuilderId({}), '');
  assert.equal(defaultBuilderId({ GITHUB_ACTIONS: 'true', GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'o/r', GITHUB_RUN_ID: '7', GITHUB_RUN_ATTEMPT: '2' }), 'https://github.com/o/r/actions/runs/7/attempts/2');
});
