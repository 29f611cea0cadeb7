/**
 * Extended attributes, binary ones included (security.capability as setcap writes it, bytes
 * that are not UTF-8), survive a real build: COPY from the context and between stages (with
 * --chown too), a RUN's copy-up, kiln import, kiln load on a fresh root, and every export:
 * docker and OCI archives, a registry push read back by skopeo, an OCI layout unpacked by
 * umoci, and docker 20.10 building on the image. Layers are read with GNU tar (--xattrs) and
 * getfattr, not with kiln's reader.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { dockerCli, haveTool, isRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry } from '../registry/harness.js';
import { tarStream } from '../../src/oci/tar.js';
import { exportStoredImage, localExporter, tarExporter } from '../../src/index.js';

const skip = isRoot() && haveTool('setcap') && haveTool('setfattr') ? false : 'needs root, setcap and setfattr';

/** cap_setuid,cap_net_raw+ep (the 0x80 byte is not UTF-8 on its own). */
const CAPS = 'cap_setuid,cap_net_raw+ep';
const CAP_HEX = '0x0100000280200000000000000000000000000000';
const RAW_HEX = '0xff00fe80c3280a3d';

type Attrs = Record<string, string>;

/** Every xattr under `dir` (relative path → name → hex), as getfattr reads them. */
function readAttrs(dir: string): Map<string, Attrs> {
  const out = new Map<string, Attrs>();
  const text = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', dir], { maxBuffer: 1 << 26 }).toString();
  let cur: Attrs | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = {};
      out.set(path.relative(dir, line.slice(8)), cur);
    } else if (cur && line.includes('=')) {
      const eq = line.indexOf('=');
      cur[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return out;
}

/** A layer tar (any compression) unpacked by GNU tar with xattrs, then read with getfattr. */
async function layerAttrs(layer: string, scratch: string): Promise<Map<string, Attrs>> {
  const dir = await fs.mkdtemp(path.join(scratch, 'layer-'));
  const r = await runCommand('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xf', layer, '-C', dir]);
  assert.equal(r.code, 0, r.stderr);
  return readAttrs(dir);
}

/** The layers of a docker archive (kiln save, docker save), base first. */
async function dockerArchiveLayers(archive: string, scratch: string): Promise<string[]> {
  const dir = await fs.mkdtemp(path.join(scratch, 'archive-'));
  assert.equal((await runCommand('tar', ['-xf', archive, '-C', dir])).code, 0);
  const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  return manifest[0].Layers.map((l) => path.join(dir, l));
}

/** The layers of an OCI layout directory's only image, base first. */
async function layoutLayers(dir: string): Promise<string[]> {
  const blob = (d: string) => path.join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await fs.readFile(blob(index.manifests[0].digest), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => blob(l.digest));
}

/** What the image's layers say of `file` (the topmost layer holding it). */
async function attrsOf(layers: string[], file: string, scratch: string): Promise<Attrs | undefined> {
  for (const l of [...layers].reverse()) {
    const m = await layerAttrs(l, scratch);
    if (m.has(file)) return m.get(file);
  }
  return undefined;
}

function assertCaps(attrs: Attrs | undefined, what: string): void {
  assert.equal(attrs?.['security.capability'], CAP_HEX, `${what}: security.capability`);
  assert.equal(attrs?.['user.raw'], RAW_HEX, `${what}: user.raw`);
  assert.equal(attrs?.['user.text'], '0x706c61696e', `${what}: user.text`);
}

describe('extended attributes through builds, imports, loads and exports', { skip }, () => {
  let ws: Workspace;
  let scratch: string;
  let cleanScratch: () => Promise<void>;
  let ctx: string;
  before(async () => {
    ws = await workspace();
    ({ dir: scratch, cleanup: cleanScratch } = await tempDir('kiln-xattr-'));
    ctx = await ws.context({
      Dockerfile: [
        'FROM busybox:latest AS a',
        'COPY ping /bin/ping2',
        'RUN touch /bin/ping2',
        'FROM busybox:latest',
        'COPY --from=a /bin/ping2 /usr/bin/ping',
        'COPY --chown=1000:1000 --from=a /bin/ping2 /usr/bin/ping-owned',
        '',
      ].join('\n'),
      ping: '#!/bin/sh\necho ping\n',
    });
    const ping = path.join(ctx, 'ping');
    await fs.chmod(ping, 0o755);
    execFileSync('setcap', [CAPS, ping]);
    execFileSync('setfattr', ['-n', 'user.raw', '-v', RAW_HEX, ping]);
    execFileSync('setfattr', ['-n', 'user.text', '-v', 'plain', ping]);
    const r = await runKiln(['build', '--progress', 'plain', '-t', 'caps:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await cleanScratch?.();
    await ws?.cleanup();
  });

  async function saved(tag: string, root = ws.root, format: 'docker' | 'oci' = 'docker'): Promise<string> {
    const out = path.join(await fs.mkdtemp(path.join(scratch, 'save-')), `img.tar`);
    const r = await runKiln(['save', '--format', format, '-o', out, tag], { root });
    assert.equal(r.code, 0, r.stderr);
    return out;
  }

  it('survive COPY from the context, a RUN copy-up, COPY --from between stages and COPY --chown', async () => {
    const layers = await dockerArchiveLayers(await saved('caps:1'), scratch);
    assertCaps(await attrsOf(layers, 'usr/bin/ping', scratch), 'COPY --from');
    assertCaps(await attrsOf(layers, 'usr/bin/ping-owned', scratch), 'COPY --chown --from (set after the chown, which drops capabilities)');
  });

  it('survive ADD of a local archive whose PAX records hold them', async () => {
    const chunks: Buffer[] = [];
    const entries = [{ path: 'f', type: 'file' as const, mode: 0o755, uid: 0, gid: 0, mtime: 1, content: Buffer.from('x'), xattrs: { 'security.capability': Buffer.from(CAP_HEX.slice(2), 'hex'), 'user.raw': Buffer.from(RAW_HEX.slice(2), 'hex'), 'user.text': 'plain' } }];
    for await (const c of tarStream(entries)) chunks.push(c);
    const add = await ws.context({ Dockerfile: 'FROM busybox:latest\nADD t.tar /x/\n' });
    await fs.writeFile(path.join(add, 't.tar'), Buffer.concat(chunks));
    const b = await runKiln(['build', '-q', '-t', 'caps-add:1', add], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    assertCaps(await attrsOf(await dockerArchiveLayers(await saved('caps-add:1'), scratch), 'x/f', scratch), 'ADD archive');
  });

  it('survive kiln import of a root filesystem tarball, and a COPY --from the imported image', async () => {
    const rootfs = await fs.mkdtemp(path.join(scratch, 'rootfs-'));
    await fs.mkdir(path.join(rootfs, 'bin'));
    await fs.copyFile(path.join(ctx, 'ping'), path.join(rootfs, 'bin', 'ping'));
    execFileSync('setcap', [CAPS, path.join(rootfs, 'bin', 'ping')]);
    execFileSync('setfattr', ['-n', 'user.raw', '-v', RAW_HEX, path.join(rootfs, 'bin', 'ping')]);
    execFileSync('setfattr', ['-n', 'user.text', '-v', 'plain', path.join(rootfs, 'bin', 'ping')]);
    const tarball = path.join(scratch, 'rootfs.tar');
    assert.equal((await runCommand('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-cf', tarball, '-C', rootfs, '.'])).code, 0);
    const imp = await runKiln(['import', tarball, 'imported:1'], { root: ws.root });
    assert.equal(imp.code, 0, imp.stderr);
    assertCaps(await attrsOf(await dockerArchiveLayers(await saved('imported:1'), scratch), 'bin/ping', scratch), 'kiln import');
    const use = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY --from=imported:1 /bin/ping /from-imported\n' });
    const b = await runKiln(['build', '-q', '-t', 'from-imported:1', use], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    assertCaps(await attrsOf(await dockerArchiveLayers(await saved('from-imported:1'), scratch), 'from-imported', scratch), 'COPY --from an imported image');
  });

  it('survive kiln load on a fresh root: the unpacked layers, and steps built on them', async () => {
    const archive = await saved('caps:1');
    const fresh = await workspace();
    try {
      const l = await runKiln(['load', '-i', archive], { root: fresh.root });
      assert.equal(l.code, 0, l.stderr);
      const use = await fresh.context({ Dockerfile: 'FROM caps:1 AS s\nRUN touch /usr/bin/ping\nFROM busybox:latest\nCOPY --from=s /usr/bin/ping /copied\nCOPY --from=caps:1 /usr/bin/ping /direct\n' });
      const b = await runKiln(['build', '-q', '-t', 'loaded-use:1', use], { root: fresh.root });
      assert.equal(b.code, 0, b.stderr);
      const layers = await dockerArchiveLayers(await saved('loaded-use:1', fresh.root), scratch);
      assertCaps(await attrsOf(layers, 'copied', scratch), 'RUN over a loaded image, then COPY --from');
      assertCaps(await attrsOf(layers, 'direct', scratch), 'COPY --from a loaded image');
    } finally {
      await fresh.cleanup();
    }
  });

  it('survive the OCI archive, and umoci unpacks them', async () => {
    const archive = await saved('caps:1', ws.root, 'oci');
    const layout = await fs.mkdtemp(path.join(scratch, 'oci-'));
    assert.equal((await runCommand('tar', ['-xf', archive, '-C', layout])).code, 0);
    assertCaps(await attrsOf(await layoutLayers(layout), 'usr/bin/ping', scratch), 'OCI archive');
    if (haveTool('umoci')) {
      const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
      const ref = index.manifests[0].annotations?.['org.opencontainers.image.ref.name'] ?? 'latest';
      const bundle = path.join(scratch, 'bundle');
      const u = await runCommand('umoci', ['unpack', '--image', `${layout}:${ref}`, bundle]);
      assert.equal(u.code, 0, u.stderr);
      assertCaps(readAttrs(path.join(bundle, 'rootfs')).get('usr/bin/ping'), 'umoci unpack');
    }
  });

  it('survive the filesystem exports: a tar of the image and a local directory', async () => {
    const tarFile = path.join(scratch, 'fs.tar');
    await exportStoredImage(ws.root, 'caps:1', tarExporter({ dest: tarFile }));
    assertCaps((await layerAttrs(tarFile, scratch)).get('usr/bin/ping'), 'tar exporter');
    const dest = path.join(scratch, 'local');
    await exportStoredImage(ws.root, 'caps:1', localExporter({ dest, owners: 'image' }));
    assertCaps(readAttrs(dest).get('usr/bin/ping'), 'local exporter');
  });

  it('survive a registry push, read back by skopeo', { skip: haveRegistry() && haveTool('skopeo') ? false : 'needs docker-registry and skopeo' }, async (t) => {
    const reg = await startRegistry();
    t.after(() => reg.stop());
    const ref = `${reg.host}/xattr/caps:1`;
    assert.equal((await runKiln(['tag', 'caps:1', ref], { root: ws.root })).code, 0);
    const p = await runKiln(['push', ref], { root: ws.root });
    assert.equal(p.code, 0, p.stderr);
    const layout = path.join(scratch, 'skopeo');
    const c = await runCommand('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:caps`]);
    assert.equal(c.code, 0, c.stderr);
    assertCaps(await attrsOf(await layoutLayers(layout), 'usr/bin/ping', scratch), 'pushed, pulled by skopeo');
  });

  it('reach docker 20.10, whose BuildKit copies the capability as kiln does', { skip: haveTool(dockerCli) ? false : 'no docker' }, async (t) => {
    const info = await runCommand(dockerCli, ['info', '--format', '{{.ServerVersion}}']);
    if (info.code !== 0) return t.skip('dockerd is not running');
    const tag = `kiln-xattr-${process.pid}:1`;
    const built = `kiln-xattr-built-${process.pid}:1`;
    t.after(async () => {
      await runCommand(dockerCli, ['rmi', '-f', tag, built]);
    });
    const archive = await saved('caps:1');
    // docker loads it under the name kiln gave it, then the test's own name
    const load = await runCommand(dockerCli, ['load', '-i', archive]);
    assert.equal(load.code, 0, load.stderr);
    assert.equal((await runCommand(dockerCli, ['tag', 'caps:1', tag])).code, 0);
    await runCommand(dockerCli, ['rmi', 'caps:1']);
    const dctx = await ws.context({ Dockerfile: `FROM ${tag} AS s\nRUN touch /usr/bin/ping\nFROM ${tag}\nCOPY --from=s /usr/bin/ping /copied\n` });
    const b = await runCommand(dockerCli, ['build', '-q', '-t', built, dctx], { env: { DOCKER_BUILDKIT: '1' } });
    assert.equal(b.code, 0, b.stderr);
    const out = path.join(scratch, 'docker.tar');
    assert.equal((await runCommand(dockerCli, ['save', '-o', out, built])).code, 0);
    const layers = await dockerArchiveLayers(out, scratch);
    // the layer kiln made, as docker stores and saves it again
    assertCaps(await attrsOf(layers, 'usr/bin/ping', scratch), 'the kiln image as docker stores it');
    // docker 20.10's own layers (its graph driver's archive writer) keep security.capability
    // only; kiln keeps every xattr, as current BuildKit's containerd differ does
    const copied = await attrsOf(layers, 'copied', scratch);
    assert.equal(copied?.['security.capability'], CAP_HEX, 'docker BuildKit COPY --from keeps the capability byte for byte');
    const kilnSide = await ws.context({ Dockerfile: 'FROM caps:1 AS s\nRUN touch /usr/bin/ping\nFROM caps:1\nCOPY --from=s /usr/bin/ping /copied\n' });
    const k = await runKiln(['build', '-q', '-t', 'caps-copied:1', kilnSide], { root: ws.root });
    assert.equal(k.code, 0, k.stderr);
    const ours = await attrsOf(await dockerArchiveLayers(await saved('caps-copied:1'), scratch), 'copied', scratch);
    assert.equal(ours?.['security.capability'], copied?.['security.capability'], 'kiln and docker give the copy the same capability');
    assertCaps(ours, 'kiln COPY --from');
  });
});
