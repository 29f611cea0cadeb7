/**
 * A two-platform build with attestations: the index lists both images, then one attestation
 * manifest per image in the same order (as BuildKit's exporter appends them), each naming its
 * own image and base; the index keeps its --annotation; a push carries all four and a pull of
 * one platform keeps that platform's attestations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { arm64Workspace, isRoot, runCommand, runKiln, tempDir, haveTool, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry, type Registry } from '../registry/harness.js';
import { ContentStore } from '../../src/oci/store.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { validateOCI } from '../../src/oci/schema.js';
import type { ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { statementProblems } from '../../src/attest/intoto.js';
import { readAttached } from './helpers.js';

const skip = !isRoot() ? 'overlayfs needs root' : hostPlatform().architecture !== 'amd64' ? 'the second platform is arm64: the host must be amd64' : false;

type Pred = { buildDefinition: { resolvedDependencies: Array<{ uri?: string; digest: Record<string, string> }>; externalParameters: { request: { args: Record<string, string> } } }; runDetails: { metadata: { invocationId: string } } };

describe('attestations of a two-platform build', { skip }, () => {
  let ws: Workspace;
  let ctx: string;
  let registry: Registry | undefined;

  before(async () => {
    ws = await arm64Workspace();
    ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY f /f\n', f: 'file\n' });
    const r = await runKiln(['build', '-q', '--platform', 'linux/amd64,linux/arm64', '--provenance=mode=max', '--annotation', 'index:org.opencontainers.image.description=two', '-t', 'mp:1', ctx], { root: ws.root, timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await registry?.stop();
    await ws?.cleanup();
  });

  it('lists both images, then their attestation manifests in the same order, each for its own image and base', async () => {
    const { index, attestations } = await readAttached(ws.root, 'mp:1');
    assert.deepEqual(validateOCI('index', index), []);
    assert.deepEqual(index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`), ['linux/amd64', 'linux/arm64', 'unknown/unknown', 'unknown/unknown']);
    assert.deepEqual(index.manifests.slice(2).map((m) => m.annotations?.['vnd.docker.reference.digest']), index.manifests.slice(0, 2).map((m) => m.digest));
    assert.equal(index.annotations?.['org.opencontainers.image.description'], 'two');
    const store = await ContentStore.open(ws.root);
    const bases = { amd64: (await store.resolve('busybox:amd64'))!.digest, arm64: (await store.resolve('busybox:arm64'))!.digest };
    const ids = new Set<string>();
    for (const [i, arch] of (['amd64', 'arm64'] as const).entries()) {
      const s = attestations[i].statements[0];
      assert.deepEqual(statementProblems(s), []);
      assert.deepEqual(s.subject, [{ name: `pkg:docker/mp@1?platform=linux%2F${arch}`, digest: { sha256: index.manifests[i].digest.slice(7) } }]);
      const p = s.predicate as unknown as Pred;
      assert.deepEqual(p.buildDefinition.resolvedDependencies.filter((d) => d.uri?.startsWith('pkg:docker/')), [{ uri: `pkg:docker/busybox@latest?platform=linux%2F${arch}`, digest: { sha256: bases[arch].slice(7) } }]);
      assert.equal(p.buildDefinition.externalParameters.request.args.platform, 'linux/amd64,linux/arm64');
      ids.add(p.runDetails.metadata.invocationId);
      assert.deepEqual(validateOCI('manifest', await store.readJSON<ImageManifest>(index.manifests[i].digest)), []);
    }
    assert.equal(ids.size, 1, 'one invocation id for every platform of a build');
    const rows = await runKiln(['attestations', '--format', 'json', '--platform', 'linux/arm64', 'mp:1'], { root: ws.root });
    const list = JSON.parse(rows.stdout) as Array<{ platform: string; subject: string }>;
    assert.deepEqual(list.map((r) => [r.platform, r.subject]), [['linux/arm64', index.manifests[1].digest]]);
    const images = await runKiln(['images', 'mp'], { root: ws.root });
    assert.match(images.stdout, /linux\/amd64,linux\/arm64\s*$/m);
    assert.doesNotMatch(images.stdout, /unknown/);
    const several = await runKiln(['attestations', 'mp:1', '--predicate-type', 'https://slsa.dev/provenance/v1'], { root: ws.root });
    assert.notEqual(several.code, 0);
    assert.match(several.stderr, /2 attestations .*--platform/s);
  });

  it('a push carries all four; a pull of arm64 into a fresh root keeps its attestation manifest alone', { skip: !haveRegistry() || !haveTool('skopeo') ? 'needs docker-registry and skopeo' : false }, async (t) => {
    registry = await startRegistry();
    const ref = `${registry.host}/att/mp:1`;
    const pushed = await runKiln(['push', 'mp:1', ref], { root: ws.root });
    assert.equal(pushed.code, 0, pushed.stderr);
    const raw = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(raw.code, 0, raw.stderr);
    const remote = JSON.parse(raw.stdout) as ImageIndex;
    assert.deepEqual(remote, (await readAttached(ws.root, 'mp:1')).index);
    const fresh = await tempDir('kiln-att-mp-');
    t.after(fresh.cleanup);
    const pulled = await runKiln(['pull', '--platform', 'linux/arm64', ref], { root: fresh.dir });
    assert.equal(pulled.code, 0, pulled.stderr);
    const { index } = await readAttached(fresh.dir, ref);
    assert.deepEqual(index.manifests, [remote.manifests[1], remote.manifests[3]]);
    assert.equal(index.annotations?.['org.opencontainers.image.description'], 'two');
    const rows = JSON.parse((await runKiln(['attestations', '--format', 'json', ref], { root: fresh.dir })).stdout) as Array<{ platform: string }>;
    assert.deepEqual(rows.map((r) => r.platform), ['linux/arm64']);
  });
});
