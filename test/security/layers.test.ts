/**
 * Hostile image layers, loaded with `kiln load` (a docker archive) or `kiln import`, then used by
 * a build (which unpacks them): `..` names, absolute names, entries below a symlink the same
 * layer made (to the host canary's path), hard links to paths outside the layer. Each is
 * refused with a clear error or lands inside the root, and the host canary stays untouched.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, isRoot, runKiln, tempDir } from '../helpers.js';
import { diffIdOf } from '../snapshot/tarutil.js';
import { assertCleanError, kilnListing, makeTar, securitySuite, type SecuritySuite, type TarSpec } from './harness.js';

const skip = isRoot() ? false : 'overlayfs and runc need root';

describe('image layers are unpacked inside their own directory', { skip }, () => {
  let suite: SecuritySuite;
  let work: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    suite = await securitySuite();
    work = await tempDir('kiln-sec-layers-');
  });
  after(async () => {
    await work.cleanup();
    await suite.cleanup();
  });

  /** `kiln load`s a docker archive of busybox plus one layer with these entries, as `name`. */
  const loadWithLayer = async (name: string, entries: TarSpec[]): Promise<void> => {
    const base = readFileSync(await busyboxRootfsTar());
    const evil = await makeTar(entries);
    const config = Buffer.from(
      JSON.stringify({ architecture: process.arch === 'arm64' ? 'arm64' : 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffIdOf(base), diffIdOf(evil)] } }),
    );
    const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
    const archive = await makeTar([
      { name: 'manifest.json', content: JSON.stringify([{ Config: configName, RepoTags: [name], Layers: ['base/layer.tar', 'evil/layer.tar'] }]) },
      { name: configName, content: config },
      { name: 'base/layer.tar', content: base },
      { name: 'evil/layer.tar', content: evil },
    ]);
    const file = path.join(work.dir, `${name.replace(/[:/]/g, '_')}.tar`);
    writeFileSync(file, archive);
    const r = await runKiln(['load', '-i', file], { root: suite.root });
    assert.equal(r.code, 0, r.stderr);
  };

  const buildOn = (image: string, tag: string) => suite.build({ Dockerfile: `FROM ${image}\nRUN echo built > /built\n` }, tag);

  it('a ".." entry is refused', async () => {
    await loadWithLayer('sec-layer-dotdot:1', [{ name: `../../${suite.canary.evil}/f`, content: 'x\n' }]);
    const { r } = await buildOn('sec-layer-dotdot:1', 'sec-l1:1');
    assertCleanError(r, /escapes the layer root with "\.\."/);
    suite.canary.verify();
  });

  it('an absolute entry lands inside the image', async () => {
    await loadWithLayer('sec-layer-abs:1', [{ name: `/tmp/${suite.canary.evil}/f`, content: 'abs\n' }]);
    const { r } = await buildOn('sec-layer-abs:1', 'sec-l2:1');
    assert.equal(r.code, 0, r.stderr);
    suite.canary.verify();
    const got = await kilnListing(suite.root, 'sec-l2:1', [`/tmp/${suite.canary.evil}`, '/built']);
    assert.match(got, new RegExp(`^/tmp/${suite.canary.evil}/f\\|regular file`, 'm'));
  });

  it('an entry below a symlink the layer made (to the host canary) is refused', async () => {
    await loadWithLayer('sec-layer-through:1', [
      { name: 'lnk', type: 'symlink', linkname: suite.canary.dir },
      { name: `lnk/${suite.canary.evil}`, content: 'through\n' },
      { name: 'lnk/keep.txt', content: 'overwritten\n' },
    ]);
    const { r } = await buildOn('sec-layer-through:1', 'sec-l3:1');
    assertCleanError(r, /goes through "lnk", which is a symlink: refusing to extract it/);
    suite.canary.verify();
  });

  it('hard links to paths outside the layer are refused', async () => {
    await loadWithLayer('sec-layer-hl:1', [{ name: 'hl', type: 'link', linkname: `../../../..${suite.canary.dir}/keep.txt` }]);
    assertCleanError((await buildOn('sec-layer-hl:1', 'sec-l4:1')).r, /escapes the layer root/);
    await loadWithLayer('sec-layer-hl-abs:1', [{ name: 'hl', type: 'link', linkname: `${suite.canary.dir}/keep.txt` }]);
    assertCleanError((await buildOn('sec-layer-hl-abs:1', 'sec-l5:1')).r, /hard link .*(not in the layer before it|does not exist in the layer)/);
    suite.canary.verify();
  });

  it('kiln import of a rootfs with a link out and an entry through it is refused at unpack', async () => {
    const file = path.join(work.dir, 'rootfs.tar');
    writeFileSync(
      file,
      await makeTar([
        { name: 'bin/', type: 'directory' },
        { name: 'out', type: 'symlink', linkname: suite.canary.dir },
        { name: `out/${suite.canary.evil}`, content: 'x\n' },
      ]),
    );
    const imp = await runKiln(['import', file, 'sec-import:1'], { root: suite.root });
    if (imp.code !== 0) {
      assertCleanError(imp, /out/); // refused at import already
    } else {
      const { r } = await suite.build({ Dockerfile: 'FROM sec-import:1\nCOPY Dockerfile /x\n' }, 'sec-l6:1');
      assertCleanError(r, /goes through "out", which is a symlink/);
    }
    suite.canary.verify();
  });
});
