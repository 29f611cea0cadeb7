/**
 * Ports of BuildKit's provenance tests (frontend/dockerfile/dockerfile_provenance_test.go; see
 * test/buildkit/README.md): assertion cases on kiln alone (docker 20.10 makes no attestations).
 * BuildKit pushes and reads the image back from the registry; these read kiln's store, which a
 * push sends byte for byte (test/attest/transfer.test.ts). Adaptations: kiln's build type is its
 * own URI, the steps are kiln's (`internalParameters.buildConfig.steps`, not an LLB definition)
 * and its extension fields are `kiln_*`; `--provenance=true` (the Go test's empty mode) is
 * buildx's min, where BuildKit's frontend default is max; SLSA v0.2 is not written (refused).
 */
import assert from 'node:assert/strict';
import { ContentStore } from '../../src/oci/store.js';
import { formatPlatform, hostPlatform } from '../../src/oci/platform.js';
import type { ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { statementProblems, type Statement } from '../../src/attest/intoto.js';
import { KILN_BUILD_TYPE } from '../../src/attest/provenance.js';
import { ensureEmulation, multiPlatformBusybox, runKiln } from '../helpers.js';
import { port, useHarness } from './harness.js';

const h = useHarness();
const host = formatPlatform(hostPlatform());

type Pred = {
  buildDefinition: {
    buildType: string;
    externalParameters: { configSource: { uri?: string; path: string }; request: { frontend: string; args: Record<string, string>; secrets?: Array<{ id: string; optional: boolean }>; ssh?: Array<{ id: string; optional: boolean }>; locals: Array<{ name: string }> } };
    internalParameters: { builderPlatform: string; buildConfig?: { steps: unknown[] } };
    resolvedDependencies: Array<{ uri?: string; digest: Record<string, string> }>;
  };
  runDetails: { builder: { id: string }; metadata: { invocationId: string; startedOn: string; finishedOn: string; kiln_reproducible: boolean; kiln_completeness: { request: boolean; resolvedDependencies: boolean }; kiln_metadata: { layers?: Array<{ digest: string }>; source?: { infos: Array<{ filename: string; data?: string }> } } } };
};

/** The index `tag` names: its images by platform and, for each, the statements of its attestation manifest (testutil.ReadImages). */
async function readImages(tag: string) {
  const store = await ContentStore.open(h.root);
  const top = await store.resolve(tag);
  assert.ok(top, `${tag} is in the store`);
  const index = await store.readJSON<ImageIndex>(top.digest);
  const find = (p: string) => index.manifests.find((m) => m.platform && formatPlatform(m.platform) === p);
  const attestation = async (p: string) => {
    const img = find(p);
    const att = index.manifests.find((m) => m.annotations?.['vnd.docker.reference.digest'] === img?.digest);
    assert.ok(att, `an attestation manifest for ${p}`);
    const m = await store.readJSON<ImageManifest>(att.digest);
    return { desc: att, statements: await Promise.all(m.layers.map(async (l) => JSON.parse((await store.readBlob(l.digest)).toString()) as Statement)) };
  };
  return { index, find, attestation, store };
}

port('testProvenanceAttestation', async () => {
  const dockerfile = '\nFROM busybox:latest\nRUN echo "ok" > /foo\n';
  for (const mode of ['', 'min', 'max']) {
    const flag = mode === '' ? '--provenance=true' : `--provenance=mode=${mode}`;
    const built = await h.kilnBuild({ dockerfile, buildArgs: { FOO: 'bar' }, kilnArgs: [flag, '--label', 'lbl=abc'] });
    assert.equal(built.code, 0, built.stderr);
    const imgs = await readImages(built.tag);
    assert.equal(imgs.index.manifests.length, 2);
    const img = imgs.find(host);
    assert.ok(img);
    const ran = await h.run(built.tag, ['cat', '/foo']);
    assert.equal(ran.stdout, 'ok\n');
    const att = imgs.find('unknown/unknown');
    assert.ok(att);
    assert.equal(att.annotations?.['vnd.docker.reference.digest'], img.digest);
    assert.equal(att.annotations?.['vnd.docker.reference.type'], 'attestation-manifest');
    const [stmt] = (await imgs.attestation(host)).statements;
    assert.deepEqual(statementProblems(stmt), []);
    assert.equal(stmt._type, 'https://in-toto.io/Statement/v1');
    assert.equal(stmt.predicateType, 'https://slsa.dev/provenance/v1');
    const pred = stmt.predicate as unknown as Pred;
    assert.equal(pred.buildDefinition.buildType, KILN_BUILD_TYPE);
    assert.equal(pred.runDetails.builder.id, '');
    assert.equal(pred.buildDefinition.externalParameters.configSource.uri, undefined);
    assert.equal(pred.buildDefinition.externalParameters.request.frontend, 'dockerfile.v0');
    const args = pred.buildDefinition.externalParameters.request.args;
    if (mode === 'max') {
      assert.equal(Object.keys(args).length, 2, JSON.stringify(args));
      assert.ok(pred.runDetails.metadata.kiln_completeness.request);
      assert.equal(args['build-arg:FOO'], 'bar');
      assert.equal(args['label:lbl'], 'abc');
    } else {
      assert.ok(!pred.runDetails.metadata.kiln_completeness.request);
      assert.equal(Object.keys(args).length, 0, JSON.stringify(args));
    }
    const base = await imgs.store.resolve('busybox:latest');
    assert.deepEqual(pred.buildDefinition.resolvedDependencies, [{ uri: `pkg:docker/busybox@latest?platform=${encodeURIComponent(host)}`, digest: { sha256: base!.digest.slice(7) } }]);
    assert.equal(pred.buildDefinition.externalParameters.configSource.path, 'Dockerfile');
    assert.ok(pred.runDetails.metadata.invocationId);
    assert.deepEqual(pred.buildDefinition.externalParameters.request.locals.map((l) => l.name), ['context', 'dockerfile']);
    const started = Date.parse(pred.runDetails.metadata.startedOn);
    const finished = Date.parse(pred.runDetails.metadata.finishedOn);
    assert.ok(Date.now() - finished < 5 * 60_000 && Date.now() - started < 5 * 60_000);
    assert.ok(started < finished);
    assert.equal(pred.buildDefinition.internalParameters.builderPlatform, host);
    assert.ok(!pred.runDetails.metadata.kiln_completeness.resolvedDependencies);
    assert.ok(!pred.runDetails.metadata.kiln_reproducible);
    if (mode === 'max') {
      assert.equal(pred.runDetails.metadata.kiln_metadata.layers?.length, 2);
      assert.equal(pred.runDetails.metadata.kiln_metadata.source?.infos[0].filename, 'Dockerfile');
      assert.equal(pred.runDetails.metadata.kiln_metadata.source?.infos[0].data, dockerfile);
      assert.equal(pred.buildDefinition.internalParameters.buildConfig?.steps.length, 1);
    } else {
      assert.equal(pred.runDetails.metadata.kiln_metadata.layers, undefined);
      assert.equal(pred.runDetails.metadata.kiln_metadata.source, undefined);
      assert.equal(pred.buildDefinition.internalParameters.buildConfig, undefined);
    }
  }
  // the Go test's version=v0.2 rounds: kiln writes SLSA v1 only, and says so
  const v02 = await h.kilnBuild({ dockerfile, kilnArgs: ['--provenance=version=v0.2'] });
  assert.notEqual(v02.code, 0);
  assert.match(v02.stderr, /SLSA provenance v0.2 is not supported/);
});

port('testSecretSSHProvenance', async () => {
  const dockerfile = '\nFROM busybox:latest\nRUN --mount=type=secret,id=mysecret --mount=type=secret,id=othersecret --mount=type=ssh echo "ok" > /foo\n';
  const built = await h.kilnBuild({ dockerfile, kilnArgs: ['--provenance=mode=max'] });
  assert.equal(built.code, 0, built.stderr);
  const imgs = await readImages(built.tag);
  assert.equal(imgs.index.manifests.length, 2);
  assert.equal((await h.run(built.tag, ['cat', '/foo'])).stdout, 'ok\n');
  const pred = (await imgs.attestation(host)).statements[0].predicate as unknown as Pred;
  assert.deepEqual(pred.buildDefinition.externalParameters.request.secrets, [{ id: 'mysecret', optional: true }, { id: 'othersecret', optional: true }]);
  assert.deepEqual(pred.buildDefinition.externalParameters.request.ssh, [{ id: 'default', optional: true }]);
});

port('testNilProvenance', async () => {
  // the image exporter half (single and multi platform); kiln writes no provenance.json for local or tar outputs
  const dockerfile = '\nFROM scratch\nENV FOO=bar\n';
  for (const platforms of [[], ['--platform', 'linux/amd64,linux/arm64']]) {
    const built = await h.kilnBuild({ dockerfile, kilnArgs: ['--provenance=mode=max', ...platforms] });
    assert.equal(built.code, 0, built.stderr);
    const imgs = await readImages(built.tag);
    assert.equal(imgs.index.manifests.length, platforms.length ? 4 : 2);
  }
});

port('testDuplicatePlatformProvenance', async () => {
  const built = await h.kilnBuild({ dockerfile: '\nFROM busybox AS base-linux\nFROM scratch AS base-windows\nFROM base-$TARGETOS\n', kilnArgs: ['--provenance=mode=max', '--platform', 'linux/amd64,linux/amd64'] });
  assert.equal(built.code, 0, built.stderr);
});

port('testDuplicateLayersProvenance', async () => {
  const dockerfile = 'FROM busybox:latest AS base\nFROM base AS a\nRUN date +%s > /a.txt\nFROM base AS b\nCOPY --from=a /a.txt /\nRUN date +%s > /b.txt';
  const built = await h.kilnBuild({ dockerfile, kilnArgs: ['--provenance=mode=max'] });
  assert.equal(built.code, 0, built.stderr);
  const imgs = await readImages(built.tag);
  assert.equal(imgs.index.manifests.length, 2);
  assert.ok(imgs.find('unknown/unknown'));
  const pred = (await imgs.attestation(host)).statements[0].predicate as unknown as Pred;
  // the base layer once, then each step's layer once (BuildKit: step0's layer list has one entry)
  const layers = pred.runDetails.metadata.kiln_metadata.layers ?? [];
  assert.equal(layers.length, 3);
  assert.equal(new Set(layers.map((l) => l.digest)).size, 3);
  assert.equal(pred.buildDefinition.internalParameters.buildConfig?.steps.length, 3);
});

port('testMultiPlatformProvenance', async (t) => {
  try {
    await ensureEmulation('linux/arm64');
  } catch (e) {
    t.skip(`arm64 programs cannot run here: ${(e as Error).message}`);
    return;
  }
  if (hostPlatform().architecture !== 'amd64') {
    t.skip('the host must be amd64 (its second platform is arm64)');
    return;
  }
  // busybox:latest becomes an index of this machine's and Debian's arm64 busybox, as a pulled base
  const root = await h.freshRoot(t);
  await multiPlatformBusybox(root);
  const dockerfile = '\nFROM busybox:latest\nARG TARGETARCH\nRUN echo "ok-$TARGETARCH" > /foo\n';
  const built = await h.kilnBuild({ root, dockerfile, buildArgs: { FOO: 'bar' }, kilnArgs: ['--provenance=mode=max', '--label', 'lbl=abc', '--platform', 'linux/amd64,linux/arm64'] });
  assert.equal(built.code, 0, built.stderr);
  const store = await ContentStore.open(root);
  const index = await store.readJSON<ImageIndex>((await store.resolve(built.tag))!.digest);
  assert.equal(index.manifests.length, 4);
  for (const [i, arch] of ['amd64', 'arm64'].entries()) {
    const img = index.manifests[i];
    assert.equal(img.platform?.architecture, arch);
    const att = index.manifests.find((m) => m.annotations?.['vnd.docker.reference.digest'] === img.digest);
    assert.equal(att?.annotations?.['vnd.docker.reference.type'], 'attestation-manifest');
    const m = await store.readJSON<ImageManifest>(att!.digest);
    const stmt = JSON.parse((await store.readBlob(m.layers[0].digest)).toString()) as Statement;
    assert.equal(stmt._type, 'https://in-toto.io/Statement/v1');
    assert.equal(stmt.predicateType, 'https://slsa.dev/provenance/v1');
    const pred = stmt.predicate as unknown as Pred;
    assert.equal(pred.buildDefinition.buildType, KILN_BUILD_TYPE);
    assert.equal(pred.runDetails.builder.id, '');
    assert.equal(pred.buildDefinition.resolvedDependencies.length, 1);
    assert.ok(pred.buildDefinition.resolvedDependencies[0].uri?.startsWith('pkg:docker/busybox@latest'));
    const args = pred.buildDefinition.externalParameters.request.args;
    // the Go test's two args, and the platform request (BuildKit keeps it apart from args)
    assert.equal(args['build-arg:FOO'], 'bar');
    assert.equal(args['label:lbl'], 'abc');
    assert.equal(args.platform, 'linux/amd64,linux/arm64');
    const ran = await runKiln(['run', '--rm', '--platform', `linux/${arch}`, built.tag, 'cat', '/foo'], { root });
    assert.equal(ran.stdout, `ok-${arch}\n`, ran.stderr);
  }
});
