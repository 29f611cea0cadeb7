/**
 * The whiteout and opaque-directory entries of a RUN's layer, compared header by header with
 * what docker 20.10's BuildKit writes for the same Dockerfile on the same base: a deleted
 * file is a regular `.wh.NAME` of mode 0600 owned by root; a directory removed and made again
 * gets `.wh..wh..opq` with the directory's permission bits and owner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { tarEntries } from '../../src/oci/tar.js';
import { dockerCli, haveTool, isRoot, runCommand, runKiln, tempDir, workspace } from '../helpers.js';

const DOCKERFILE = (base: string) =>
  [
    `FROM ${base}`,
    'RUN mkdir -p /opq/sub && echo a > /opq/a && chmod 0750 /opq && chown 12:34 /opq && echo x > /gone',
    'RUN rm /bin/ls /gone && rm -rf /opq && mkdir /opq && chmod 0710 /opq && chown 5:6 /opq && echo b > /opq/b',
    '',
  ].join('\n');

interface Marker {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

/** The whiteout entries of the last layer of a docker archive. */
async function whiteouts(archive: string, scratch: string): Promise<{ markers: Marker[]; opaqueTimes: number[] }> {
  const dir = await fs.mkdtemp(path.join(scratch, 'a-'));
  assert.equal((await runCommand('tar', ['-xf', archive, '-C', dir])).code, 0);
  const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const last = path.join(dir, manifest[0].Layers[manifest[0].Layers.length - 1]);
  const markers: Marker[] = [];
  const opaqueTimes: number[] = [];
  for await (const { header, stream } of tarEntries(createReadStream(last))) {
    stream.resume();
    const name = header.name.replace(/^\.\//, '');
    if (!path.posix.basename(name).startsWith('.wh.')) continue;
    markers.push({ name, type: header.type ?? '', mode: (header.mode ?? 0) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0, size: header.size ?? 0 });
    if (name.endsWith('.wh..wh..opq')) opaqueTimes.push(Math.floor((header.mtime?.getTime() ?? 0) / 1000));
  }
  return { markers: markers.sort((a, b) => a.name.localeCompare(b.name)), opaqueTimes };
}

test('whiteouts and opaque markers carry the modes and owners docker 20.10 writes', { skip: isRoot() ? false : 'RUN needs root' }, async (t) => {
  const ws = await workspace();
  const scratch = await tempDir('kiln-wh-');
  t.after(async () => {
    await scratch.cleanup();
    await ws.cleanup();
  });
  const ctx = await ws.context({ Dockerfile: DOCKERFILE('busybox:latest') });
  const built = await runKiln(['build', '-q', '-t', 'wh:1', ctx], { root: ws.root });
  assert.equal(built.code, 0, built.stderr);
  const kilnTar = path.join(scratch.dir, 'kiln.tar');
  assert.equal((await runKiln(['save', '-o', kilnTar, 'wh:1'], { root: ws.root })).code, 0);
  const ours = await whiteouts(kilnTar, scratch.dir);
  const expected: Marker[] = [
    { name: 'bin/.wh.ls', type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0 },
    { name: '.wh.gone', type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0 },
    { name: 'opq/.wh..wh..opq', type: 'file', mode: 0o710, uid: 5, gid: 6, size: 0 },
  ].sort((a, b) => a.name.localeCompare(b.name));
  assert.deepEqual(ours.markers, expected);
  assert.deepEqual(ours.opaqueTimes, [0]);

  const info = haveTool(dockerCli) ? await runCommand(dockerCli, ['info', '--format', '{{.ServerVersion}}']) : undefined;
  if (!info || info.code !== 0) return t.skip('no running dockerd: checked against the expectation only');
  // docker builds on the very busybox kiln has, under a name of this test's own
  const base = `kiln-wh-base-${process.pid}:1`;
  const tag = `kiln-wh-${process.pid}:1`;
  t.after(async () => {
    await runCommand(dockerCli, ['rmi', '-f', tag, base]);
  });
  assert.equal((await runKiln(['tag', 'busybox:latest', base], { root: ws.root })).code, 0);
  const baseTar = path.join(scratch.dir, 'base.tar');
  assert.equal((await runKiln(['save', '-o', baseTar, base], { root: ws.root })).code, 0);
  const load = await runCommand(dockerCli, ['load', '-i', baseTar]);
  assert.equal(load.code, 0, load.stderr);
  const dctx = await ws.context({ Dockerfile: DOCKERFILE(base) });
  const d = await runCommand(dockerCli, ['build', '-q', '-t', tag, dctx], { env: { DOCKER_BUILDKIT: '1' } });
  assert.equal(d.code, 0, d.stderr);
  const dockerTar = path.join(scratch.dir, 'docker.tar');
  assert.equal((await runCommand(dockerCli, ['save', '-o', dockerTar, tag])).code, 0);
  const theirs = await whiteouts(dockerTar, scratch.dir);
  assert.deepEqual(ours.markers, theirs.markers, 'the same whiteout entries as docker 20.10');
  assert.deepEqual(ours.opaqueTimes, theirs.opaqueTimes);
});
