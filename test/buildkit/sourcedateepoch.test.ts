/** Port of BuildKit's frontend/dockerfile/dockerfile_source_date_epoch_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { newRegistry, port, useHarness, type ImageResult } from './harness.js';
import { readTar } from '../oracle/tree.js';
import { runKiln } from '../helpers.js';

const h = useHarness();

function createdAt(img: ImageResult): number {
  return Date.parse(String((img.config as { created?: string }).created)) / 1000;
}

port('testSourceDateEpochWithoutExporter', async () => {
  const tm = 1700000001;
  const img = await h.kiln({ dockerfile: 'FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n', buildArgs: { SOURCE_DATE_EPOCH: String(tm) } });
  assert.equal(createdAt(img), tm);
  for (const e of img.config.history ?? []) assert.equal(Date.parse(String((e as { created?: string }).created)) / 1000, tm);
});

port('testSourceDateEpochDockerfileDefault', async () => {
  const tm = Date.UTC(2015, 9, 21, 7, 28) / 1000;
  const img = await h.kiln({ dockerfile: `ARG SOURCE_DATE_EPOCH=${tm}\nFROM scratch\nCOPY Dockerfile .\n` });
  assert.equal(img.layers, 1);
  assert.equal(createdAt(img), tm);
});

port('testSourceDateEpochDockerfileDefaultOverride', async () => {
  const img = await h.kiln({ dockerfile: 'ARG SOURCE_DATE_EPOCH=1700000001\nFROM scratch\nCOPY Dockerfile .\n', buildArgs: { SOURCE_DATE_EPOCH: '1700000002' } });
  assert.equal(createdAt(img), 1700000002);
});

port('testSourceDateEpochDockerfileDefaultInvalid', async () => {
  const r = await h.kilnFails({ dockerfile: 'ARG SOURCE_DATE_EPOCH=not-a-timestamp\nFROM scratch\nCOPY Dockerfile .\n' });
  assert.match(r.stderr, /invalid SOURCE_DATE_EPOCH: not-a-timestamp/);
});

interface Pushed {
  digest: string;
  manifest: { layers: Array<{ digest: string }> };
  config: { history?: Array<{ created?: string }>; rootfs: { diff_ids: string[] } };
}

async function readPushed(url: string, repo: string, tag: string): Promise<Pushed> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200);
  const manifest = (await res.json()) as Pushed['manifest'] & { config: { digest: string } };
  const config = (await (await fetch(`${url}/v2/${repo}/blobs/${manifest.config.digest}`)).json()) as Pushed['config'];
  return { digest: String(res.headers.get('docker-content-digest')), manifest, config };
}

/**
 * testReproSourceDateEpoch's cases, on kiln's busybox base (BuildKit avoided busybox for a
 * hard-link issue of its own snapshotter, moby/buildkit#3455): pushed with SOURCE_DATE_EPOCH,
 * the base's layers and history times stay the base's, every other layer's file times are
 * clamped to the epoch (older ones kept), and the same build on a fresh root (BuildKit's
 * ensurePruneAll) pushes the same digest. The expected digests are not BuildKit's (another
 * base), and kiln writes no buildkit/rewritten-timestamp layer annotation.
 */
const REPRO_CASES: Array<{ name: string; dockerfile: string; files?: Record<string, { content: string; mode: number }> }> = [
  {
    name: 'basic',
    dockerfile: [
      'FROM busybox',
      'RUN touch /foo',
      'RUN touch /foo.1',
      "RUN touch -d '2010-01-01 12:34:56' /foo-2010",
      "RUN touch -d '2010-01-01 12:34:56' /foo-2010.1",
      "RUN touch -d '2030-01-01 12:34:56' /foo-2030",
      "RUN touch -d '2030-01-01 12:34:56' /foo-2030.1",
      'RUN rm -f /foo.1',
      'RUN rm -f /foo-2010.1',
      'RUN rm -f /foo-2030.1',
      '',
    ].join('\n'),
  },
  { name: 'copylink', dockerfile: 'FROM busybox\nCOPY --link foo foo\n', files: { foo: { content: 'foo', mode: 0o600 } } },
  { name: 'noadditionallayer', dockerfile: 'FROM busybox\n' },
];

port('testReproSourceDateEpoch', async (t: TestContext) => {
  const reg = await newRegistry(t);
  if (!reg) return;
  const tm = Date.UTC(2023, 0, 10, 12, 34, 56) / 1000;
  const base = JSON.parse((await h.kilnCommand(['inspect', 'busybox:latest'])).stdout) as { manifest: { layers: Array<{ digest: string }> }; config: { history: Array<{ created?: string }> } };
  const fresh = await h.freshRoot(t);
  for (const c of REPRO_CASES) {
    const repo = `buildkit/testreprosourcedateepoch-${c.name}`;
    const spec = { dockerfile: c.dockerfile, files: c.files, buildArgs: { SOURCE_DATE_EPOCH: String(tm) } };
    const first = await h.kilnBuild(spec);
    assert.equal(first.code, 0, first.stderr);
    const pushA = await h.kilnCommand(['push', first.tag, `${reg.host}/${repo}:a`]);
    assert.equal(pushA.code, 0, pushA.stderr);
    const img = await readPushed(reg.url, repo, 'a');
    // the base's history times and layers stay the base's
    for (const [i, e] of base.config.history.entries()) assert.equal(img.config.history?.[i]?.created, e.created, `${c.name}: base history ${i}`);
    for (const [i, l] of base.manifest.layers.entries()) assert.equal(img.manifest.layers[i].digest, l.digest, `${c.name}: base layer ${i}`);
    const times = new Map<string, number>();
    for (const l of img.manifest.layers.slice(base.manifest.layers.length)) {
      const blob = Buffer.from(await (await fetch(`${reg.url}/v2/${repo}/blobs/${l.digest}`)).arrayBuffer());
      for (const m of await readTar(blob)) {
        const mtime = Math.floor((m.header.mtime?.getTime() ?? 0) / 1000);
        assert.ok(mtime <= tm, `${c.name}: ${m.header.name} has mtime ${mtime}, after SOURCE_DATE_EPOCH`);
        times.set(m.header.name.replace(/^\.?\//, ''), mtime);
      }
    }
    if (c.name === 'basic') {
      assert.equal(times.get('foo'), tm);
      assert.equal(times.get('foo-2030'), tm, 'a later time is clamped');
      assert.equal(times.get('foo-2010'), Date.UTC(2010, 0, 1, 12, 34, 56) / 1000, 'an earlier time is kept');
      assert.ok(times.has('.wh.foo.1'), 'the whiteout is in the layer');
    }
    if (c.name === 'noadditionallayer') assert.equal(img.manifest.layers.length, base.manifest.layers.length);
    // again on a fresh root, as after BuildKit's prune: the same digest
    const again = await h.kilnBuild({ ...spec, root: fresh });
    assert.equal(again.code, 0, again.stderr);
    const pushB = await runKiln(['push', again.tag, `${reg.host}/${repo}:b`], { root: fresh });
    assert.equal(pushB.code, 0, pushB.stderr);
    assert.equal((await readPushed(reg.url, repo, 'b')).digest, img.digest, `${c.name}: the same digest from a fresh root`);
  }
});
