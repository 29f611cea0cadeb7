/**
 * kiln build --push against a real docker-registry, read back by peers: the metadata file
 * names the pushed digest, skopeo copies the image, docker pulls and runs it, and two fresh
 * roots building the same Dockerfile with SOURCE_DATE_EPOCH push the same manifest.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dockerCli, haveTool, isRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { skipUnlessRegistry, startRegistry, type Registry } from './harness.js';
import { registryTags } from './push-fixtures.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(t: { skip(reason: string): void }): Promise<{ reg: Registry; ws: Workspace } | undefined> {
  if (skipUnlessRegistry(t as never)) return undefined;
  if (!isRoot()) {
    t.skip('RUN needs root (runc)');
    return undefined;
  }
  const reg = await startRegistry();
  cleanups.push(() => reg.stop());
  const ws = await workspace();
  cleanups.push(() => ws.cleanup());
  return { reg, ws };
}

const DOCKERFILE = 'FROM busybox\nRUN echo "made by RUN" > /made.txt && seq 1 20000 > /numbers.txt\nCOPY hello.txt /hello.txt\nCMD ["sh", "-c", "cat /made.txt /hello.txt; wc -l < /numbers.txt"]\n';

function dockerWorks(): boolean {
  return spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

test('kiln build --push: the metadata file and the printed reference name the pushed manifest; skopeo and docker read it', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const { reg, ws } = s;
  const ctx = await ws.context({ Dockerfile: DOCKERFILE, 'hello.txt': 'hello from kiln push\n' });
  const meta = path.join(ctx, 'meta.json');
  const ref = `${reg.host}/push-build/app:1`;
  const b = await runKiln(['build', '--progress', 'plain', '--push', '-t', ref, '--metadata-file', meta, ctx], { root: ws.root });
  assert.equal(b.code, 0, b.stderr);
  const m = new RegExp(`^pushed ${ref.replace(/[.]/g, '\\.')}@(sha256:[a-f0-9]{64})$`, 'm').exec(b.stderr);
  assert.ok(m, b.stderr);
  const pushed = m[1];
  const metadata = JSON.parse(await fs.readFile(meta, 'utf8')) as Record<string, unknown>;
  assert.equal(metadata['containerimage.digest'], pushed);
  assert.equal(metadata['image.name'], ref);
  assert.deepEqual(await registryTags(reg.url, 'push-build/app'), ['1']);

  // the local image: its name stays on the local manifest, the repo digest is recorded
  const images = await runKiln(['images', '--digests', `${reg.host}/push-build/app`], { root: ws.root });
  assert.match(images.stdout, new RegExp(`push-build/app\\s+1\\s+${pushed}\\s`));

  if (haveTool('skopeo')) {
    const inspect = await runCommand('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal((JSON.parse(inspect.stdout) as { Digest: string }).Digest, pushed);
    const raw = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    const manifest = JSON.parse(raw.stdout) as { layers: Array<{ mediaType: string }> };
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip'), raw.stdout);
    const out = await tempDir('kiln-push-oci-');
    cleanups.push(out.cleanup);
    const copy = await runCommand('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${path.join(out.dir, 'layout')}:app`]);
    assert.equal(copy.code, 0, copy.stderr);
  }

  if (!dockerWorks()) {
    t.diagnostic('dockerd not reachable: docker pull/run skipped');
    return;
  }
  try {
    const pull = await runCommand(dockerCli, ['pull', ref], { timeoutMs: 120_000 });
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stdout, new RegExp(`Digest: ${pushed}`));
    const run = await runCommand(dockerCli, ['run', '--rm', ref], { timeoutMs: 120_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'made by RUN\nhello from kiln push\n20000\n');
  } finally {
    await runCommand(dockerCli, ['rmi', '-f', ref]);
  }
});

test('two fresh roots building the same Dockerfile on the same base with SOURCE_DATE_EPOCH push the same manifest digest', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const { reg, ws } = s;
  // the second root gets the very same base image (an import records when it was made)
  const other = await tempDir('kiln-push-root-');
  cleanups.push(other.cleanup);
  const base = path.join(other.dir, 'busybox.tar');
  assert.equal((await runKiln(['save', '-o', base, 'busybox:latest'], { root: ws.root })).code, 0);
  const rootB = path.join(other.dir, 'root');
  const load = await runKiln(['load', '-i', base], { root: rootB });
  assert.equal(load.code, 0, load.stderr);
  const ctx = await ws.context({ Dockerfile: DOCKERFILE, 'hello.txt': 'same everywhere\n' });
  const digests: string[] = [];
  for (const [i, root] of [ws.root, rootB].entries()) {
    const b = await runKiln(['build', '-q', '--push', '-t', `${reg.host}/repro/r${i}:1`, ctx], { root, env: { SOURCE_DATE_EPOCH: '1700000000' } });
    assert.equal(b.code, 0, b.stderr);
    const meta = await runKiln(['images', '--format', 'json', `${reg.host}/repro/r${i}`], { root });
    const row = JSON.parse(meta.stdout.trim()) as { RepoDigests: string[] };
    digests.push(row.RepoDigests[0].split('@')[1]);
  }
  assert.equal(digests[0], digests[1], 'the same build pushes the same manifest from any root');
  assert.deepEqual(await registryTags(reg.url, 'repro/r1'), ['1']);
});

test('kiln build --push without -t is a clear error', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const ctx = await s.ws.context({ Dockerfile: 'FROM busybox\n' });
  const b = await runKiln(['build', '--push', ctx], { root: s.ws.root });
  assert.equal(b.code, 1);
  assert.match(b.stderr, /--push needs a name to push to/);
});
