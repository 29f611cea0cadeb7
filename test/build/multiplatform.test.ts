/**
 * Multi-platform builds (--platform linux/amd64,linux/arm64): one solver for every platform, an
 * OCI image index with a manifest per platform, arm64 RUN steps under QEMU user emulation, and
 * a FROM --platform=$BUILDPLATFORM stage solved once for all of them. Real runc over real
 * overlayfs; the arm64 base is Debian's busybox-static:arm64.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';
import { build } from '../../src/build.js';
import { ContentStore } from '../../src/oci/store.js';
import { validateOCI } from '../../src/oci/schema.js';
import { MediaType, type ImageConfig, type ImageIndex, type ImageManifest } from '../../src/oci/types.js';
import { ensureArm64Emulation, inspectJSON, multiPlatformBusybox } from './multiplatform-helpers.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

/** The files of a plain (or gzip) layer tar blob, name → content. */
async function layerFiles(root: string, digest: string): Promise<Map<string, string>> {
  const store = await ContentStore.open(root);
  const out = new Map<string, string>();
  const extract = tar.extract();
  const { decompress } = await import('../../src/oci/tar.js');
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        out.set(header.name.replace(/^\.?\//, ''), Buffer.concat(chunks).toString('utf8'));
        next();
      });
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  for await (const chunk of decompress(store.openBlob(digest))) extract.write(chunk);
  extract.end(() => undefined);
  await done;
  return out;
}

describe('multi-platform builds', { skip }, () => {
  let ws: Workspace;
  let emulation: string | undefined;

  before(async () => {
    ws = await workspace();
    emulation = ensureArm64Emulation();
    await multiPlatformBusybox(ws.root);
  });
  after(() => ws.cleanup());

  const dockerfile = [
    // the same for every target: one vertex, solved once
    'FROM --platform=$BUILDPLATFORM busybox AS tools',
    'ARG BUILDPLATFORM',
    'RUN echo "tools on $BUILDPLATFORM $(uname -m)" > /tool',
    // the cross-compile pattern: runs natively, once per target (it reads TARGETARCH)
    'FROM --platform=$BUILDPLATFORM busybox AS cross',
    'ARG TARGETARCH',
    'RUN echo "for $TARGETARCH on $(uname -m)" > /cross',
    'FROM busybox',
    'ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH',
    'COPY --from=tools /tool /tool',
    'COPY --from=cross /cross /cross',
    'RUN uname -m > /arch && echo "$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM|$BUILDARCH" > /args',
    'CMD ["cat", "/arch"]',
    '',
  ].join('\n');

  it('builds linux/amd64 and linux/arm64 into one index; each RUN ran on its platform; the BUILDPLATFORM stage ran once', async (t) => {
    if (emulation) return t.skip(emulation);
    const ctx = await ws.context({ Dockerfile: dockerfile });
    const result = await build({
      root: ws.root,
      contextDir: ctx,
      tags: ['mp:1'],
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
    });
    assert.ok(result.platforms, 'a multi-platform result lists its platforms');
    assert.equal(result.manifestDescriptor.mediaType, MediaType.ociIndex);
    assert.equal(result.imageId, result.manifestDescriptor.digest, 'the image id of an index is its digest, as buildx');
    const store = await ContentStore.open(ws.root);
    assert.equal((await store.resolve('mp:1'))?.digest, result.manifestDescriptor.digest, 'the tag names the index');
    const index = await store.readJSON<ImageIndex>(result.manifestDescriptor.digest);
    assert.deepEqual(validateOCI('index', index), []);
    assert.deepEqual(
      index.manifests.map((m) => m.platform),
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
    );
    const expectations = [
      { arch: 'x86_64', args: 'linux/amd64|linux|amd64||linux/amd64|amd64' },
      { arch: 'aarch64', args: 'linux/arm64|linux|arm64||linux/amd64|amd64' },
    ];
    for (const [i, entry] of index.manifests.entries()) {
      const manifest = await store.readJSON<ImageManifest>(entry.digest);
      assert.deepEqual(validateOCI('manifest', manifest), []);
      assert.equal(entry.digest, result.platforms[i].manifestDescriptor.digest);
      const config = result.platforms[i].config as ImageConfig;
      assert.equal(config.architecture, entry.platform?.architecture);
      assert.equal(config.os, 'linux');
      assert.deepEqual(config.config?.Cmd, ['cat', '/arch']);
      const files = await layerFiles(ws.root, manifest.layers[manifest.layers.length - 1].digest);
      assert.equal(files.get('arch')?.trim(), expectations[i].arch, `uname -m of ${entry.platform?.architecture}`);
      assert.equal(files.get('args')?.trim(), expectations[i].args);
      const tool = await layerFiles(ws.root, manifest.layers[manifest.layers.length - 3].digest);
      assert.equal(tool.get('tool')?.trim(), 'tools on linux/amd64 x86_64');
      const cross = await layerFiles(ws.root, manifest.layers[manifest.layers.length - 2].digest);
      assert.equal(cross.get('cross')?.trim(), `for ${entry.platform?.architecture} on x86_64`, 'the cross stage ran natively with the target\'s TARGETARCH');
    }
    // the tools stage's RUN is one vertex for both platforms: solved (and recorded) once
    const toolRuns = result.steps.filter((s) => s.kind === 'exec' && s.name.includes('/tool'));
    assert.equal(toolRuns.length, 1, `tools RUN steps: ${toolRuns.map((s) => s.name).join('; ')}`);
    assert.match(toolRuns[0].name, /^\[linux\/amd64(->arm64)? tools /);
    const crossRuns = result.steps.filter((s) => s.kind === 'exec' && s.name.includes('/cross'));
    assert.equal(crossRuns.length, 2, 'the cross stage runs once per target platform');
    const targetRuns = result.steps.filter((s) => s.kind === 'exec' && s.name.includes('uname -m > /arch'));
    assert.deepEqual(targetRuns.map((s) => s.name.split(' ')[0]).sort(), ['[linux/amd64', '[linux/arm64']);
    // kiln inspect --platform picks each
    const arm = await inspectJSON(ws.root, ['mp:1', '--platform', 'linux/arm64']);
    assert.equal(arm.digest, index.manifests[1].digest);
    assert.equal(arm.index?.digest, result.manifestDescriptor.digest);
  });

  it('--platform a,b and --platform a --platform b give the same index; -q prints its digest', async (t) => {
    if (emulation) return t.skip(emulation);
    const ctx = await ws.context({ Dockerfile: dockerfile });
    const r1 = await runKiln(['build', '-q', '--platform', 'linux/amd64,linux/arm64', '-t', 'mp:2', ctx], { root: ws.root });
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await runKiln(['build', '-q', '--platform', 'linux/amd64', '--platform', 'linux/arm64', '-t', 'mp:3', ctx], { root: ws.root });
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r1.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
    assert.equal(r2.stdout.trim(), r1.stdout.trim(), 'the repeatable flag and the list give the same index');
    const store = await ContentStore.open(ws.root);
    assert.equal((await store.resolve('mp:2'))?.digest, r1.stdout.trim(), '-q prints the index digest');
  });

  it('--iidfile and --metadata-file of a multi-platform build name the index', async (t) => {
    if (emulation) return t.skip(emulation);
    const ctx = await ws.context({ Dockerfile: dockerfile });
    const out = await ws.context({});
    const iid = path.join(out, 'iid');
    const meta = path.join(out, 'meta.json');
    const r = await runKiln(['build', '--progress', 'plain', '--platform', 'linux/arm64,linux/amd64', '-t', 'mp:4', '--iidfile', iid, '--metadata-file', meta, ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\[linux\/arm64 stage-2 /, 'progress labels carry the platform');
    assert.match(r.stderr, /\[linux\/amd64->arm64 cross /, 'a build-platform stage of another target says both');
    const store = await ContentStore.open(ws.root);
    const top = await store.resolve('mp:4');
    assert.equal(top?.mediaType, MediaType.ociIndex);
    assert.equal(await fs.readFile(iid, 'utf8'), top?.digest);
    const m = JSON.parse(await fs.readFile(meta, 'utf8')) as Record<string, unknown>;
    assert.equal(m['containerimage.digest'], top?.digest);
    assert.equal((m['containerimage.descriptor'] as { mediaType: string }).mediaType, MediaType.ociIndex);
    assert.equal(m['containerimage.config.digest'], undefined, 'an index has no one config digest (buildx leaves it out)');
    const index = await store.readJSON<ImageIndex>(top!.digest);
    assert.deepEqual(index.manifests.map((d) => d.platform?.architecture), ['arm64', 'amd64'], 'the index keeps the order asked for');
  });

  it('one platform gives a plain manifest, as before', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox\nRUN uname -m > /arch\n' });
    const r = await runKiln(['build', '-q', '--platform', 'linux/amd64', '-t', 'mp:single', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const store = await ContentStore.open(ws.root);
    const d = await store.resolve('mp:single');
    assert.equal(d?.mediaType, MediaType.ociManifest);
  });
});
