/**
 * Port of BuildKit's multi-platform export test (frontend/dockerfile/dockerfile_export_test.go
 * testExportMultiPlatform; see test/buildkit/README.md). docker 20.10's frontend builds one
 * platform per build, so this is an assertion case on kiln alone. The Go test's local export
 * (one directory per platform) is read from each platform's image in the OCI archive instead:
 * `-o type=local` belongs to the outputs of #12.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { tempDir } from '../helpers.js';
import { port, useHarness } from './harness.js';

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
