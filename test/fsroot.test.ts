/** Root-confined resolution (src/fsroot.ts), on a real directory tree with hostile links. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isKilnError } from '../src/errors.js';
import { clampRelative, makeDirsSync, parentsConfinedSync, rootPath, rootPathSync } from '../src/fsroot.js';
import { tempDir } from './helpers.js';

describe('rootPath', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir: root, cleanup } = await tempDir('kiln-fsroot-'));
    mkdirSync(path.join(root, 'real/dir'), { recursive: true });
    writeFileSync(path.join(root, 'real/dir/f'), 'f');
    symlinkSync('/real', path.join(root, 'abs'));
    symlinkSync('../../../../../../real/dir', path.join(root, 'real/rel'));
    symlinkSync('/etc', path.join(root, 'hostetc'));
    symlinkSync('abs/dir', path.join(root, 'chain'));
    symlinkSync('/loop2', path.join(root, 'loop1'));
    symlinkSync('loop1', path.join(root, 'loop2'));
    writeFileSync(path.join(root, 'file'), 'x');
  });
  after(() => cleanup());

  const both = async (p: string, followLast = true): Promise<string> => {
    const sync = rootPathSync(root, p, { followLast });
    assert.equal(await rootPath(root, p, { followLast }), sync, 'sync and async agree');
    return path.relative(root, sync);
  };

  it('follows absolute and relative links from the root, and clamps ".."', async () => {
    assert.equal(await both('/abs/dir/f'), 'real/dir/f');
    assert.equal(await both('real/rel/f'), 'real/dir/f');
    assert.equal(await both('/chain/f'), 'real/dir/f');
    assert.equal(await both('/../../../real/../abs'), 'real');
    assert.equal(await both('/hostetc/passwd'), 'etc/passwd', 'an absolute link to a host path stays in the root');
    assert.equal(await both('/'), '');
  });

  it('keeps missing components and, when asked, a final link', async () => {
    assert.equal(await both('/abs/missing/deeper'), 'real/missing/deeper');
    assert.equal(await both('/file/below'), 'file/below');
    assert.equal(await both('/real/rel', false), 'real/rel');
    assert.equal(await both('/abs/rel', false), 'real/rel');
  });

  it('a loop is a clear KilnError', async () => {
    assert.throws(() => rootPathSync(root, '/loop1/x'), (e: unknown) => isKilnError(e) && /too many levels of symbolic links resolving \/loop1\/x/.test(e.message));
    await assert.rejects(rootPath(root, 'loop2'), (e: unknown) => isKilnError(e));
  });

  it('parentsConfinedSync tells a path whose parents are real directories', () => {
    assert.equal(parentsConfinedSync(root, path.join(root, 'real/dir/f')), true);
    assert.equal(parentsConfinedSync(root, path.join(root, 'abs/dir')), false);
    assert.equal(parentsConfinedSync(root, path.join(root, 'abs')), true, 'the last component is not looked at');
    assert.equal(parentsConfinedSync(root, '/etc/passwd'), false);
  });

  it('makeDirsSync makes missing directories below the root, and refuses a file in the way', () => {
    const made = makeDirsSync(root, rootPathSync(root, '/hostetc/kiln-new/sub'));
    assert.deepEqual(made.map((m) => path.relative(root, m)), ['etc', 'etc/kiln-new', 'etc/kiln-new/sub']);
    assert.throws(() => makeDirsSync(root, path.join(root, 'file/sub')), (e: unknown) => isKilnError(e) && /a file is in the way/.test(e.message));
  });

  it('clampRelative drops leading "/" and clamps ".." at the root', () => {
    assert.equal(clampRelative('/a/./b/'), 'a/b');
    assert.equal(clampRelative('../../x/../y'), 'y');
    assert.equal(clampRelative('..'), '');
  });
});
