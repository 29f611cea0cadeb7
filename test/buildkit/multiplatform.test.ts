/**
 * Ports of BuildKit's multi-platform tests (frontend/dockerfile/dockerfile_export_test.go
 * testExportMultiPlatform, dockerfile_cache_test.go testCacheMultiPlatformImportExport; see
 * test/buildkit/README.md). docker 20.10's frontend builds one
 * platform per build, so this is an assertion case on kiln alone. The Go test's local export
 * (one directory per platform) is read from each platform's image in the OCI archive instead:
 * `-o type=local` belongs to the outputs of #12.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { createHash } from 'node:crypto';
import { runCommand, runKiln, tempDir } from '../helpers.js';
import { ContentStore } from '../../src/oci/store.js';
import { newRegistry, port, useHarness } from './harness.js';

const h = useHarness();

/** A tar (plain or gzip) as a map name → bytes (testutil.ReadTarToMap). */
async function readTarToMap(data: Buffer): Promise<Map<string, Buffer>> {
  const bytes = data[0] === 0x1f && data[1] === 0x8b ? zlib.gunzipSync(data) : data;
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  await new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        out.set(header.name.replace(/^\.\//, ''), Buffer.concat(chunks));
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    extract.end(bytes);
  });
  return out;
}

interface Desc {
  digest: string;
  platform?: { os: string; architecture: string; variant?: string };
}

const dockerfile = `
FROM scratch
ARG TARGETARCH
ARG TARGETPLATFORM
LABEL target=$TARGETPLATFORM
COPY arch-$TARGETARCH whoami
`;
const files = {
  'arch-arm': { content: 'i am arm', mode: 0o600 },
  'arch-amd64': { content: 'i am amd64', mode: 0o600 },
  'arch-s390x': { content: 'i am s390x', mode: 0o600 },
  'arch-ppc64le': { content: 'i am ppc64le', mode: 0o600 },
};

/** Builds for `platforms`, saves the index as an OCI archive and gives each platform's manifest, config and layer files. */
async function buildAndRead(platforms: string) {
  const built = await h.kilnBuild({ dockerfile, files, kilnArgs: ['--platform', platforms] });
  assert.equal(built.code, 0, built.stderr);
  const out = await tempDir('kiln-bk-mp-');
  try {
    const archive = path.join(out.dir, 'out.tar');
    const saved = await h.kilnCommand(['save', '--format', 'oci', '-o', archive, built.tag]);
    assert.equal(saved.code, 0, saved.stderr);
    const m = await readTarToMap(await fs.readFile(archive));
    const blob = (d: string) => m.get(`blobs/sha256/${d.slice(7)}`)!;
    const top = JSON.parse(m.get('index.json')!.toString()) as { manifests: Desc[] };
    const idx = JSON.parse(blob(top.manifests[0].digest).toString()) as { manifests: Desc[] };
    return Promise.all(
      idx.manifests.map(async (d) => {
        const mfst = JSON.parse(blob(d.digest).toString()) as { config: Desc; layers: Desc[] };
        const img = JSON.parse(blob(mfst.config.digest).toString()) as { os: string; architecture: string; config: { Labels?: Record<string, string> } };
        return { platform: d.platform, layers: mfst.layers.length, files: await readTarToMap(blob(mfst.layers[0].digest)), img };
      }),
    );
  } finally {
    await out.cleanup();
  }
}

const format = (p?: Desc['platform']) => (p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : '');

port('testExportMultiPlatform', async () => {
  // the Go test's local export: windows_amd64/, linux_arm_v7/, linux_s390x/ (linux/arm is arm/v7)
  const local = await buildAndRead('windows/amd64,linux/arm,linux/s390x');
  assert.deepEqual(local.map((x) => format(x.platform)), ['windows/amd64', 'linux/arm/v7', 'linux/s390x']);
  assert.deepEqual(local.map((x) => x.files.get('whoami')?.toString()), ['i am amd64', 'i am arm', 'i am s390x']);

  // repeat with the oci exporter
  const oci = await buildAndRead('windows/amd64,linux/arm/v6,linux/ppc64le');
  assert.equal(oci.length, 3);
  const expected = [
    { p: 'windows/amd64', os: 'windows', arch: 'amd64', dt: 'i am amd64' },
    { p: 'linux/arm/v6', os: 'linux', arch: 'arm', dt: 'i am arm' },
    { p: 'linux/ppc64le', os: 'linux', arch: 'ppc64le', dt: 'i am ppc64le' },
  ];
  for (const [i, exp] of expected.entries()) {
    assert.equal(format(oci[i].platform), exp.p);
    assert.equal(oci[i].layers, 1);
    assert.equal(oci[i].files.get('whoami')?.toString(), exp.dt);
    assert.equal(oci[i].img.os, exp.os);
    assert.equal(oci[i].img.architecture, exp.arch);
    assert.equal(oci[i].img.config.Labels?.target, exp.p);
  }
});

/** Each platform's image of the index `name` names in `root`: its layers as maps of files. */
async function platformLayers(root: string, name: string): Promise<Map<string, Array<Map<string, Buffer>>>> {
  const store = await ContentStore.open(root);
  const top = await store.resolve(name);
  assert.ok(top, `${name} is in the store`);
  const index = await store.readJSON<{ manifests: Desc[] }>(top.digest);
  const out = new Map<string, Array<Map<string, Buffer>>>();
  for (const d of index.manifests) {
    const m = await store.readJSON<{ layers: Desc[] }>(d.digest);
    out.set(format(d.platform), await Promise.all(m.layers.map(async (l) => readTarToMap(await store.readBlob(l.digest)))));
  }
  return out;
}

port('testCacheMultiPlatformImportExport', async (t) => {
  const reg = await newRegistry(t);
  if (!reg) return;
  const spec = {
    dockerfile: `
FROM --platform=$BUILDPLATFORM busybox AS base
ARG TARGETARCH
RUN echo -n $TARGETARCH> arch && cat /dev/urandom | head -c 100 | sha256sum > unique
FROM scratch
COPY --from=base unique /
COPY --from=base arch /
`,
  };
  const target = `${reg.host}/buildkit/testexportdf:multi`;
  const importCache = `${target}-img`;
  const ctx = await h.context(spec);
  const buildPush = (root: string, extra: string[]) =>
    runKiln(['build', '--progress', 'plain', '--platform', 'linux/amd64,linux/arm/v7', '--cache-to', 'type=inline', ...extra, '--push', '-t', importCache, ctx.dir], { root });
  const first = await buildPush(h.root, []);
  assert.equal(first.code, 0, first.stderr);
  const registryDigest = async () => {
    const raw = await runCommand('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${importCache}`]);
    assert.equal(raw.code, 0, raw.stderr);
    return `sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`;
  };
  const desc = await registryDigest();
  const imgs = await platformLayers(h.root, importCache);
  assert.equal(imgs.size, 2);
  assert.equal(imgs.get('linux/amd64')![1].get('arch')?.toString().trim(), 'amd64');
  const dtamd = imgs.get('linux/amd64')![0].get('unique')?.toString();
  const dtarm = imgs.get('linux/arm/v7')![0].get('unique')?.toString();
  assert.notEqual(dtamd, dtarm);

  for (let i = 0; i < 2; i++) {
    // ensurePruneAll: a fresh root with the same busybox
    const root = await h.freshRoot(t);
    const again = await buildPush(root, ['--cache-from', importCache]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await registryDigest(), desc);
    const imgs2 = await platformLayers(root, importCache);
    assert.equal(imgs2.size, 2);
    assert.equal(imgs2.get('linux/arm/v7')![1].get('arch')?.toString().trim(), 'arm');
    assert.equal(imgs2.get('linux/amd64')![0].get('unique')?.toString(), dtamd);
    assert.equal(imgs2.get('linux/arm/v7')![0].get('unique')?.toString(), dtarm);
  }
});
