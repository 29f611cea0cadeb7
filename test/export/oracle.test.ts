/**
 * The tar and local exporters against docker 20.10's BuildKit (`docker build -o type=tar` and
 * `-o type=local`): the same Dockerfile from the same busybox base (kiln's, loaded into docker
 * under a name of this process), the exported trees compared entry by entry (path, type,
 * mode, owner, link target, content, hard-link groups) and the tar's member order. Build
 * times differ between the two builds, so mtimes are compared only where the Dockerfile sets
 * them. Skipped without root or a running dockerd (never started here).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { build } from '../../src/build.js';
import { localExporter } from '../../src/export/local.js';
import { saveImages } from '../../src/export/save.js';
import { tarExporter } from '../../src/export/tar.js';
import { ContentStore } from '../../src/oci/store.js';
import { dockerCli, isRoot, runCommand, tempDir, workspace, type Workspace } from '../helpers.js';
import { comparable, CONTEXT_FILES, dirTree, richDockerfile, tarTree, type Tree } from './trees.js';

function dockerReady(): boolean {
  if (!isRoot() || !existsSync(dockerCli)) return false;
  return spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

const skip = !isRoot() ? 'RUN and overlayfs need root' : !dockerReady() ? 'no running docker 20.10 daemon' : false;

/** The tree without build times: what two builds of one Dockerfile must agree on. */
function timeless(tree: Tree): ReturnType<typeof comparable> {
  const c = comparable(tree);
  for (const [p, n] of Object.entries(c.nodes)) c.nodes[p] = { ...n, mtime: p === 'data/sub/old' ? n.mtime : 0 };
  return c;
}

describe('exporters against BuildKit', { skip }, () => {
  let ws: Workspace;
  let work: { dir: string; cleanup: () => Promise<void> };
  let contextDir: string;
  const base = `kiln-export-oracle-${process.pid}:base`;

  before(async () => {
    ws = await workspace();
    work = await tempDir('kiln-export-oracle-');
    // kiln's busybox, under a name of this process: docker's own busybox:latest is not touched
    const store = await ContentStore.open(ws.root);
    await store.setRef(base, (await store.resolve('busybox:latest'))!);
    const archive = path.join(work.dir, 'base.tar');
    await saveImages(store, [base], archive);
    const loaded = await runCommand(dockerCli, ['load', '-i', archive]);
    assert.equal(loaded.code, 0, loaded.stderr);
    contextDir = await ws.context({ Dockerfile: richDockerfile(base), ...CONTEXT_FILES });
  });
  after(async () => {
    await runCommand(dockerCli, ['rmi', base]);
    await work?.cleanup();
    await ws?.cleanup();
  });

  async function docker(output: string): Promise<void> {
    const r = await runCommand(dockerCli, ['build', '--progress', 'plain', '-o', output, contextDir], { env: { DOCKER_BUILDKIT: '1' }, timeoutMs: 600_000 });
    assert.equal(r.code, 0, r.stderr.split('\n').slice(-20).join('\n'));
  }

  it('the tar export holds what BuildKit\'s does, in the same order', async () => {
    const kilnTar = path.join(work.dir, 'kiln.tar');
    const dockerTar = path.join(work.dir, 'docker.tar');
    await build({ root: ws.root, contextDir, exporters: [tarExporter({ dest: kilnTar })] });
    await docker(`type=tar,dest=${dockerTar}`);
    const [k, d] = [await tarTree(kilnTar), await tarTree(dockerTar)];
    assert.deepEqual(timeless(k.tree), timeless(d.tree));
    assert.deepEqual(k.order, d.order);
  });

  it('the local export writes what BuildKit\'s does, owned by the exporting user', async () => {
    const kilnDir = path.join(work.dir, 'kiln-local');
    const dockerDir = path.join(work.dir, 'docker-local');
    await build({ root: ws.root, contextDir, exporters: [localExporter({ dest: kilnDir })] });
    await docker(`type=local,dest=${dockerDir}`);
    const [k, d] = [await dirTree(kilnDir), await dirTree(dockerDir)];
    assert.deepEqual(timeless(k), timeless(d));
    assert.ok((await fsp.readdir(kilnDir)).includes('copied'));
  });
});
