/**
 * The build context for real: find's walk against the JS walk on an awkward tree, the
 * fingerprint fast path against the slow path, every kind of change a no-op rebuild must
 * still notice, damaged cache files, and the per-file maps kept for --explain.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { BuildContext, FILE_MAPS_KEPT, readChecksumFiles, type ContextEntry } from '../../src/solver/context.js';
import { KilnError } from '../../src/errors.js';
import { isRoot, tempDir, writeTree } from '../helpers.js';

/** Longer than the context's racy window: files changed before it count as settled. */
const SETTLE_MS = 1200;
const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

async function sumOnce(dir: string, hashCacheFile?: string, options: { walker?: 'find' | 'js'; ignoreFile?: string } = {}, patterns = ['.']) {
  const ctx = await BuildContext.open(dir, { hashCacheFile, ...options });
  const { digest } = await ctx.checksum(patterns);
  await ctx.saveHashCache();
  return { digest, stats: { ...ctx.stats }, ctx };
}

describe('build context', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let n = 0;
  const fresh = async (files: Record<string, string>) => {
    const t = await tempDir('kiln-context-');
    cleanups.push(t.cleanup);
    const dir = path.join(t.dir, 'ctx');
    await fs.mkdir(dir);
    await writeTree(dir, files);
    return { dir, cache: path.join(t.dir, 'cache', `ctx${n++}.json`) };
  };
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('keeps the digest byte sequence: owners only in a sum with owners (a RUN bind mount), never mtimes', async () => {
    const { dir } = await fresh({ 'a.txt': 'hello', 'sub/b.txt': 'x' });
    await fs.symlink('a.txt', path.join(dir, 'link'));
    const line = (rel: string, content: string, owners: boolean) => {
      const st = lstatSync(path.join(dir, rel));
      const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : 'file';
      const mode = (st.mode & 0o7777).toString(8);
      return `${rel}\0${type}:${mode}:${owners ? `${st.uid}:${st.gid}:` : ''}${content}\0`;
    };
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const expected = (owners: boolean) =>
      createHash('sha256')
        .update('pattern:.\0roots::directory\0')
        .update(line('a.txt', sha('hello'), owners) + line('link', 'link:a.txt', owners) + line('sub', '', owners) + line('sub/b.txt', sha('x'), owners))
        .digest('hex');
    const { digest, stats, ctx } = await sumOnce(dir);
    assert.equal(stats.walker, 'find');
    assert.equal(digest, `sha256:${expected(false)}`);
    assert.equal((await ctx.checksum(['.'], [], { owners: true })).digest, `sha256:${expected(true)}`);
    assert.notEqual(expected(false), expected(true));
  });

  it('gives the same entries from find as from the JS walk, on an awkward tree', async () => {
    const { dir } = await fresh({
      'plain.txt': 'p',
      'with space.txt': 's',
      'new\nline.txt': 'n',
      'café/日本語.txt': 'u',
      '🙂.txt': 'e',
      '-dash': 'd',
      'a-b': 'x',
      'a/b': 'y',
      'a/c/d.txt': 'z',
      'A.txt': 'upper',
      'ignored_dir/inner.txt': 'i',
      'build/out.o': 'o',
      'build/keep': 'k',
      'logs/x.log': 'l',
      'logs/keep.log': 'kl',
      'mode/suid': '#!/bin/sh\n',
      'mode/private': 'secret',
    });
    await fs.mkdir(path.join(dir, 'empty'));
    await fs.mkdir(path.join(dir, 'sticky'));
    await fs.chmod(path.join(dir, 'sticky'), 0o1777);
    await fs.mkdir(path.join(dir, 'sgid'));
    await fs.chmod(path.join(dir, 'sgid'), 0o2755);
    await fs.symlink('plain.txt', path.join(dir, 'rel-link'));
    await fs.symlink('/etc/hostname', path.join(dir, 'abs-link'));
    await fs.symlink('does not\nexist', path.join(dir, 'dangling link'));
    await fs.symlink('../café', path.join(dir, 'a/dirlink'));
    if (spawnSync('mkfifo', [path.join(dir, 'fifo')]).status !== 0) assert.fail('mkfifo failed');
    if (isRoot()) {
      await fs.chown(path.join(dir, 'mode/suid'), 1234, 5678);
      await fs.lchown(path.join(dir, 'rel-link'), 4321, 8765);
      await fs.chown(path.join(dir, 'café'), 99, 98);
    }
    // chown clears setuid, so the modes come after it
    await fs.chmod(path.join(dir, 'mode/suid'), 0o4755);
    await fs.chmod(path.join(dir, 'mode/private'), 0o600);
    await fs.utimes(path.join(dir, 'plain.txt'), 1_234_567_890.123456, 1_234_567_890.987654);
    // before the epoch (fs.utimes turns negative times into now)
    if (spawnSync('touch', ['-d', '@-1000.75', path.join(dir, 'A.txt')]).status !== 0) assert.fail('touch failed');

    const ignoreSets = {
      none: [],
      plain: ['ignored_dir', '*.log', 'logs/*.log', 'build/**'],
      exceptions: ['ignored_dir', 'logs/*.log', '!logs/keep.log', 'build', '!build/keep'],
    };
    for (const [name, patterns] of Object.entries(ignoreSets)) {
      const ignoreFile = path.join(dir, '..', `${name}.dockerignore`);
      await fs.writeFile(ignoreFile, patterns.join('\n'));
      const byFind = await BuildContext.open(dir, { ignoreFile });
      const byJs = await BuildContext.open(dir, { ignoreFile, walker: 'js' });
      const a = [...(await byFind.list()).values()];
      const b = [...(await byJs.list()).values()];
      assert.equal(byFind.stats.walker, 'find', name);
      assert.equal(byJs.stats.walker, 'js', name);
      assert.deepEqual(a, b, `walks differ with the ${name} ignore set`);
      const sumA = await byFind.checksum(['.']);
      const sumB = await byJs.checksum(['.']);
      assert.equal(sumA.digest, sumB.digest, name);

      const get = (rel: string) => a.find((e) => e.rel === rel);
      if (name === 'none') {
        assert.equal(get('mode/suid')?.mode, 0o4755);
        assert.equal(get('sticky')?.mode, 0o1777);
        assert.equal(get('sgid')?.mode, 0o2755);
        assert.equal(get('mode/private')?.mode, 0o600);
        assert.equal(get('dangling link')?.linkname, 'does not\nexist');
        assert.equal(get('fifo')?.type, 'fifo');
        assert.equal(get('new\nline.txt')?.type, 'file');
        assert.equal(get('café/日本語.txt')?.type, 'file');
        assert.equal(get('A.txt')?.mtimeMs, -1000750);
        if (isRoot()) {
          assert.equal(get('mode/suid')?.uid, 1234);
          assert.equal(get('mode/suid')?.gid, 5678);
          assert.equal(get('rel-link')?.uid, 4321);
        }
        // each directory's children sorted by name, a directory before what is in it
        const rels = a.map((e) => e.rel);
        assert.ok(rels.indexOf('a') < rels.indexOf('a/b') && rels.indexOf('a/c/d.txt') < rels.indexOf('a-b'), rels.join(' | '));
      } else {
        const rels = new Set(a.map((e) => e.rel));
        assert.ok(!rels.has('ignored_dir') && !rels.has('ignored_dir/inner.txt'));
        assert.ok(!rels.has('logs/x.log') && !rels.has('build/out.o'));
        if (name === 'exceptions') assert.ok(rels.has('logs/keep.log') && rels.has('build/keep'));
      }
    }
  });

  it('answers an unchanged context from the fingerprint, and notices every kind of change', async () => {
    const { dir, cache } = await fresh({ 'a.txt': 'aaaa', 'b.txt': 'bbbb', 'src/main.c': 'int main;', '.dockerignore': '*.tmp\n' });
    await fs.symlink('a.txt', path.join(dir, 'link'));
    // whole seconds, so that restoring the mtime below is exact
    const mtime = 1_600_000_000;
    await fs.utimes(path.join(dir, 'a.txt'), mtime, mtime);
    await settle();
    const first = await sumOnce(dir, cache);
    assert.equal(first.stats.slowPath, 1);
    assert.equal(first.stats.filesHashed, 4);
    const again = await sumOnce(dir, cache);
    assert.deepEqual([again.stats.fastPath, again.stats.slowPath, again.stats.filesHashed], [1, 0, 0]);
    assert.equal(again.digest, first.digest);
    // the fast path's answer is the slow path's: no cache at all, and the JS walk
    assert.equal((await sumOnce(dir)).digest, first.digest);
    assert.equal((await sumOnce(dir, undefined, { walker: 'js' })).digest, first.digest);

    let previous = first.digest;
    const expectChange = async (what: string, change: () => Promise<void>, hashed?: number) => {
      await change();
      await settle();
      const r = await sumOnce(dir, cache);
      assert.equal(r.stats.slowPath, 1, what);
      assert.notEqual(r.digest, previous, `${what} did not change the digest`);
      if (hashed !== undefined) assert.equal(r.stats.filesHashed, hashed, what);
      // recomputed from scratch it is the same digest, and the next build takes the fast path
      assert.equal((await sumOnce(dir)).digest, r.digest, what);
      const next = await sumOnce(dir, cache);
      assert.deepEqual([next.stats.fastPath, next.digest], [1, r.digest], what);
      previous = r.digest;
    };
    const a = path.join(dir, 'a.txt');
    const st = lstatSync(a);
    await expectChange(
      'one byte changed in place, size and mtime restored',
      async () => {
        await fs.writeFile(a, 'aaaX');
        await fs.utimes(a, mtime, mtime);
        const now = lstatSync(a);
        assert.equal(now.mtimeMs, st.mtimeMs);
        assert.equal(now.size, st.size);
        assert.equal(now.ino, st.ino);
      },
      1,
    );
    await expectChange(
      'the original content back',
      async () => {
        await fs.writeFile(a, 'aaaa');
        await fs.utimes(a, mtime, mtime);
      },
      1,
    );
    assert.equal(previous, first.digest, 'the original content gives the original digest');
    await expectChange('a file added', () => fs.writeFile(path.join(dir, 'src', 'util.c'), 'int util;'), 1);
    // a status change moves ctime, so the file is read again (its digest is the same)
    await expectChange('chmod', () => fs.chmod(path.join(dir, 'b.txt'), 0o700), 1);
    await expectChange('a symlink retargeted', async () => {
      await fs.rm(path.join(dir, 'link'));
      await fs.symlink('b.txt', path.join(dir, 'link'));
    }, 0);
    await expectChange('.dockerignore changed', () => fs.writeFile(path.join(dir, '.dockerignore'), '*.tmp\nb.txt\n'), 1);
    // a change in an ignored file misses the fast path but not the digest
    await fs.writeFile(path.join(dir, 'scratch.tmp'), 'ignored');
    await settle();
    const ignoredChange = await sumOnce(dir, cache);
    assert.deepEqual([ignoredChange.stats.slowPath, ignoredChange.digest], [1, previous]);
  });

  it('memoises each set of sources and excludes separately', async () => {
    const { dir, cache } = await fresh({ 'a/x.txt': 'x', 'a/y.txt': 'y', 'b/z.txt': 'z' });
    await settle();
    const ctx1 = await BuildContext.open(dir, { hashCacheFile: cache });
    const all = await ctx1.checksum(['.']);
    const onlyA = await ctx1.checksum(['a']);
    const aWithoutY = await ctx1.checksum(['a'], ['y.txt']);
    await ctx1.saveHashCache();
    assert.equal(new Set([all.digest, onlyA.digest, aWithoutY.digest]).size, 3);
    const ctx2 = await BuildContext.open(dir, { hashCacheFile: cache });
    assert.equal((await ctx2.checksum(['a'], ['y.txt'])).digest, aWithoutY.digest);
    assert.equal((await ctx2.checksum(['a'])).digest, onlyA.digest);
    assert.equal((await ctx2.checksum(['.'])).digest, all.digest);
    assert.equal(ctx2.stats.fastPath, 3);
    await assert.rejects(ctx2.checksum(['missing']), KilnError);
  });

  it('does not trust files changed just before the walk', async () => {
    const { dir, cache } = await fresh({ 'a.txt': 'a' });
    const first = await sumOnce(dir, cache);
    // a.txt was written within the racy window: neither its digest nor the sum is kept
    const second = await sumOnce(dir, cache);
    assert.equal(second.stats.slowPath, 1);
    assert.equal(second.stats.filesHashed, 1);
    assert.equal(second.digest, first.digest);
  });

  it('treats corrupt, truncated or old-format cache files as empty', async () => {
    const { dir, cache } = await fresh({ 'a.txt': 'aaaa', 'b/c.txt': 'cccc' });
    await settle();
    const truth = (await sumOnce(dir)).digest;
    const sums = cache.replace(/\.json$/, '.sums.json');
    await fs.mkdir(path.dirname(cache), { recursive: true });

    // an old-format cache (an object per path) that claims a wrong digest for a.txt's exact stat
    const st = lstatSync(path.join(dir, 'a.txt'));
    await fs.writeFile(cache, JSON.stringify({ 'a.txt': { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, digest: '0'.repeat(64) } }));
    await fs.writeFile(sums, '{"v": "kiln-context-sums-v1", "fingerprint": 3');
    let r = await sumOnce(dir, cache);
    assert.deepEqual([r.digest, r.stats.slowPath, r.stats.filesHashed], [truth, 1, 2]);
    r = await sumOnce(dir, cache);
    assert.deepEqual([r.digest, r.stats.fastPath], [truth, 1]);

    // truncated in the middle of a record, and binary garbage
    const good = await fs.readFile(cache);
    for (const damaged of [good.subarray(0, good.length - 7), Buffer.from([0, 1, 2, 255, 0, 10])]) {
      await fs.writeFile(cache, damaged);
      await fs.writeFile(sums, damaged);
      r = await sumOnce(dir, cache);
      assert.deepEqual([r.digest, r.stats.slowPath, r.stats.filesHashed], [truth, 1, 2]);
    }
    // a sums file that names the right fingerprint but carries something that is not a digest
    const stored = JSON.parse(await fs.readFile(sums, 'utf8')) as { sums: Record<string, string> };
    for (const k of Object.keys(stored.sums)) stored.sums[k] = 'nonsense';
    await fs.writeFile(sums, JSON.stringify(stored));
    r = await sumOnce(dir, cache);
    assert.deepEqual([r.digest, r.stats.slowPath], [truth, 1]);
  });

  it('keeps the per-file map of a checksum for --explain', async () => {
    const { dir, cache } = await fresh({ 'a.txt': 'hello', 'sub/b.txt': 'x' });
    const ctx = await BuildContext.open(dir, { hashCacheFile: cache });
    const { digest } = await ctx.checksum(['.']);
    const files = await readChecksumFiles(cache, digest);
    assert.ok(files);
    assert.deepEqual(Object.keys(files).sort(), ['a.txt', 'sub', 'sub/b.txt']);
    const sha = createHash('sha256').update('hello').digest('hex');
    assert.match(files['a.txt'], new RegExp(`^file:[0-7]+:${sha}$`));
    assert.match(files.sub, /^directory:[0-7]+:$/);
    assert.equal(await readChecksumFiles(cache, `sha256:${'0'.repeat(64)}`), undefined);
    assert.equal(await readChecksumFiles(cache, '../../etc/passwd'), undefined);
  });

  it(`keeps the ${FILE_MAPS_KEPT} most recently used per-file maps`, async () => {
    const { dir, cache } = await fresh({ 'a.txt': 'a' });
    await settle();
    const kept = await sumOnce(dir, cache);
    const mapsDir = path.join(path.dirname(cache), 'files');
    const old = new Date(Date.now() - 3600_000);
    const hex = (i: number) => createHash('sha256').update(`old ${i}`).digest('hex');
    for (let i = 0; i < FILE_MAPS_KEPT + 10; i++) {
      await fs.writeFile(path.join(mapsDir, `${hex(i)}.json`), '{}');
      await fs.utimes(path.join(mapsDir, `${hex(i)}.json`), old, new Date(old.getTime() + i * 1000));
    }
    // an unchanged build only marks its map as used; a changed one adds a map and trims the rest
    await fs.utimes(path.join(mapsDir, `${kept.digest.slice(7)}.json`), old, old);
    assert.equal((await sumOnce(dir, cache)).stats.fastPath, 1);
    await fs.writeFile(path.join(dir, 'b.txt'), 'b');
    await settle();
    const changed = await sumOnce(dir, cache);
    const left = new Set(await fs.readdir(mapsDir));
    assert.equal(left.size, FILE_MAPS_KEPT);
    assert.ok(left.has(`${kept.digest.slice(7)}.json`) && left.has(`${changed.digest.slice(7)}.json`));
    // the newest of the old ones stay, the oldest went
    assert.ok(left.has(`${hex(FILE_MAPS_KEPT + 9)}.json`) && !left.has(`${hex(0)}.json`));
    assert.ok(await readChecksumFiles(cache, kept.digest));
  });

  describe('without a usable find', () => {
    const savedPath = process.env.PATH;
    let fakeBin: string;
    before(async () => {
      const t = await tempDir('kiln-fakefind-');
      cleanups.push(t.cleanup);
      fakeBin = t.dir;
    });
    after(() => {
      process.env.PATH = savedPath;
    });
    const withFind = async (script: string | undefined, fn: () => Promise<void>) => {
      const bin = path.join(fakeBin, script === undefined ? 'none' : createHash('sha256').update(script).digest('hex').slice(0, 8));
      await fs.mkdir(bin, { recursive: true });
      if (script !== undefined) await fs.writeFile(path.join(bin, 'find'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
      process.env.PATH = bin;
      try {
        await fn();
      } finally {
        process.env.PATH = savedPath;
      }
    };

    // the fake find writes its "walk" where -fprintf says, as GNU find would
    const toOutputFile = 'while [ "$1" != -fprintf ]; do shift; done; out="$2";';
    const cases: Record<string, string | undefined> = {
      'find is missing': undefined,
      'find fails': 'exit 1',
      'find prints garbage': `${toOutputFile} printf 'x|y|' | /usr/bin/tr '|' '\\000' > "$out"`,
      'find prints a bad number': `${toOutputFile} printf 'f|1|zz|1.5|1.5|644|0|0|a.txt||' | /usr/bin/tr '|' '\\000' > "$out"`,
    };
    for (const [name, script] of Object.entries(cases)) {
      it(`falls back to the JS walk when ${name}`, async () => {
        const { dir, cache } = await fresh({ 'a.txt': 'aaaa', 'b/c.txt': 'cccc' });
        await settle();
        const truth = (await sumOnce(dir, undefined, { walker: 'js' })).digest;
        await withFind(script, async () => {
          for (let i = 0; i < 2; i++) {
            const r = await sumOnce(dir, cache);
            assert.equal(r.stats.walker, 'js', name);
            // no fingerprint to trust: every build takes the slow path, the hash cache still works
            assert.deepEqual([r.digest, r.stats.slowPath, r.stats.filesHashed], [truth, 1, i === 0 ? 2 : 0], name);
          }
        });
      });
    }
  });

  it('lists what copy needs on a cache miss', async () => {
    const { dir } = await fresh({ 'a/x.txt': 'x', 'a/y.txt': 'y', 'b.txt': 'b', '.dockerignore': 'b.txt\n' });
    const ctx = await BuildContext.open(dir);
    const [r] = await ctx.resolveSources(['a'], ['y.txt']);
    assert.deepEqual(r.roots.map((e: ContextEntry) => e.rel), ['a']);
    assert.deepEqual(r.files.map((e: ContextEntry) => e.rel), ['a/x.txt']);
    await assert.rejects(ctx.resolveSources(['b.txt']), /excluded by \.dockerignore/);
  });
});
