/**
 * COPY/ADD file semantics, differentially against docker 20.10's BuildKit: the same
 * Dockerfile and context through both, and the files of the results compared (type, mode,
 * owner, hard-link identity, link target, content).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isRoot, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { dockerOracle, kilnListing, type Oracle } from './copy-oracle.js';

const skip = isRoot() ? false : 'overlayfs, mknod and docker need root';

function sh(cwd: string, script: string): void {
  const r = spawnSync('sh', ['-ec', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`setup failed: ${r.stderr}`);
}

describe('COPY and ADD give BuildKit’s files', { skip }, () => {
  let ws: Workspace;
  let oracle: Oracle;
  before(async () => {
    ws = await workspace();
    oracle = await dockerOracle();
  });
  after(async () => {
    await oracle?.cleanup();
    await ws?.cleanup();
  });

  /** Builds `dockerfile` over the context with both, and asserts equal listings of `dirs`. */
  async function same(t: { skip(msg: string): void }, files: Record<string, string>, setup: string, dockerfile: string, dirs = '/out'): Promise<string[]> {
    const dir = await ws.context({ ...files, Dockerfile: dockerfile });
    if (setup) sh(dir, setup);
    const kiln = await kilnListing(ws.root, dir, dirs);
    assert.ok(kiln.ok, `kiln: ${kiln.output}`);
    if (oracle.available !== true) {
      t.skip(oracle.available);
      return kiln.listing;
    }
    const docker = await oracle.build(dir, dockerfile, dirs);
    if (!docker.ok && /Cannot connect to the Docker daemon|cannot connect to the Docker daemon/.test(docker.output)) {
      t.skip('the docker daemon went away during the test');
      return kiln.listing;
    }
    assert.ok(docker.ok, `docker: ${docker.output}`);
    assert.deepEqual(kiln.listing, docker.listing);
    return kiln.listing;
  }

  it('.dockerignore: a file re-included in an excluded directory is copied, with that directory', async (t) => {
    const listing = await same(
      t,
      { 'docs/README.md': 'readme\n', 'docs/other.md': 'other\n', 'docs/deep/x': 'x\n', 'src/a.txt': 'a\n', '.dockerignore': 'docs/\n!docs/README.md\nDockerfile\n' },
      'chmod 0750 docs',
      'FROM busybox:latest\nCOPY . /out/\nCOPY docs /out2/\n',
      '/out /out2',
    );
    assert.ok(listing.some((l) => l.startsWith('/out/docs/README.md|regular file|')));
    assert.ok(!listing.some((l) => l.includes('other.md') || l.includes('/deep')));
  });

  it('symlinks: named, chained and matched ones are followed within the context; a directory’s stay links', async (t) => {
    const listing = await same(
      t,
      { f: 'f\n', 'real/sub/i': 'inner\n', 'dir/g': 'g\n', h1: 'h\n' },
      'ln -s f l1 && ln -s l1 l2 && ln -s real link && ln -s ../f real/sub/rl && ln -s /f dir/abs && ln dir/g dir/g2 && ln h1 h2 && ln -s /real/sub abslink',
      [
        'FROM busybox:latest',
        'COPY l1 /out/a/',
        'COPY l2 /out/b/',
        'COPY l* /out/c/',
        'COPY link/sub /out/d/',
        'COPY link /out/e/',
        'COPY dir /out/f/',
        'COPY h1 h2 /out/g/',
        'COPY l1 /out/j',
        'COPY abslink/i /out/k/',
        '',
      ].join('\n'),
    );
    assert.ok(listing.some((l) => l.startsWith('/out/a/l1|regular file|644|0|0|1||')), 'a named link is copied as its file');
    assert.ok(listing.some((l) => l.startsWith('/out/e/sub/rl|symbolic link|') && l.endsWith('|../f')));
    assert.ok(listing.some((l) => l.startsWith('/out/f/g2|') && l.includes('|=/out/f/g|')), 'hard links in a directory stay linked');
  });

  it('sockets and device nodes become empty files, FIFOs are skipped', async (t) => {
    await same(
      t,
      { 'd/a': 'a\n' },
      `node -e "require('net').createServer().listen('d/sock', () => process.exit(0))" && mknod d/null c 1 3 && mkfifo d/fifo && mkfifo fifo2 && chmod 0640 d/null`,
      'FROM busybox:latest\nCOPY d /out/d/\nCOPY d/sock d/null /out/named/\nCOPY fifo2 /out/fifo/\n',
    );
  });

  it('from a stage: owners kept, hard links kept, new destination directory root-owned 0755', async (t) => {
    await same(
      t,
      {},
      '',
      [
        'FROM busybox:latest AS s',
        'RUN mkdir -p /x/sub && mkfifo /x/fifo && mknod /x/null c 1 3 && echo a > /x/a && ln /x/a /x/b && ln -s a /x/l && ln -s /x/sub /abs && chown -R 1000:1000 /x && chmod 700 /x && chmod 710 /x/sub',
        'FROM busybox:latest',
        'COPY --from=s /x /out/x',
        'COPY --from=s /x/fifo /out/f1',
        'COPY --from=s /x/null /out/n1',
        'COPY --from=s /x/a /x/b /out/ab/',
        'COPY --from=s /x/l /out/followed',
        'COPY --from=s /abs /out/through-abs/',
        'COPY --from=s /x/* /out/wild/',
        '',
      ].join('\n'),
    );
  });

  it('owners and modes: existing destinations are left alone, created ones are 0755 (or --chown’s)', async (t) => {
    await same(
      t,
      { f: 'f\n', 'd/sub/s': 's\n', 'd/keep/k': 'k\n' },
      'chmod 700 d/sub && chmod 750 d && chmod 711 d/keep && chmod 0604 f',
      [
        'FROM busybox:latest',
        'RUN mkdir -p /out/ex/keep /out/ex2 /out/ex3 && chown 1000:1000 /out/ex /out/ex/keep /out/ex2 /out/ex3 && chmod 700 /out/ex /out/ex/keep && chmod 750 /out/ex2 && chmod 705 /out/ex3',
        'COPY d /out/new',
        'COPY d /out/ex',
        'COPY --chown=1001:1001 f /out/ex2/',
        'COPY --chown=1001:1001 d /out/ex3/',
        'COPY --chown=1002:1002 f /out/p1/p2/f',
        'COPY --chown=1003:1003 d /out/c3/',
        'COPY f /out/p3/p4/',
        '',
      ].join('\n'),
    );
  });

  it('wildcards: one match to a path without a slash is a file; a pattern matching nothing beside others is no error', async (t) => {
    await same(
      t,
      { 'f1.txt': 'f\n', 'd/x': 'x\n', 'e/y': 'y\n' },
      '',
      [
        'FROM busybox:latest',
        'COPY f*.txt nothing* /out/a/',
        'COPY f*.txt /out/one',
        'COPY d* /out/dd',
        'COPY f1.txt nothing* /out/b/',
        'COPY nothing* /out/none/',
        'COPY [de] /out/both/',
        '',
      ].join('\n'),
    );
  });

  it('names that are not UTF-8 are copied byte for byte, and stored so in the layer', async (t) => {
    const setup = [
      `printf x > "$(printf 'a\\377\\376.txt')"`,
      `mkdir "$(printf 'caf\\351')"`,
      `echo f > "$(printf 'caf\\351')/f"`,
      `ln -s "$(printf 'a\\377\\376.txt')" "$(printf 'l\\351')"`,
      `echo ok > "$(printf 'caf\\303\\251-valid')"`,
    ].join(' && ');
    const listing = await same(t, {}, setup, 'FROM busybox:latest\nCOPY . /out/\nCOPY caf* /out2/\n', '/out /out2');
    assert.equal(listing.length, 10, listing.join('\n'));
    const dir = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY . /out/\n' });
    sh(dir, setup);
    const b = await runKiln(['build', '-q', '-t', 'bytes:1', dir], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    const r = await runKiln(['run', 'bytes:1', 'sh', '-c', 'cd /out && for f in *; do echo "$f"; done | od -An -tx1 | tr -d " \\n"'], { root: ws.root });
    // the shell's glob sorts by bytes: "café" (c3 a9) before "caf\xe9"
    const names = Buffer.concat([Buffer.from('Dockerfile\na'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt\ncafé-valid\ncaf'), Buffer.from([0xe9]), Buffer.from('\nl'), Buffer.from([0xe9, 0x0a])]);
    assert.equal(r.stdout, names.toString('hex'));
    const saved = await tempDir('kiln-save-');
    try {
      const s = await runKiln(['save', '-o', path.join(saved.dir, 'img.tar'), 'bytes:1'], { root: ws.root });
      assert.equal(s.code, 0, s.stderr);
      const tarBytes = await fs.readFile(path.join(saved.dir, 'img.tar'));
      assert.ok(tarBytes.includes(Buffer.concat([Buffer.from('out/a'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')])), 'the layer names the file with its bytes');
      assert.ok(tarBytes.includes(Buffer.concat([Buffer.from('out/caf'), Buffer.from([0xe9]), Buffer.from('/f')])));
    } finally {
      await saved.cleanup();
    }
  });

  it('a destination through symlinks, one to a missing directory, is resolved within the image', async (t) => {
    await same(
      t,
      { f: 'f\n', 'd/x': 'x\n' },
      '',
      [
        'FROM busybox:latest',
        'RUN mkdir -p /out/real && ln -s /out/missing /out/tomissing && ln -s real /out/toreal && ln -s /out/real /out/absreal',
        'COPY f /out/tomissing/',
        'COPY d /out/toreal/',
        'COPY f /out/absreal/g',
        '',
      ].join('\n'),
    );
  });

  it('an empty destination is the working directory', async (t) => {
    const listing = await same(t, { 'a.txt': 'a\n' }, '', 'FROM busybox:latest\nWORKDIR /out/app\nENV empty=""\nCOPY a.txt $empty\n');
    assert.ok(listing.some((l) => l.startsWith('/out/app/a.txt|regular file|')));
  });
});

describe('COPY through and of symlinks (BuildKit testCopySymlinks, testCopyFollowAllSymlinks, testCopyThroughSymlinkContext, testCopyThroughSymlinkMultiStage, testCopySocket)', { skip }, () => {
  it('follows named and matched links within their tree', async () => {
    const ws = await workspace();
    try {
      const dir = await ws.context({ bar: 'bar-contents', 'sub/lfile': 'lfile-contents', 'sub/subfile': 'subfile-contents', 'sub/baz': 'baz-contents', 'sub2/foo': 'contents' });
      sh(dir, `ln -s bar foo && ln -s subfile sub/l0 && ln -s second sub/l1 && ln -s baz sub/second && mkdir fdir && ln -s ../bar fdir/sub && ln -s sub2 link && node -e "require('net').createServer().listen('socket.sock', () => process.exit(0))"`);
      await fs.writeFile(
        path.join(dir, 'Dockerfile'),
        [
          'FROM busybox:latest AS build',
          'RUN mkdir -p /out/sub && ln -s /out/sub /sub && ln -s out/sub /sub2 && echo -n "data" > /sub/foo',
          'FROM busybox:latest',
          'COPY foo /t/',
          'COPY sub/l* /t/alllinks/',
          'COPY fdir /t/fdir/',
          'COPY fdir/sub /t/followed',
          'COPY link/foo /t/through/',
          'COPY --from=build /sub/foo /t/stage/',
          'COPY --from=build /sub2/foo /t/stage/bar',
          'COPY socket.sock /t/',
          '',
        ].join('\n'),
      );
      const b = await runKiln(['build', '-q', '-t', 'links:1', dir], { root: ws.root });
      assert.equal(b.code, 0, b.stderr);
      const script = 'cd /t && for f in foo alllinks/l0 alllinks/lfile alllinks/l1 followed through/foo stage/foo stage/bar; do echo "$f=$(cat $f)"; done; readlink fdir/sub; [ -f socket.sock ] && [ ! -s socket.sock ] && echo socket-is-empty-file';
      const r = await runKiln(['run', 'links:1', 'sh', '-c', script], { root: ws.root });
      assert.equal(
        r.stdout,
        'foo=bar-contents\nalllinks/l0=subfile-contents\nalllinks/lfile=lfile-contents\nalllinks/l1=baz-contents\nfollowed=bar-contents\nthrough/foo=contents\nstage/foo=data\nstage/bar=data\n../bar\nsocket-is-empty-file\n',
        r.stderr,
      );
    } finally {
      await ws.cleanup();
    }
  });
});

describe('COPY without a mount', { skip }, () => {
  it('gives the image the mounted path gives, for links, hard links, special files and empty wildcards', async () => {
    const ws = await workspace();
    try {
      const dir = await ws.context({ f: 'f\n', 'dir/g': 'g\n', 'real/i': 'i\n' });
      sh(dir, `ln -s f l1 && ln -s l1 l2 && ln dir/g dir/g2 && ln -s real link && node -e "require('net').createServer().listen('dir/sock', () => process.exit(0))"`);
      await fs.writeFile(
        path.join(dir, 'Dockerfile'),
        [
          'FROM busybox:latest AS s',
          'RUN mkdir -p /x && echo a > /x/a && ln /x/a /x/b && chown -R 1000:1000 /x',
          'FROM busybox:latest',
          'COPY l2 /n1/a/',
          'COPY dir /n2/b',
          'COPY link nothing* /n3/c/',
          'COPY --from=s /x /n4/d',
          'COPY --chmod=u=rwX,go=rX --chown=7:8 dir /n5/e/',
          '',
        ].join('\n'),
      );
      const env = { SOURCE_DATE_EPOCH: '1700000000' };
      const direct = await runKiln(['build', '--no-cache', '-q', dir], { root: ws.root, env: { ...env, KILN_TRACE: '1' } });
      assert.equal(direct.code, 0, direct.stderr);
      assert.equal(direct.stderr.split('\n').filter((l) => l.includes('direct (no mount)')).length, 5, direct.stderr);
      const mounted = await runKiln(['build', '--no-cache', '-q', dir], { root: ws.root, env: { ...env, KILN_DIRECT_FILEOPS: '0' } });
      assert.equal(mounted.code, 0, mounted.stderr);
      assert.equal(direct.stdout.trim().split('\n').pop(), mounted.stdout.trim());
    } finally {
      await ws.cleanup();
    }
  });
});

describe('COPY --link to an empty destination under WORKDIR', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(() => ws.cleanup());

  it('copies into the working directory, as without --link (BuildKit testCopyLinkEmptyDestDir, testCopyLinkDotDestDir)', async () => {
    const files = { 'a.txt': 'a\n', 'b.txt': 'b\n', 'c.txt': 'c\n' };
    const body = (link: string) => `FROM busybox:latest\nWORKDIR /out/www\nRUN echo w > w\nENV empty=""\nCOPY ${link}a.txt $empty\nCOPY ${link}b.txt ./dot/\nCOPY ${link}c.txt .\n`;
    const plain = await kilnListing(ws.root, await ws.context({ ...files, Dockerfile: body('') }), '/out');
    const linked = await kilnListing(ws.root, await ws.context({ ...files, Dockerfile: body('--link ') }), '/out');
    assert.ok(plain.ok && linked.ok, plain.output + linked.output);
    assert.ok(linked.listing.some((l) => l.startsWith('/out/www|directory|755|0|0|')), linked.listing.join('\n'));
    assert.ok(linked.listing.some((l) => l.startsWith('/out/www/a.txt|regular file|')));
    assert.ok(linked.listing.some((l) => l.startsWith('/out/www/w|regular file|')), 'the WORKDIR keeps what it held');
    assert.deepEqual(linked.listing, plain.listing);
  });
});

describe('a context file listing', { skip }, () => {
  it('is never written to the temp dir, also by a build that fails on a syntax error', async () => {
    const ws = await workspace();
    const tmp = await tempDir('kiln-tmpdir-');
    try {
      const dir = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY --nope a /\n', a: 'a\n' });
      for (let i = 0; i < 200; i++) await fs.writeFile(path.join(dir, `f${i}`), 'x');
      const r = await runKiln(['build', dir], { root: ws.root, env: { TMPDIR: tmp.dir } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Dockerfile:2/);
      const ok = await runKiln(['build', '-q', dir.replace(/$/, '')], { root: ws.root, env: { TMPDIR: tmp.dir } });
      assert.notEqual(ok.code, 0);
      await new Promise((res) => setTimeout(res, 200));
      assert.deepEqual(await fs.readdir(tmp.dir), []);
    } finally {
      await tmp.cleanup();
      await ws.cleanup();
    }
  });
});
