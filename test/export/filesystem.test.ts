/**
 * The local and tar exporters through the library: a real build (runc over overlayfs), its
 * filesystem exported to a directory and to a tar, each compared with what the image's layers
 * say the filesystem is (the layers applied in order here, whiteouts and opaque directories
 * included): paths, types, modes, owners, link targets, contents, hard links, mtimes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { build } from '../../src/build.js';
import { KilnError } from '../../src/errors.js';
import { localExporter } from '../../src/export/local.js';
import { tarExporter } from '../../src/export/tar.js';
import type { Exporter } from '../../src/export/types.js';
import { ociArchiveExporter } from '../../src/export/oci-archive.js';
import { loadArchive } from '../../src/oci/archive.js';
import { importRootfs } from '../../src/oci/import.js';
import { tarEntries } from '../../src/oci/tar.js';
import { exportStoredImage, saveImages } from '../../src/export/save.js';
import { loadImage } from '../../src/oci/image.js';
import { ContentStore } from '../../src/oci/store.js';
import { mountsUnder } from '../../src/lifecycle.js';
import { isRoot, runCommand, tempDir, workspace, type Workspace } from '../helpers.js';
import { comparable, CONTEXT_FILES, dirTree, expectedTree, richDockerfile, tarTree } from './trees.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

describe('local and tar exporters', { skip }, () => {
  let ws: Workspace;
  let contextDir: string;
  before(async () => {
    ws = await workspace();
    contextDir = await ws.context({ Dockerfile: richDockerfile('busybox'), ...CONTEXT_FILES });
  });
  after(() => ws.cleanup());

  it('write the filesystem the layers describe: whiteouts applied, owners, modes, links, contents and mtimes kept', async (t) => {
    const out = await tempDir('kiln-export-');
    t.after(out.cleanup);
    const destDir = path.join(out.dir, 'rootfs');
    const tarFile = path.join(out.dir, 'rootfs.tar');
    const result = await build({ root: ws.root, contextDir, tags: ['fs:1'], exporters: [localExporter({ dest: destDir, owners: 'image' }), tarExporter({ dest: tarFile })] });
    assert.deepEqual(result.exports.map((e) => e.type), ['image', 'local', 'tar']);
    assert.equal(result.exports[1].descriptor?.digest, result.manifestDescriptor.digest);
    assert.deepEqual(mountsUnder(ws.root), [], 'the filesystem mount is released');

    const store = await ContentStore.open(ws.root);
    const expected = comparable(await expectedTree(store, 'fs:1'));
    // what this test's layers must show for the comparison to mean something
    assert.equal(expected.nodes['data/old.txt'], undefined, 'a whiteout hides a file of the layer below');
    assert.equal(expected.nodes['etc/group'], undefined, 'a whiteout hides a file of the base image');
    assert.equal(expected.nodes['gone'], undefined, 'a whiteout hides a directory and what is under it');
    assert.deepEqual(Object.keys(expected.nodes).filter((p) => p.startsWith('opq/')), ['opq/b'], 'the recreated directory hides what was in it');
    assert.equal(expected.nodes['data/sub'].uid, 1000);
    assert.equal(expected.nodes['data/sub'].mode, 0o750);
    assert.equal(expected.nodes['data/sub/old'].mtime, 1000000000);
    assert.equal(expected.nodes['data/keep'].mode, 0o4755);
    assert.equal(expected.nodes['data/fifo'].type, 'fifo');
    assert.equal(expected.nodes['data/dangling'].linkname, '/nowhere');
    assert.deepEqual([expected.nodes['copied/f.txt'].uid, expected.nodes['copied/f.txt'].gid], [123, 456]);
    assert.notEqual(expected.nodes['data/hard'].sha, expected.nodes['data/keep'].sha, 'changing a hard-linked file in a later layer parts the two');
    assert.ok(expected.links.includes('data/same1|data/same2'), expected.links.join(' '));
    assert.ok(!expected.links.some((g) => g.includes('data/keep')));

    assert.deepEqual(comparable(await dirTree(destDir)), expected, 'the local export');
    const { tree, order } = await tarTree(tarFile);
    assert.deepEqual(comparable(tree), expected, 'the tar export');
    // parents before children, names in byte order, no root entry, no whiteouts
    assert.ok(!order.includes(''));
    assert.ok(!order.some((p) => p.split('/').pop()!.startsWith('.wh.')));
    assert.ok(order.indexOf('data') < order.indexOf('data/keep') && order.indexOf('bin') < order.indexOf('data'));
  });

  it('the local exporter keeps what the directory holds elsewhere, replaces what the image has, and never follows a symlink out of it', async (t) => {
    const out = await tempDir('kiln-export-');
    t.after(out.cleanup);
    const dest = path.join(out.dir, 'dest');
    const outside = path.join(out.dir, 'outside');
    await fsp.mkdir(outside);
    await fsp.mkdir(dest);
    await fsp.writeFile(path.join(dest, 'mine.txt'), 'kept\n');
    // the image has /data: a symlink there must be replaced by the directory, not written through
    await fsp.symlink(outside, path.join(dest, 'data'));
    await fsp.mkdir(path.join(dest, 'copied'));
    await fsp.writeFile(path.join(dest, 'copied', 'f.txt'), 'to be replaced\n');
    await build({ root: ws.root, contextDir, exporters: [localExporter({ dest })] });
    assert.deepEqual(await fsp.readdir(outside), []);
    assert.ok((await fsp.lstat(path.join(dest, 'data'))).isDirectory());
    assert.equal(await fsp.readFile(path.join(dest, 'data', 'keep'), 'utf8'), 'changed\n');
    assert.equal(await fsp.readFile(path.join(dest, 'mine.txt'), 'utf8'), 'kept\n');
    assert.equal(await fsp.readFile(path.join(dest, 'copied', 'f.txt'), 'utf8'), 'from the context\n');
    // by default what is written belongs to whoever exports, as with BuildKit (the image has 123:456 and 1000:1000)
    for (const p of ['copied/f.txt', 'data/sub', 'data/sub/old']) {
      const st = await fsp.lstat(path.join(dest, p));
      assert.deepEqual([st.uid, st.gid], [process.getuid!(), process.getgid!()], p);
    }
    assert.equal((await fsp.lstat(path.join(dest, 'data', 'keep'))).mode & 0o7777, 0o4755, 'a setuid bit survives the change of owner');
  });

  it('a build can export an OCI archive that loads as the same image', async (t) => {
    const out = await tempDir('kiln-export-');
    t.after(out.cleanup);
    const file = path.join(out.dir, 'image.tar');
    const result = await build({ root: ws.root, contextDir, tags: ['fs:oci'], exporters: [ociArchiveExporter({ dest: file })] });
    assert.deepEqual(result.exports[1].names, ['fs:oci']);
    const other = await tempDir('kiln-root-');
    t.after(other.cleanup);
    const store = await ContentStore.open(other.dir);
    assert.deepEqual(await loadArchive(store, file), ['fs:oci']);
    assert.equal((await loadImage(store, 'fs:oci')).configDescriptor.digest, result.imageId);
  });

  it('bad destinations and sources are clear errors', async (t) => {
    const out = await tempDir('kiln-export-');
    t.after(out.cleanup);
    const file = path.join(out.dir, 'a-file');
    await fsp.writeFile(file, '');
    await assert.rejects(build({ root: ws.root, contextDir, exporters: [localExporter({ dest: file })] }), (e: unknown) => e instanceof KilnError && /not a directory/.test(e.message));
    await assert.rejects(build({ root: ws.root, contextDir, exporters: [localExporter({ dest: '/' })] }), (e: unknown) => e instanceof KilnError && /refusing/.test(e.message));
    await assert.rejects(build({ root: ws.root, contextDir, exporters: [tarExporter({ dest: out.dir })] }), (e: unknown) => e instanceof KilnError && /is a directory/.test(e.message));
    // outside a build there is no filesystem unless the caller gives one
    const store = await ContentStore.open(ws.root);
    const descriptor = (await build({ root: ws.root, contextDir })).manifestDescriptor;
    await assert.rejects(tarExporter({ dest: path.join(out.dir, 'x.tar') }).export({ images: [{ descriptor, names: [] }], store }), (e: unknown) => e instanceof KilnError && /no filesystem/.test(e.message));
    assert.deepEqual(mountsUnder(ws.root), []);
  });

  it('an interrupt during an export stops it: no file under the name asked for, the mount released', async (t) => {
    const out = await tempDir('kiln-export-');
    t.after(out.cleanup);
    const dest = path.join(out.dir, 'fs.tar');
    const controller = new AbortController();
    // an exporter of the caller's own: the interrupt comes while the tar exporter is writing
    const interrupting: Exporter = {
      type: 'interrupting',
      export(source, context) {
        const tar = tarExporter({ dest }).export(source, context);
        setImmediate(() => controller.abort());
        return tar;
      },
    };
    await assert.rejects(build({ root: ws.root, contextDir, signal: controller.signal, exporters: [interrupting, localExporter({ dest: path.join(out.dir, 'never') })] }), (e: unknown) => e instanceof KilnError && /interrupted/.test(e.message));
    assert.deepEqual(await fsp.readdir(out.dir), []);
    assert.deepEqual(mountsUnder(ws.root), []);
  });

  it('an image of the store exports the same, its layers unpacked for the export (loaded, never built here)', async (t) => {
    const out = await tempDir('kiln-export-');
    t.after(out.cleanup);
    const built = await build({ root: ws.root, contextDir, tags: ['fs:stored'] });
    const archive = path.join(out.dir, 'image.tar');
    await saveImages(await ContentStore.open(ws.root), ['fs:stored'], archive);
    const other = await tempDir('kiln-root-');
    t.after(other.cleanup);
    const store = await ContentStore.open(other.dir);
    await loadArchive(store, archive);
    const tarFile = path.join(out.dir, 'fs.tar');
    const dir = path.join(out.dir, 'fs');
    const r = await exportStoredImage(other.dir, 'fs:stored', tarExporter({ dest: tarFile }));
    assert.equal(r.descriptor?.digest, (await store.resolve('fs:stored'))?.digest);
    await exportStoredImage(other.dir, built.imageId, localExporter({ dest: dir, owners: 'image' }));
    assert.deepEqual(mountsUnder(other.dir), []);
    const expected = comparable(await expectedTree(store, 'fs:stored'));
    assert.equal(expected.nodes['opq/b']?.type, 'file');
    assert.deepEqual(comparable((await tarTree(tarFile)).tree), expected);
    assert.deepEqual(comparable(await dirTree(dir)), expected);
    await assert.rejects(exportStoredImage(other.dir, 'nothere:1', tarExporter({ dest: tarFile })), (e: unknown) => e instanceof KilnError && /not found/.test(e.message));
  });

  it('extended attributes of the image reach the tar and the directory', async (t) => {
    const out = await tempDir('kiln-export-');
    t.after(out.cleanup);
    const rootfs = path.join(out.dir, 'rootfs');
    await fsp.mkdir(path.join(rootfs, 'd'), { recursive: true });
    await fsp.writeFile(path.join(rootfs, 'd', 'f'), 'hi\n');
    const set = async (args: string[]) => assert.equal((await runCommand('setfattr', args)).code, 0);
    await set(['-n', 'user.kiln', '-v', 'hello', path.join(rootfs, 'd', 'f')]);
    await set(['-n', 'user.dir', '-v', 'one', path.join(rootfs, 'd')]);
    const rootfsTar = path.join(out.dir, 'rootfs.tar');
    assert.equal((await runCommand('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-cf', rootfsTar, '-C', rootfs, '.'])).code, 0);
    await importRootfs(await ContentStore.open(ws.root), rootfsTar, 'xattrs:1');
    const tarFile = path.join(out.dir, 'fs.tar');
    const dir = path.join(out.dir, 'fs');
    await exportStoredImage(ws.root, 'xattrs:1', tarExporter({ dest: tarFile }));
    await exportStoredImage(ws.root, 'xattrs:1', localExporter({ dest: dir }));
    const pax = new Map<string, Record<string, string>>();
    for await (const { header } of tarEntries(createReadStream(tarFile))) pax.set(header.name.replace(/\/$/, ''), header.pax ?? {});
    assert.equal(pax.get('d/f')?.['SCHILY.xattr.user.kiln'], 'hello');
    assert.equal(pax.get('d')?.['SCHILY.xattr.user.dir'], 'one');
    const get = async (name: string, file: string) => (await runCommand('getfattr', ['--only-values', '-n', name, file])).stdout;
    assert.equal(await get('user.kiln', path.join(dir, 'd', 'f')), 'hello');
    assert.equal(await get('user.dir', path.join(dir, 'd')), 'one');
  });
});
