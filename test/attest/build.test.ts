/**
 * `kiln build --provenance` on busybox, for real (RUN in runc): the index and attestation
 * manifests exactly as BuildKit lays them out, the in-toto statement, the SLSA v1 provenance's
 * fields (Dockerfile digest, build args, a secret's id and never its value, the resolved base,
 * the git checkout), OCI schema validity, and the commands that must not take an attestation
 * manifest for an image.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isRoot, runCommand, runKiln, workspace, type Workspace } from '../helpers.js';
import { ContentStore } from '../../src/oci/store.js';
import { hostPlatform, formatPlatform } from '../../src/oci/platform.js';
import { validateOCI } from '../../src/oci/schema.js';
import { MediaType, type ImageManifest } from '../../src/oci/types.js';
import { statementProblems } from '../../src/attest/intoto.js';
import { KILN_BUILD_TYPE } from '../../src/attest/provenance.js';
import { VERSION } from '../../src/version.js';
import { fileSha256, readAttached, reachableBytes } from './helpers.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';
const SECRET = 'pr0venance-must-not-leak-this-7f3a';

const dockerfile = [
  'FROM busybox:latest',
  'ARG FOO',
  'RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len && echo "$FOO" > /foo',
  'COPY hello.txt /hello.txt',
  '',
].join('\n');

type Pred = {
  buildDefinition: {
    buildType: string;
    externalParameters: { configSource: { path: string; digest: { sha256: string } }; request: { frontend: string; args: Record<string, string>; secrets?: Array<{ id: string; optional: boolean }>; ssh?: unknown[]; locals: Array<{ name: string }> } };
    internalParameters: { builderPlatform: string; kilnVersion: string; buildConfig?: { steps: Array<{ name: string; digest: string; cacheKey: string; cached: boolean }> } };
    resolvedDependencies: Array<{ uri?: string; name?: string; digest: Record<string, string> }>;
  };
  runDetails: { builder: { id: string; version: Record<string, string> }; metadata: { invocationId: string; startedOn: string; finishedOn: string; kiln_metadata: { vcs?: { revision?: string; source?: string }; layers?: Array<{ digest: string }>; source?: unknown } } };
};

describe('kiln build --provenance', { skip }, () => {
  let ws: Workspace;
  let ctx: string;
  let secretFile: string;
  let commit: string;

  before(async () => {
    ws = await workspace();
    ctx = await ws.context({ Dockerfile: dockerfile, 'hello.txt': 'hello\n', 'tok.secret': `${SECRET}` });
    secretFile = path.join(ctx, 'tok.secret');
    await fs.writeFile(path.join(ctx, '.dockerignore'), 'tok.secret\n');
    // the context is a git checkout with a remote that carries a credential
    const git = (...args: string[]) => runCommand('git', ['-C', ctx, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args]);
    assert.equal((await git('init', '-q')).code, 0);
    await git('add', 'Dockerfile', 'hello.txt', '.dockerignore');
    assert.equal((await git('commit', '-q', '-m', 'c')).code, 0);
    await git('remote', 'add', 'origin', 'https://someone:hunter2@example.invalid/team/app.git');
    commit = (await git('rev-parse', 'HEAD')).stdout.trim();
  });
  after(async () => ws?.cleanup());

  const build = (args: string[], env: Record<string, string> = {}) =>
    runKiln(['build', '--progress', 'plain', '--secret', `id=tok,src=${secretFile}`, '--build-arg', 'FOO=bar', '--label', 'team=blue', ...args, ctx], { root: ws.root, env: { BUILDX_GIT_INFO: '', ...env } });

  it('stores the index BuildKit writes: the image, then its attestation manifest (unknown/unknown, reference annotations), every document valid', async () => {
    const r = await build(['--provenance=mode=max', '-t', 'prov:max']);
    assert.equal(r.code, 0, r.stderr);
    const { top, index, attestations } = await readAttached(ws.root, 'prov:max');
    assert.equal(top.mediaType, MediaType.ociIndex);
    assert.deepEqual(validateOCI('index', index), []);
    assert.equal(index.manifests.length, 2);
    const [image, att] = index.manifests;
    assert.equal(image.mediaType, MediaType.ociManifest);
    assert.deepEqual(image.platform, { architecture: hostPlatform().architecture, os: 'linux' });
    assert.equal(image.annotations?.['vnd.docker.reference.type'], undefined);
    assert.equal(att.mediaType, MediaType.ociManifest);
    assert.deepEqual(att.platform, { architecture: 'unknown', os: 'unknown' });
    assert.deepEqual(att.annotations, { 'vnd.docker.reference.digest': image.digest, 'vnd.docker.reference.type': 'attestation-manifest' });

    const store = await ContentStore.open(ws.root);
    const imageManifest = await store.readJSON<ImageManifest>(image.digest);
    assert.deepEqual(validateOCI('manifest', imageManifest), []);
    // the git annotations made before the attestations are kept on the image manifest
    assert.equal(imageManifest.annotations?.['org.opencontainers.image.revision'], commit);
    // the attested image's layers are what a push sends: gzip
    assert.ok(imageManifest.layers.every((l) => l.mediaType === MediaType.ociLayerGzip), JSON.stringify(imageManifest.layers));

    assert.equal(attestations.length, 1);
    const a = attestations[0];
    assert.deepEqual(validateOCI('manifest', a.manifest), []);
    assert.deepEqual(validateOCI('config', a.config), []);
    assert.equal(a.manifest.config.mediaType, MediaType.ociConfig);
    assert.deepEqual(a.config, { architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: a.manifest.layers.map((l) => l.digest) } });
    assert.equal(a.manifest.layers.length, 1);
    assert.equal(a.manifest.layers[0].mediaType, 'application/vnd.in-toto+json');
    assert.deepEqual(a.manifest.layers[0].annotations, { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v1' });

    const s = a.statements[0];
    assert.deepEqual(statementProblems(s), []);
    assert.equal(s._type, 'https://in-toto.io/Statement/v1');
    assert.equal(s.predicateType, 'https://slsa.dev/provenance/v1');
    assert.deepEqual(s.subject, [{ name: `pkg:docker/prov@max?platform=${encodeURIComponent(formatPlatform(hostPlatform()))}`, digest: { sha256: image.digest.slice(7) } }]);
  });

  it('provenance names the Dockerfile by digest, the build args and labels, the secret by id only, the resolved base and the git checkout', async () => {
    const { index, attestations } = await readAttached(ws.root, 'prov:max');
    const p = attestations[0].statements[0].predicate as unknown as Pred;
    const def = p.buildDefinition;
    assert.equal(def.buildType, KILN_BUILD_TYPE);
    assert.deepEqual(def.externalParameters.configSource, { path: 'Dockerfile', digest: { sha256: await fileSha256(path.join(ctx, 'Dockerfile')) } });
    assert.equal(def.externalParameters.request.frontend, 'dockerfile.v0');
    assert.equal(def.externalParameters.request.args['build-arg:FOO'], 'bar');
    assert.equal(def.externalParameters.request.args['label:team'], 'blue');
    assert.deepEqual(def.externalParameters.request.secrets, [{ id: 'tok', optional: true }]);
    assert.deepEqual(def.externalParameters.request.locals, [{ name: 'context' }, { name: 'dockerfile' }]);
    assert.equal(def.internalParameters.builderPlatform, formatPlatform(hostPlatform()));
    assert.equal(def.internalParameters.kilnVersion, VERSION);
    assert.deepEqual(p.runDetails.builder.version, { kiln: VERSION });

    const store = await ContentStore.open(ws.root);
    const base = await store.resolve('busybox:latest');
    assert.ok(base);
    const images = def.resolvedDependencies.filter((d) => d.uri?.startsWith('pkg:docker/'));
    assert.deepEqual(images, [{ uri: `pkg:docker/busybox@latest?platform=${encodeURIComponent(formatPlatform(hostPlatform()))}`, digest: { sha256: base.digest.slice(7) } }]);
    const context = def.resolvedDependencies.find((d) => d.name === 'context');
    assert.deepEqual(context, { uri: 'https://example.invalid/team/app.git', name: 'context', digest: { sha1: commit } });
    assert.deepEqual(p.runDetails.metadata.kiln_metadata.vcs, { revision: commit, source: 'https://example.invalid/team/app.git' });

    const started = Date.parse(p.runDetails.metadata.startedOn);
    const finished = Date.parse(p.runDetails.metadata.finishedOn);
    assert.ok(Number.isFinite(started) && started <= finished, `${p.runDetails.metadata.startedOn} … ${p.runDetails.metadata.finishedOn}`);
    assert.match(p.runDetails.metadata.invocationId, /^[0-9a-z]{25}$/);

    // max: the steps (the RUN ran, the COPY too) and the image's layers
    const steps = def.internalParameters.buildConfig?.steps ?? [];
    assert.deepEqual(steps.map((st) => st.name.replace(/^\[[^\]]*\] /, '')), ['RUN wc -c < /run/secrets/tok > /len && echo "$FOO" > /foo', 'COPY hello.txt /hello.txt']);
    assert.ok(steps.every((st) => /^sha256:[0-9a-f]{64}$/.test(st.digest) && /^sha256:[0-9a-f]{64}$/.test(st.cacheKey) && st.cached === false));
    const manifest = await store.readJSON<ImageManifest>(index.manifests[0].digest);
    assert.deepEqual(p.runDetails.metadata.kiln_metadata.layers?.map((l) => l.digest), manifest.layers.map((l) => l.digest));
    // a credential of the remote is nowhere
    assert.ok(!attestations[0].raw[0].toString('utf8').includes('hunter2'));
  });

  it("the secret's value is in none of the image's blobs; a rebuild from the cache says its steps were cached", async () => {
    const { top } = await readAttached(ws.root, 'prov:max');
    for (const b of await reachableBytes(ws.root, top)) assert.ok(!b.includes(SECRET), 'the secret value leaked into a blob');
    const again = await build(['--provenance=mode=max', '-t', 'prov:again']);
    assert.equal(again.code, 0, again.stderr);
    const p = (await readAttached(ws.root, 'prov:again')).attestations[0].statements[0].predicate as unknown as Pred;
    assert.ok((p.buildDefinition.internalParameters.buildConfig?.steps ?? []).every((st) => st.cached), JSON.stringify(p.buildDefinition.internalParameters.buildConfig));
  });

  it('mode=min leaves out build-arg and label values, secrets and steps', async () => {
    const r = await build(['--provenance=true', '-t', 'prov:min']);
    assert.equal(r.code, 0, r.stderr);
    const p = (await readAttached(ws.root, 'prov:min')).attestations[0].statements[0].predicate as unknown as Pred;
    assert.deepEqual(p.buildDefinition.externalParameters.request.args, {});
    assert.equal(p.buildDefinition.externalParameters.request.secrets, undefined);
    assert.equal(p.buildDefinition.internalParameters.buildConfig, undefined);
    assert.equal(p.runDetails.metadata.kiln_metadata.layers, undefined);
    // the Dockerfile and the base are there in min too
    assert.equal(p.buildDefinition.externalParameters.configSource.digest.sha256, await fileSha256(path.join(ctx, 'Dockerfile')));
    assert.equal(p.buildDefinition.resolvedDependencies.filter((d) => d.uri?.startsWith('pkg:docker/busybox@latest')).length, 1);
  });

  it('-q, --iidfile and --metadata-file give the index digest; --attest is the same request', async (t) => {
    const out = path.join(ctx, '..', `meta-${process.pid}`);
    await fs.mkdir(out, { recursive: true });
    t.after(() => fs.rm(out, { recursive: true, force: true }));
    const r = await build(['-q', '--attest', 'type=provenance,mode=max', '--iidfile', path.join(out, 'iid'), '--metadata-file', path.join(out, 'meta.json'), '-t', 'prov:q']);
    assert.equal(r.code, 0, r.stderr);
    const { top, attestations } = await readAttached(ws.root, 'prov:q');
    assert.equal(r.stdout.trim(), top.digest);
    assert.equal((await fs.readFile(path.join(out, 'iid'), 'utf8')).trim(), top.digest);
    const meta = JSON.parse(await fs.readFile(path.join(out, 'meta.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(meta['containerimage.digest'], top.digest);
    assert.equal((meta['containerimage.descriptor'] as { mediaType: string }).mediaType, MediaType.ociIndex);
    assert.ok((attestations[0].statements[0].predicate as unknown as Pred).buildDefinition.internalParameters.buildConfig);
  });

  it('with SOURCE_DATE_EPOCH the attested image is the same bytes on a rebuild (times and invocation id from the epoch)', async () => {
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const a = await build(['-q', '--no-cache', '--provenance=mode=min', '-t', 'prov:epoch'], env);
    const b = await build(['-q', '--no-cache', '--provenance=mode=min', '-t', 'prov:epoch'], env);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout.trim(), b.stdout.trim());
    const p = (await readAttached(ws.root, 'prov:epoch')).attestations[0].statements[0].predicate as unknown as Pred;
    assert.equal(p.runDetails.metadata.startedOn, '2023-11-14T22:13:20Z');
    assert.equal(p.runDetails.metadata.finishedOn, '2023-11-14T22:13:20Z');
  });

  it('kiln images, run, inspect and save --platform never take the attestation manifest for an image', async (t) => {
    const images = await runKiln(['images', '--format', 'json'], { root: ws.root });
    assert.equal(images.code, 0, images.stderr);
    assert.ok(!images.stdout.includes('unknown/unknown'), images.stdout);
    const ran = await runKiln(['run', '--rm', 'prov:max', 'cat', '/foo', '/hello.txt', '/len'], { root: ws.root });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout.replace(/ +/g, ''), `bar\nhello\n${SECRET.length}\n`);
    const { index } = await readAttached(ws.root, 'prov:max');
    const inspected = await runKiln(['inspect', 'prov:max'], { root: ws.root });
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.equal((JSON.parse(inspected.stdout) as { digest: string }).digest, index.manifests[0].digest);
    const unknown = await runKiln(['run', '--rm', '--platform', 'unknown/unknown', 'prov:max', 'true'], { root: ws.root });
    assert.notEqual(unknown.code, 0);
    const dir = path.join(ctx, '..', `save-${process.pid}`);
    await fs.mkdir(dir, { recursive: true });
    t.after(() => fs.rm(dir, { recursive: true, force: true }));
    const saved = await runKiln(['save', '--platform', formatPlatform(hostPlatform()), '-o', path.join(dir, 'x.tar'), 'prov:max'], { root: ws.root });
    assert.equal(saved.code, 0, saved.stderr);
  });

  it('a base image whose index has attestations is resolved to its image, never its attestation manifest', async () => {
    const ctx2 = await ws.context({ Dockerfile: 'FROM prov:max\nRUN cat /foo > /again\n' });
    const r = await runKiln(['build', '-q', '-t', 'child', ctx2], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const ran = await runKiln(['run', '--rm', 'child', 'cat', '/again'], { root: ws.root });
    assert.equal(ran.stdout, 'bar\n');
  });

  it('kiln attestations lists them, prints a statement, and says what is wrong', async () => {
    const table = await runKiln(['attestations', 'prov:max'], { root: ws.root });
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.equal(lines.length, 2, table.stdout);
    assert.match(lines[0], /^PLATFORM\s+PREDICATE TYPE\s+DIGEST\s+SIZE\s+SUBJECT$/);
    const { index, attestations } = await readAttached(ws.root, 'prov:max');
    assert.ok(lines[1].startsWith(formatPlatform(hostPlatform())) && lines[1].includes('https://slsa.dev/provenance/v1') && lines[1].includes(attestations[0].manifest.layers[0].digest) && lines[1].endsWith(index.manifests[0].digest), lines[1]);
    const one = await runKiln(['attestations', 'prov:max', '--predicate-type', 'https://slsa.dev/provenance/v1'], { root: ws.root });
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(JSON.parse(one.stdout), attestations[0].statements[0]);
    const json = await runKiln(['attestations', 'prov:max', '--format', 'json', '--platform', formatPlatform(hostPlatform())], { root: ws.root });
    const rows = JSON.parse(json.stdout) as Array<{ predicateType: string; subject: string; statement: unknown }>;
    assert.equal(rows.length, 1);
    assert.equal(rows[0].subject, index.manifests[0].digest);
    const none = await runKiln(['attestations', 'prov:max', '--predicate-type', 'https://spdx.dev/Document'], { root: ws.root });
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /no attestation of type https:\/\/spdx.dev\/Document/);
    const plain = await runKiln(['attestations', 'busybox'], { root: ws.root });
    assert.equal(plain.code, 0);
    assert.equal(plain.stdout, '');
    assert.match(plain.stderr, /has no attestations/);
    const missing = await runKiln(['attestations', 'nope:1'], { root: ws.root });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /not found/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /);
  });

  it('an output that would rewrite an attested manifest is refused: the statements would name another image', async (t) => {
    const dir = path.join(ctx, '..', `oci-${process.pid}`);
    t.after(() => fs.rm(dir, { recursive: true, force: true }));
    const r = await build(['--provenance=mode=min', '-o', `type=oci,dest=${dir}.tar,oci-mediatypes=false`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /has attestations naming its digest, which this output would change/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    await assert.rejects(fs.stat(`${dir}.tar`));
    const ok = await build(['--provenance=mode=min', '-o', `type=oci,dest=${dir}.tar`]);
    assert.equal(ok.code, 0, ok.stderr);
    await fs.rm(`${dir}.tar`);
  });

  it('bad flags are refused with a clear message', async () => {
    for (const [flag, pattern] of [
      ['--provenance=mode=huge', /mode=huge is neither min nor max/],
      ['--attest=type=vex', /unknown attestation type "vex"/],
      ['--provenance=version=v0.2', /SLSA provenance v0.2 is not supported/],
    ] as const) {
      const r = await runKiln(['build', flag, ctx], { root: ws.root });
      assert.notEqual(r.code, 0, flag);
      assert.match(r.stderr, pattern);
    }
  });
});
