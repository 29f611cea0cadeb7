/** Port of BuildKit's frontend/dockerfile/dockerfile_export_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers.js';
import { tarEntries } from '../../src/oci/tar.js';
import type { ImageConfig, ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { Readable } from 'node:stream';
import { port, useHarness } from './harness.js';

const h = useHarness();

/** A tar's regular files, path → content (testutil.ReadTarToMap; a compressed tar is decompressed). */
async function readTarToMap(data: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const e of tarEntries(Readable.from([data]))) {
    const chunks: Buffer[] = [];
    for await (const c of e.stream) chunks.push(c as Buffer);
    if (e.header.type === 'file') out.set(e.header.name.replace(/^\.\//, ''), Buffer.concat(chunks));
  }
  return out;
}

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const t = await tempDir('kiln-bkport-export-');
  try {
    return await fn(t.dir);
  } finally {
    await t.cleanup();
  }
}

port('testTarExporterBasic', () =>
  withTemp(async (dir) => {
    const out = path.join(dir, 'out.tar');
    const r = await h.kilnBuild({ dockerfile: 'FROM scratch\nCOPY foo foo\n', files: { foo: { content: 'data', mode: 0o600 } }, kilnArgs: ['-o', `type=tar,dest=${out}`] });
    assert.equal(r.code, 0, r.stderr);
    const m = await readTarToMap(await fsp.readFile(out));
    assert.equal(m.get('foo')?.toString(), 'data');
  }),
);

port('testTarExporterMulti', () =>
  withTemp(async (dir) => {
    const spec = {
      dockerfile: 'FROM scratch AS stage-linux\nCOPY foo forlinux\n\nFROM scratch AS stage-darwin\nCOPY bar fordarwin\n\nFROM stage-$TARGETOS\n',
      files: { foo: { content: 'data', mode: 0o600 }, bar: { content: 'data2', mode: 0o600 } },
    };
    const one = path.join(dir, 'one.tar');
    const r = await h.kilnBuild({ ...spec, kilnArgs: ['-o', `type=tar,dest=${one}`] });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await readTarToMap(await fsp.readFile(one))).get('forlinux')?.toString(), 'data');
    // repeat multi-platform
    const multi = path.join(dir, 'multi.tar');
    const r2 = await h.kilnBuild({ ...spec, kilnArgs: ['--platform', 'linux/amd64,darwin/amd64', '-o', `type=tar,dest=${multi}`] });
    assert.equal(r2.code, 0, r2.stderr);
    const m = await readTarToMap(await fsp.readFile(multi));
    assert.equal(m.get('linux_amd64/forlinux')?.toString(), 'data');
    assert.equal(m.get('darwin_amd64/fordarwin')?.toString(), 'data2');
  }),
);

port('testExportMultiPlatform', () =>
  withTemp(async (dir) => {
    const spec = {
      dockerfile: 'FROM scratch\nARG TARGETARCH\nARG TARGETPLATFORM\nLABEL target=$TARGETPLATFORM\nCOPY arch-$TARGETARCH whoami\n',
      files: {
        'arch-arm': { content: 'i am arm', mode: 0o600 },
        'arch-amd64': { content: 'i am amd64', mode: 0o600 },
        'arch-s390x': { content: 'i am s390x', mode: 0o600 },
        'arch-ppc64le': { content: 'i am ppc64le', mode: 0o600 },
      },
    };
    const dest = path.join(dir, 'local');
    const r = await h.kilnBuild({ ...spec, kilnArgs: ['--platform', 'windows/amd64,linux/arm,linux/s390x', '-o', `type=local,dest=${dest}`] });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fsp.readFile(path.join(dest, 'windows_amd64/whoami'), 'utf8'), 'i am amd64');
    assert.equal(await fsp.readFile(path.join(dest, 'linux_arm_v7/whoami'), 'utf8'), 'i am arm');
    assert.equal(await fsp.readFile(path.join(dest, 'linux_s390x/whoami'), 'utf8'), 'i am s390x');

    // repeat with oci exporter
    const out = path.join(dir, 'out.tar');
    const r2 = await h.kilnBuild({ ...spec, kilnArgs: ['--platform', 'windows/amd64,linux/arm/v6,linux/ppc64le', '-o', `type=oci,dest=${out}`] });
    assert.equal(r2.code, 0, r2.stderr);
    const m = await readTarToMap(await fsp.readFile(out));
    const blob = (digest: string) => m.get(`blobs/sha256/${digest.slice('sha256:'.length)}`)!;
    const layout = JSON.parse(m.get('index.json')!.toString()) as ImageIndex;
    const idx = JSON.parse(blob(layout.manifests[0].digest).toString()) as ImageIndex;
    assert.equal(idx.manifests.length, 3);
    const expected = [
      { p: 'windows/amd64', os: 'windows', arch: 'amd64', dt: 'i am amd64' },
      { p: 'linux/arm/v6', os: 'linux', arch: 'arm', dt: 'i am arm' },
      { p: 'linux/ppc64le', os: 'linux', arch: 'ppc64le', dt: 'i am ppc64le' },
    ];
    for (const [i, exp] of expected.entries()) {
      const p = idx.manifests[i].platform!;
      assert.equal([p.os, p.architecture, p.variant].filter(Boolean).join('/'), exp.p);
      const mfst = JSON.parse(blob(idx.manifests[i].digest).toString()) as ImageManifest;
      assert.equal(mfst.layers.length, 1);
      const m2 = await readTarToMap(blob(mfst.layers[0].digest));
      assert.equal(m2.get('whoami')?.toString(), exp.dt);
      const img = JSON.parse(blob(mfst.config.digest).toString()) as ImageConfig;
      assert.equal(img.os, exp.os);
      assert.equal(img.architecture, exp.arch);
      assert.equal(img.config?.Labels?.target, exp.p);
    }
  }),
);
