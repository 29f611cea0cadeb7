/**
 * Reproducible by default: two builds of the same Dockerfile and context with SOURCE_DATE_EPOCH,
 * on fresh roots at different paths, from contexts at different paths with different file times,
 * under a different TZ, umask, hostname (unshare -u) and a wall clock three days later
 * (faketime), give the same manifest digest — with RUN steps that write files, make directories
 * and delete base files (whiteouts), COPY from the context and from a stage, WORKDIR. The same
 * holds after push: both roots push the same digest, which is the manifest digest of
 * `kiln save --format oci`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { haveTool, isRoot, kilnBin, runCommand, runKiln, tempDir, workspace, multiPlatformBusybox, type CliResult } from '../helpers.js';
import { skipUnlessRegistry, startRegistry } from '../registry/harness.js';
import { arm64Problem } from './multiplatform-helpers.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const EPOCH = '1700000000';

const REPRO_DOCKERFILE = `FROM busybox AS gen
WORKDIR /src/deep
RUN mkdir -p /out/a/b && echo generated > /out/a/b/file && ln -s file /out/a/b/link && ln /out/a/b/file /out/a/b/hard && ln /out/a/b/file /out/0first && touch /out/stamp && cp /bin/busybox /out/copied

FROM busybox
COPY --from=gen /out /from-stage
COPY app/ /app/
COPY top.txt /top.txt
ADD later.tar /unpacked/
RUN rm /bin/vi && mkdir -p /var/made/sub && echo made > /var/made/sub/f && ln /var/made/sub/f /var/made/a-link && chmod 0750 /var/made && touch /etc/passwd
WORKDIR /work/dir
RUN echo "$(pwd)" > here.txt
CMD ["sh"]
`;

const REPRO_FILES: Record<string, string> = {
  Dockerfile: REPRO_DOCKERFILE,
  'app/index.js': 'console.log("hi")\n',
  'app/lib/util.js': 'export const x = 1;\n',
  'app/empty/.keep': '',
  'top.txt': 'top\n',
};

/** Runs kiln under another hostname (unshare -u), umask 077, TZ and a clock `days` ahead (faketime). */
function runKilnElsewhere(args: string[], root: string, env: Record<string, string>, days = 3): Promise<CliResult> {
  const inner = [...(haveTool('faketime') ? ['faketime', '-f', `+${days}d`] : []), process.execPath, kilnBin, '--root', root, ...args];
  return runCommand('unshare', ['-u', 'sh', '-c', 'hostname kiln-repro-other && umask 077 && exec "$@"', 'sh', ...inner], { env: { TZ: 'Asia/Tokyo', ...env } });
}

/** A second root holding the same base image as `from` (saved and loaded: the base keeps its digest; `oci` keeps an index). */
async function rootWithSameBase(from: string, format: 'docker' | 'oci' = 'docker'): Promise<string> {
  const t = await tempDir('kiln-repro-root-');
  cleanups.push(t.cleanup);
  const base = path.join(t.dir, 'busybox.tar');
  const s = await runKiln(['save', '--format', format, '-o', base, 'busybox:latest'], { root: from });
  assert.equal(s.code, 0, s.stderr);
  const root = path.join(t.dir, 'nested', 'root');
  const l = await runKiln(['load', '-i', base], { root });
  assert.equal(l.code, 0, l.stderr);
  const a = await inspect(from, 'busybox:latest');
  const b = await inspect(root, 'busybox:latest');
  assert.match(a.digest, /^sha256:[a-f0-9]{64}$/);
  assert.equal(b.digest, a.digest, 'a loaded base keeps its digest');
  assert.equal(b.index?.digest, a.index?.digest, 'a loaded base index keeps its digest');
  return root;
}

/** The same files in another directory, every mtime and atime set to another time after SOURCE_DATE_EPOCH (older ones are kept, as BuildKit clamps). */
async function copyWithOtherTimes(ctx: string): Promise<string> {
  const t = await tempDir('kiln-repro-ctx-elsewhere-');
  cleanups.push(t.cleanup);
  const dest = path.join(t.dir, 'some', 'other', 'place');
  await fs.mkdir(path.dirname(dest), { recursive: true });
  const cp = await runCommand('cp', ['-a', ctx, dest]);
  assert.equal(cp.code, 0, cp.stderr);
  const touch = await runCommand('sh', ['-c', 'find "$1" -exec touch -h -d "2025-02-03 04:05:06" {} +', 'sh', dest]);
  assert.equal(touch.code, 0, touch.stderr);
  return dest;
}

async function inspect(root: string, name: string): Promise<{ digest: string; index?: { digest: string; manifests: Array<{ digest: string; platform?: { architecture: string } }> }; config: { created?: string; history?: Array<{ created?: string }> } }> {
  const r = await runKiln(['inspect', name], { root });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as never;
}

/** The manifest digest `kiln save --format oci` writes for name (its index.json's only entry). */
async function savedOciManifestDigest(root: string, name: string): Promise<string> {
  const t = await tempDir('kiln-repro-save-');
  cleanups.push(t.cleanup);
  const archive = path.join(t.dir, 'image.tar');
  const s = await runKiln(['save', '--format', 'oci', '-o', archive, name], { root });
  assert.equal(s.code, 0, s.stderr);
  const x = await runCommand('tar', ['-xOf', archive, 'index.json']);
  assert.equal(x.code, 0, x.stderr);
  const index = JSON.parse(x.stdout) as { manifests: Array<{ digest: string }> };
  assert.equal(index.manifests.length, 1, x.stdout);
  return index.manifests[0].digest;
}

test('the same Dockerfile and context on two fresh roots, hosts, clocks and time zones give the same digest, locally and pushed', { skip: isRoot() ? false : 'RUN needs root' }, async (t) => {
  if (!haveTool('faketime')) t.diagnostic('faketime missing (scripts/setup-host.sh installs it): the second build runs on the same clock');
  const ws = await workspace();
  cleanups.push(() => ws.cleanup());
  const ctxA = await ws.context(REPRO_FILES);
  // an archive ADD unpacks, its members dated after SOURCE_DATE_EPOCH
  const made = await runCommand('tar', ['--mtime=2030-01-01 00:00:00', '--owner=0', '--group=0', '-cf', 'later.tar', 'top.txt', 'app'], { cwd: ctxA });
  assert.equal(made.code, 0, made.stderr);
  // hard links in the context too (cp -a keeps them)
  await fs.link(path.join(ctxA, 'app', 'index.js'), path.join(ctxA, 'app', 'lib', 'again.js'));
  const ctxB = await copyWithOtherTimes(ctxA);
  const rootB = await rootWithSameBase(ws.root);

  const a = await runKiln(['build', '-q', '-t', 'repro:a', ctxA], { root: ws.root, env: { SOURCE_DATE_EPOCH: EPOCH, TZ: 'UTC' } });
  assert.equal(a.code, 0, a.stderr);
  const b = await runKilnElsewhere(['build', '-q', '-t', 'repro:b', ctxB], rootB, { SOURCE_DATE_EPOCH: EPOCH });
  assert.equal(b.code, 0, b.stderr);

  const ia = await inspect(ws.root, 'repro:a');
  const ib = await inspect(rootB, 'repro:b');
  assert.match(ia.digest, /^sha256:[a-f0-9]{64}$/);
  assert.equal(ib.digest, ia.digest, 'the same build gives the same manifest on another root, host, clock and TZ');
  assert.equal(ia.config.created, '2023-11-14T22:13:20Z');
  const own = (ia.config.history ?? []).slice(1);
  assert.ok(own.length >= 5, JSON.stringify(ia.config.history));
  for (const h of own) assert.equal(h.created, '2023-11-14T22:13:20Z');

  // every file time in the build's own layers is clamped
  const saved = await tempDir('kiln-repro-layers-');
  cleanups.push(saved.cleanup);
  const layout = path.join(saved.dir, 'layout');
  const archive = path.join(saved.dir, 'a.tar');
  assert.equal((await runKiln(['save', '--format', 'oci', '-o', archive, 'repro:a'], { root: ws.root })).code, 0);
  await fs.mkdir(layout);
  assert.equal((await runCommand('tar', ['-xf', archive, '-C', layout])).code, 0);
  const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string) => path.join(layout, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(await fs.readFile(blob(index.manifests[0].digest), 'utf8')) as { layers: Array<{ digest: string }> };
  for (const layer of manifest.layers.slice(1)) {
    const list = await runCommand('sh', ['-c', 'tar --full-time -tvzf "$1"', 'sh', blob(layer.digest)], { env: { TZ: 'UTC' } });
    assert.equal(list.code, 0, list.stderr);
    for (const line of list.stdout.trim().split('\n')) {
      const when = /(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)/.exec(line)?.[1];
      assert.ok(when && Date.parse(`${when.replace(' ', 'T')}Z`) / 1000 <= Number(EPOCH), `not clamped: ${line}`);
      assert.match(line, /^\S+ \d+\/\d+ /, 'no user or group names (tar shows numbers only when the names are empty)');
    }
    const head = await fs.readFile(blob(layer.digest)).then((buf) => buf.subarray(0, 10));
    assert.equal(head.readUInt32LE(4), 0, 'no time in the gzip header');
  }

  // pushed from either root: the registry's digest is the saved OCI manifest's
  if (skipUnlessRegistry(t)) return;
  const reg = await startRegistry();
  cleanups.push(() => reg.stop());
  const pa = await runKiln(['push', 'repro:a', `${reg.host}/repro/app:a`], { root: ws.root });
  assert.equal(pa.code, 0, pa.stderr);
  const pb = await runKilnElsewhere(['push', 'repro:b', `${reg.host}/repro/app:b`], rootB, {});
  assert.equal(pb.code, 0, pb.stderr);
  const digestOf = async (tag: string) => {
    const r = await fetch(`${reg.url}/v2/repro/app/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(r.status, 200);
    return String(r.headers.get('docker-content-digest'));
  };
  const da = await digestOf('a');
  const body = async (tag: string) => (await fetch(`${reg.url}/v2/repro/app/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json();
  assert.deepEqual(await body('b'), await body('a'), 'both roots push the same manifest');
  assert.equal(await digestOf('b'), da, 'both roots push the same manifest');
  assert.equal(await savedOciManifestDigest(ws.root, 'repro:a'), da, 'the registry digest is the saved OCI manifest digest');
  assert.equal(await savedOciManifestDigest(rootB, 'repro:b'), da);
});

test('a two-platform build (amd64 + arm64 RUN under emulation) gives the same index digest on another root, host, clock and TZ, locally and pushed', { skip: isRoot() ? false : 'RUN needs root' }, async (t) => {
  const problem = await arm64Problem();
  if (problem) {
    t.skip(`arm64 RUN cannot execute here: ${problem}`);
    return;
  }
  const ws = await workspace();
  cleanups.push(() => ws.cleanup());
  await multiPlatformBusybox(ws.root);
  const files = {
    ...REPRO_FILES,
    Dockerfile: [
      'FROM --platform=$BUILDPLATFORM busybox AS tools',
      'RUN mkdir -p /out && echo tool > /out/tool',
      'FROM busybox',
      'ARG TARGETPLATFORM',
      'COPY --from=tools /out /tools',
      'COPY app/ /app/',
      'RUN uname -m > /arch && echo "$TARGETPLATFORM" > /target && mkdir -p /var/made/sub && echo made > /var/made/sub/f && rm /bin/vi',
      'WORKDIR /work/dir',
      '',
    ].join('\n'),
  };
  const ctxA = await ws.context(files);
  const ctxB = await copyWithOtherTimes(ctxA);
  const rootB = await rootWithSameBase(ws.root, 'oci');
  const platforms = ['--platform', 'linux/amd64,linux/arm64'];
  const a = await runKiln(['build', '-q', ...platforms, '-t', 'mp:a', ctxA], { root: ws.root, env: { SOURCE_DATE_EPOCH: EPOCH, TZ: 'UTC' } });
  assert.equal(a.code, 0, a.stderr);
  const b = await runKilnElsewhere(['build', '-q', ...platforms, '-t', 'mp:b', ctxB], rootB, { SOURCE_DATE_EPOCH: EPOCH });
  assert.equal(b.code, 0, b.stderr);

  const ia = await inspect(ws.root, 'mp:a');
  const ib = await inspect(rootB, 'mp:b');
  assert.ok(ia.index, 'a two-platform build names an index');
  assert.deepEqual(ia.index.manifests.map((m) => m.platform?.architecture), ['amd64', 'arm64']);
  assert.equal(ib.index?.digest, ia.index.digest, 'the same index from another root, host, clock and TZ');

  if (skipUnlessRegistry(t)) return;
  const reg = await startRegistry();
  cleanups.push(() => reg.stop());
  assert.equal((await runKiln(['push', 'mp:a', `${reg.host}/repro/mp:a`], { root: ws.root })).code, 0);
  const pb = await runKilnElsewhere(['push', 'mp:b', `${reg.host}/repro/mp:b`], rootB, {});
  assert.equal(pb.code, 0, pb.stderr);
  const digestOf = async (tag: string) => {
    const r = await fetch(`${reg.url}/v2/repro/mp/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    assert.equal(r.status, 200);
    return String(r.headers.get('docker-content-digest'));
  };
  const da = await digestOf('a');
  assert.equal(await digestOf('b'), da, 'both roots push the same index');
  assert.equal(await savedOciManifestDigest(ws.root, 'mp:a'), da, 'the registry digest is the saved OCI index digest');
  // imagetools reads the pushed index and each platform's manifest and config from the registry
  const it = await runKiln(['imagetools', 'inspect', '--format', 'json', `${reg.host}/repro/mp:a`], { root: ws.root });
  assert.equal(it.code, 0, it.stderr);
  const seen = JSON.parse(it.stdout) as { manifest: { digest: string }; image: Record<string, { architecture: string }> };
  assert.equal(seen.manifest.digest, da);
  assert.deepEqual(Object.keys(seen.image), ['linux/amd64', 'linux/arm64']);
});
