/**
 * Port of BuildKit's frontend/dockerfile/dockerfile_namedcontext_test.go and the onbuild
 * file's testOnBuildNamedContext (see test/buildkit/README.md). BuildKit's `context:NAME`
 * frontend attributes are kiln's `--build-context NAME=VALUE`: `docker-image://REF`,
 * `oci-layout://PATH@DIGEST` and a local directory (BuildKit's `local:NAME` with the
 * directory sent by the client). docker 20.10's `docker build` has no --build-context, so
 * every case is an assertion case. Images the Go tests push to a registry are built into
 * kiln's store and named by tag (docker-image:// resolves through the store first, then the
 * registry, as FROM does); OCI layouts are `kiln save --format oci` archives unpacked into a
 * directory, as the Go tests unpack the OCI exporter's tar.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCommand, tempDir } from '../helpers.js';
import { hasEntry, port, readImageFile, useHarness, type BuildSpec, type ImageResult } from './harness.js';

const h = useHarness();

async function parent(spec: BuildSpec): Promise<string> {
  const r = await h.kilnBuild(spec);
  assert.equal(r.code, 0, `parent image: ${r.stderr}`);
  return r.tag;
}

/** busybox with /etc/alpine-release, as the Go tests' alpine. */
let alpine: Promise<string> | undefined;
function alpineImage(): Promise<string> {
  alpine ??= parent({ dockerfile: 'FROM busybox\nRUN echo 3.21.0 > /etc/alpine-release\n' });
  return alpine;
}

/** A stored image as an OCI layout directory (the OCI exporter's tar, unpacked), removed after the file's tests. */
async function savedLayout(tag: string): Promise<{ dir: string; index: { manifests: { mediaType: string; digest: string; size: number }[] } }> {
  const t = await tempDir('kiln-bkport-oci-');
  cleanups.push(t.cleanup);
  const tar = path.join(t.dir, 'out.tar');
  const saved = await h.kilnCommand(['save', '--format', 'oci', '-o', tar, tag]);
  assert.equal(saved.code, 0, saved.stderr);
  const dir = path.join(t.dir, 'layout');
  await fs.mkdir(dir);
  const x = await runCommand('tar', ['-xf', tar, '-C', dir]);
  assert.equal(x.code, 0, x.stderr);
  await fs.rm(tar);
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: { mediaType: string; digest: string; size: number }[] };
  assert.equal(index.manifests.length, 1);
  return { dir, index };
}

/** An image built and exported as an OCI layout directory; its manifest digest. */
async function ociLayout(spec: BuildSpec): Promise<{ dir: string; digest: string }> {
  const { dir, index } = await savedLayout(await parent(spec));
  return { dir, digest: index.manifests[0].digest };
}
const cleanups: Array<() => Promise<void>> = [];
process.on('beforeExit', () => void Promise.all(cleanups.splice(0).map((c) => c())));

function contexts(map: Record<string, string>): string[] {
  return Object.entries(map).flatMap(([k, v]) => ['--build-context', `${k}=${v}`]);
}

async function configOf(tag: string): Promise<{ created?: string; config?: { Env?: string[]; WorkingDir?: string } }> {
  const r = await h.kilnCommand(['inspect', tag]);
  assert.equal(r.code, 0, r.stderr);
  const parsed = JSON.parse(r.stdout) as unknown;
  const first = (Array.isArray(parsed) ? parsed[0] : parsed) as Record<string, unknown>;
  return (first.config ?? first.Config ?? first) as { created?: string; config?: { Env?: string[]; WorkingDir?: string } };
}

port('testNamedImageContext', async () => {
  const alp = await alpineImage();
  let img = await h.kiln({
    dockerfile: 'FROM busybox AS base\nRUN cat /etc/alpine-release > /out\nFROM scratch\nCOPY --from=base /out /\n',
    kilnArgs: contexts({ busybox: `docker-image://${alp}` }),
  });
  assert.ok(readImageFile(img, 'out').length > 0, 'busybox was replaced by the alpine image');

  // an image with custom envs
  const target = await parent({ dockerfile: `FROM ${alp}\nENV PATH=/foobar:$PATH\nENV FOOBAR=foobar\n` });
  img = await h.kiln({
    dockerfile: [
      'FROM busybox AS base',
      'RUN cat /etc/alpine-release > /out',
      'RUN env | grep PATH > /env_path',
      'RUN env | grep FOOBAR > /env_foobar',
      'FROM scratch',
      'COPY --from=base /out /',
      'COPY --from=base /env_path /',
      'COPY --from=base /env_foobar /',
      '',
    ].join('\n'),
    kilnArgs: contexts({ busybox: `docker-image://${target}` }),
  });
  assert.ok(readImageFile(img, 'out').length > 0);
  assert.equal(readImageFile(img, 'env_foobar').trim(), 'FOOBAR=foobar');
  assert.ok(readImageFile(img, 'env_path').includes('/foobar:'));

  // replacing a stage that is based on another stage (moby/buildkit#5578): its own
  // instructions are not run
  await h.kiln({
    dockerfile: 'FROM busybox AS parent\nFROM parent AS base\nRUN echo base > /out\nFROM base\nRUN [ -f /etc/alpine-release ]\nRUN [ ! -f /out ]\n',
    kilnArgs: contexts({ base: `docker-image://${target}` }),
  });
});

port('testNamedImageContextPlatform', async () => {
  // A base whose name points at an index: the host's platform and one whose manifest is not
  // there. The named context must be resolved for the FROM's platform ($BUILDPLATFORM), not
  // the target's: picking the target's entry would fail on the missing manifest.
  const { dir, index } = await savedLayout(await parent({ dockerfile: 'FROM busybox\n' }));
  const host = index.manifests[0];
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const multi = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: host.mediaType, digest: host.digest, size: host.size, platform: { os: 'linux', architecture: arch } },
      { mediaType: host.mediaType, digest: `sha256:${'0'.repeat(64)}`, size: 100, platform: { os: 'darwin', architecture: 'ppc64le' } },
    ],
  };
  const bytes = Buffer.from(JSON.stringify(multi));
  const { createHash } = await import('node:crypto');
  const hex = createHash('sha256').update(bytes).digest('hex');
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', hex), bytes);
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: multi.mediaType, digest: `sha256:${hex}`, size: bytes.length }] }),
  );
  const r = await h.kilnBuild({
    dockerfile: 'FROM --platform=$BUILDPLATFORM busybox AS target\nRUN echo hello\n',
    kilnArgs: [...contexts({ busybox: `oci-layout://${dir}@sha256:${hex}` }), '--platform', 'darwin/ppc64le'],
  });
  assert.equal(r.code, 0, r.stderr);
});

port('testNamedImageContextTimestamps', async () => {
  const alp = await alpineImage();
  const base = await parent({ dockerfile: `FROM ${alp}\nRUN echo foo >> /test\n` });
  // kiln's created time has whole seconds (BuildKit's has nanoseconds): on a fast machine both
  // builds can fall in one second, so the derived one starts in the next
  const baseSecond = Math.floor(Date.parse((await configOf(base)).created!) / 1000);
  while (Math.floor(Date.now() / 1000) <= baseSecond) await new Promise((r) => setTimeout(r, 50));
  const derived = await parent({ dockerfile: 'FROM alpine\nRUN echo foo >> /test\n', kilnArgs: contexts({ alpine: `docker-image://${base}` }) });
  const a = Date.parse((await configOf(base)).created!);
  const b = Date.parse((await configOf(derived)).created!);
  assert.notEqual(a, b);
  assert.ok(b - a > 0, `derived ${b} after base ${a}`);
  assert.ok(b - a < 10 * 60 * 1000);
});

port('testNamedImageContextScratch', async () => {
  const img = await h.kiln({
    dockerfile: 'FROM busybox AS build\nCOPY <<EOF /out\nhello world!\nEOF\n',
    kilnArgs: contexts({ busybox: 'docker-image://scratch' }),
  });
  const names = [...img.fs.keys()].filter((p) => p !== '/');
  assert.deepEqual(names, ['/out']);
  assert.equal(readImageFile(img, 'out'), 'hello world!\n');
});

port('testNamedLocalContext', async () => {
  const t = await tempDir('kiln-bkport-local-');
  cleanups.push(t.cleanup);
  await fs.writeFile(path.join(t.dir, 'out'), 'dummy-result', { mode: 0o600 });
  await fs.writeFile(path.join(t.dir, 'out2'), 'dummy-result', { mode: 0o600 });
  await fs.writeFile(path.join(t.dir, '.dockerignore'), 'out2\n', { mode: 0o600 });
  const img = await h.kiln({
    dockerfile: 'FROM busybox AS base\nRUN cat /etc/alpine-release > /out\nFROM scratch\nCOPY --from=base /o* /\n',
    kilnArgs: contexts({ base: t.dir }),
  });
  assert.equal(readImageFile(img, 'out'), 'dummy-result');
  assert.ok(!hasEntry(img, 'out2'), "the named context's .dockerignore leaves out2 out");
});

port('testNamedOCILayoutContext', async () => {
  const { dir, digest } = await ociLayout({
    dockerfile: 'FROM busybox:latest\nWORKDIR /test\nRUN sh -c "echo -n first > out"\nRUN sh -c "echo -n second > out2"\nENV foo=bar\n',
  });
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS base',
      'RUN cat /etc/alpine-release > out',
      '',
      'FROM foo AS imported',
      'RUN echo -n $foo > outfoo',
      '',
      'FROM scratch',
      'COPY --from=base /test/o* /',
      'COPY --from=imported /test/outfoo /',
      '',
    ].join('\n'),
    kilnArgs: contexts({ base: `oci-layout://${dir}@${digest}`, foo: `oci-layout://${dir}@${digest}` }),
  });
  assert.equal(readImageFile(img, 'out'), 'first');
  assert.equal(readImageFile(img, 'out2'), 'second');
  assert.equal(readImageFile(img, 'outfoo'), 'bar');
});

port('testNamedOCILayoutContextExport', async () => {
  const { dir, digest } = await ociLayout({ dockerfile: 'FROM scratch\nWORKDIR /test\nENV foo=bar\n' });
  const tag = await parent({ dockerfile: 'FROM nonexistent AS base\n', kilnArgs: contexts({ nonexistent: `oci-layout://${dir}@${digest}` }) });
  // exported as the Go test does (an OCI archive), its config read back from the archive
  const { dir: x, index } = await savedLayout(tag);
  const blob = async (d: string) => JSON.parse(await fs.readFile(path.join(x, 'blobs', 'sha256', d.slice('sha256:'.length)), 'utf8')) as Record<string, unknown>;
  const manifest = (await blob(index.manifests[0].digest)) as { config: { digest: string } };
  const cfg = (await blob(manifest.config.digest)) as { config: { WorkingDir?: string; Env?: string[] } };
  assert.equal(cfg.config.WorkingDir, '/test');
  assert.ok(cfg.config.Env?.includes('foo=bar'));
});

port('testNamedFilteredContext', async () => {
  // BuildKit counts the bytes sent of the context "foo": a COPY --from or a mount of /foo
  // sends only /foo, a stage built FROM foo sends it whole. kiln reads the context in
  // place; what it reads is what its steps are keyed on: changing the big file "bar" must
  // leave the steps that read only /foo cached, and re-run the one that took all of it.
  const t = await tempDir('kiln-bkport-filtered-');
  cleanups.push(t.cleanup);
  await fs.writeFile(path.join(t.dir, 'foo'), 'foo', { mode: 0o600 });
  await fs.writeFile(path.join(t.dir, 'bar'), Buffer.alloc(4096 * 1000), { mode: 0o600 });
  const alp = await alpineImage();
  const base = [
    'FROM scratch AS copy_from',
    'COPY --from=foo /foo /',
    '',
    `FROM ${alp} AS run_mount`,
    'RUN --mount=from=foo,src=/foo,target=/in/foo cp /in/foo /foo',
    '',
    'FROM foo AS image_source',
    `COPY --from=${alp} / /`,
    'RUN cat /foo > /bar',
    '',
    'FROM scratch AS all',
    'COPY --link --from=copy_from /foo /foo.b',
    'COPY --link --from=run_mount /foo /foo.c',
    'COPY --link --from=image_source /bar /foo.d',
    '',
  ].join('\n');
  const full = `FROM scratch AS foo\nCOPY <<EOF /foo\ntest\nEOF\n${base}`;
  for (const [variant, dockerfile] of [
    ['new', base],
    ['replace', full],
  ] as const) {
    const ctx = await h.context({ dockerfile });
    const build = async (target: string): Promise<ImageResult> => {
      const r = await h.kilnBuild({ dockerfile, target, kilnArgs: contexts({ foo: t.dir }) }, ctx);
      assert.equal(r.code, 0, `${variant} ${target}: ${r.stderr}`);
      return h.kilnImage(r.tag);
    };
    for (const target of ['run_mount', 'copy_from', 'image_source', 'all']) {
      const img = await build(target);
      // the named context wins over the stage "foo" of the replace variant
      if (target !== 'image_source') assert.equal(readImageFile(img, target === 'all' ? 'foo.b' : 'foo'), 'foo', `${variant} ${target}`);
      if (target === 'all') {
        assert.equal(readImageFile(img, 'foo.c'), 'foo');
        assert.equal(readImageFile(img, 'foo.d'), 'foo');
      }
    }
    await fs.writeFile(path.join(t.dir, 'bar'), Buffer.alloc(4096 * 1000, variant === 'new' ? 1 : 2));
    const rerun = async (target: string): Promise<string> => {
      const r = await h.kilnBuild({ dockerfile, target, kilnArgs: contexts({ foo: t.dir }) }, ctx);
      assert.equal(r.code, 0, r.stderr);
      return r.stderr;
    };
    for (const target of ['run_mount', 'copy_from']) {
      const out = await rerun(target);
      assert.doesNotMatch(out, /#\d+ DONE \d/, `${variant} ${target}: a change to bar, which the step does not read, re-ran it:\n${out}`);
    }
    assert.match(await rerun('image_source'), /RUN cat \/foo > \/bar\n#\d+ DONE/, `${variant}: the stage built FROM foo reads all of it`);
  }
});

port('testEagerNamedContextLookup', async () => {
  const alp = await alpineImage();
  const img = await h.kiln({
    dockerfile: `FROM broken AS notused\n\nFROM ${alp} AS base\nRUN echo "base" > /foo\n\nFROM busybox AS otherstage\n\nFROM scratch\nCOPY --from=base /foo /foo\n`,
    kilnArgs: contexts({ notused: 'docker-image://docker.io/library/nosuchimage:latest', busybox: 'docker-image://docker.io/library/dontexist:latest' }),
  });
  assert.equal(readImageFile(img, 'foo'), 'base\n');
});

port('testOnBuildNamedContext', async () => {
  const { dir, digest } = await ociLayout({ dockerfile: 'FROM busybox:latest\nONBUILD COPY --from=otherstage /testfile /out/foo\n' });
  const alp = await alpineImage();
  const img = await h.kiln({
    dockerfile: `FROM ${alp} AS otherstage\nRUN echo -n "hello" > /testfile\n\nFROM base AS inputstage\n\nFROM scratch\nCOPY --from=inputstage /out/foo /bar\n`,
    kilnArgs: contexts({ base: `oci-layout://${dir}@${digest}` }),
  });
  assert.equal(readImageFile(img, 'bar'), 'hello');
});
