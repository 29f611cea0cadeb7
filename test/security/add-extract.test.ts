/**
 * ADD of hostile archives onto hostile bases: absolute and relative symlinks out of the root
 * in the lower layers and in the archive, `..` and absolute entry names, hard links to outside
 * paths, symlink chains and loops. The host canary stays untouched, and the image is BuildKit's
 * (compared with docker's BuildKit where the case builds there).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { tarEntries } from '../../src/oci/tar.js';
import { isRoot, runKiln, tempDir } from '../helpers.js';
import { assertCleanError, BASE, kilnListing, makeTar, securitySuite, type SecuritySuite } from './harness.js';

const skip = isRoot() ? false : 'overlayfs and runc need root';

describe('ADD archive extraction is confined to the image', { skip }, () => {
  let suite: SecuritySuite;
  before(async () => {
    suite = await securitySuite();
  });
  after(() => suite.cleanup());
  const build: SecuritySuite['build'] = (...args) => suite.build(...args);

  it('through lower-layer and in-archive links out of the root, as docker BuildKit does', async (t) => {
    const C = suite.canary.dir;
    const E = suite.canary.evil;
    const archive = await makeTar([
      // var/run -> /run in the base, as real images have: lands in the image's /run
      { name: `var/run/${E}/f`, content: 'one\n', uid: 1234, gid: 5678 },
      // the BuildKit test for moby/moby#53258: explicit directories and a hard link, through it
      { name: `var/run/${E}-act/`, type: 'directory' },
      { name: `var/run/${E}-act/HEAD`, content: 'ref: refs/heads/main\n' },
      { name: `var/run/${E}-act/HEAD.link`, type: 'link', linkname: `var/run/${E}-act/HEAD` },
      // the base's absolute link to the canary's host path: the image's copy of that path
      { name: `canary-abs/${E}/g`, content: 'two\n' },
      { name: `canary-rel/${E}/h`, content: 'three\n' },
      // names leaving the root are clamped at it
      { name: `../../../../${E}/i`, content: 'four\n' },
      { name: `/tmp/${E}/j`, content: 'five\n' },
      // links in the archive itself, then entries through them
      { name: 'out-abs', type: 'symlink', linkname: C },
      { name: `out-abs/${E}-k`, content: 'six\n' },
      { name: 'out-rel', type: 'symlink', linkname: `../../../../../../..${C}/sub` },
      { name: `out-rel/${E}-l`, content: 'seven\n' },
      { name: 'chain1', type: 'symlink', linkname: 'chain2' },
      { name: 'chain2', type: 'symlink', linkname: '/canary-abs' },
      { name: `chain1/${E}-m`, content: 'eight\n' },
      // hard links to paths outside: what the name means inside the root
      { name: `${E}-hl-out`, type: 'link', linkname: `../../../..${C}/keep.txt` },
      { name: `${E}-hl-abs`, type: 'link', linkname: '/etc/group' },
      // a lower-layer symlink to a host file is replaced, never written through
      { name: 'victim', content: 'replaced\n' },
      { name: 'victim-dir', type: 'directory' },
      { name: `victim-dir/${E}-n`, content: 'nine\n' },
    ]);
    const dockerfile = [
      `FROM ${BASE}`,
      // the image's own copy of the canary path, so that links to it resolve in the image
      `RUN rm -rf /var/run && ln -s /run /var/run && mkdir -p ${C}/sub && echo image > ${C}/keep.txt \\`,
      `    && ln -s ${C} /canary-abs && ln -s ../../../../../../../..${C} /canary-rel \\`,
      `    && ln -s ${C}/keep.txt /victim && ln -s ${C} /victim-dir`,
      'ADD evil.tar /',
      'ADD plain.gz /p/',
      '',
    ].join('\n');
    const files = { Dockerfile: dockerfile, 'evil.tar': archive, 'plain.gz': gzipSync('not a tar\n') };
    const { ctx, r } = await build(files, 'sec-add:1');
    suite.canary.verify();
    assert.equal(r.code, 0, r.stderr);
    const paths = ['/run', `/${E}`, `/tmp/${E}`, C, '/out-abs', '/out-rel', '/chain1', '/chain2', `/${E}-hl-out`, `/${E}-hl-abs`, '/etc/group', '/victim', '/victim-dir', '/p', '/var/run'];
    const got = await kilnListing(suite.root, 'sec-add:1', paths);
    suite.canary.verify();
    // the in-root result, spelt out
    assert.match(got, new RegExp(`^/run/${E}/f\\|regular file\\|644\\|1234:5678\\|1\\|`, 'm'));
    assert.match(got, new RegExp(`^/run/${E}-act/HEAD\\|regular file\\|644\\|0:0\\|2\\|`, 'm'));
    assert.match(got, new RegExp(`^${C}/${E}/g\\|regular file`, 'm'));
    assert.match(got, new RegExp(`^${C}/${E}/h\\|regular file`, 'm'));
    assert.match(got, new RegExp(`^/${E}/i\\|regular file`, 'm'));
    assert.match(got, new RegExp(`^/tmp/${E}/j\\|regular file`, 'm'));
    assert.match(got, new RegExp(`^${C}/${E}-k\\|regular file`, 'm'));
    assert.match(got, new RegExp(`^${C}/sub/${E}-l\\|regular file`, 'm'));
    assert.match(got, new RegExp(`^${C}/${E}-m\\|regular file`, 'm'));
    assert.match(got, new RegExp(`^${C}/keep.txt\\|regular file\\|644\\|0:0\\|2\\|`, 'm'), 'the hard link is to the image copy');
    assert.match(got, new RegExp(`^/${E}-hl-abs\\|regular file\\|644\\|0:0\\|2\\|`, 'm'));
    assert.match(got, /^\/victim\|regular file\|644\|0:0\|1\|/m);
    assert.match(got, new RegExp(`^/victim-dir/${E}-n\\|regular file`, 'm'));
    assert.match(got, /^\/p\/plain\.gz\|regular file/m, 'a gzip holding no tar is copied as is');
    if (!suite.oracle) return t.skip('dockerd not available: in-root result asserted only');
    const d = await suite.oracle.build(ctx, 'kiln-sec-add:1');
    assert.equal(d.code, 0, d.stderr);
    assert.equal(got, await suite.oracle.listing('kiln-sec-add:1', paths));
    suite.canary.verify();
  });

  it('a symlink loop, or a link to a missing directory, on an entry\'s path is a clear error', async () => {
    const loop = await makeTar([{ name: `loop1/${suite.canary.evil}`, content: 'x\n' }]);
    const { r } = await build(
      { Dockerfile: `FROM ${BASE}\nRUN ln -s /loop2 /loop1 && ln -s /loop1 /loop2\nADD loop.tar /\n`, 'loop.tar': loop },
      'sec-loop:1',
    );
    assertCleanError(r, /ADD loop\.tar: .*too many levels of symbolic links/);
    suite.canary.verify();
    // BuildKit: "open /rel/j: no such file or directory" (checked with docker 20.10)
    const dangling = await makeTar([{ name: `dangle/${suite.canary.evil}`, content: 'x\n' }]);
    const r2 = await build(
      { Dockerfile: `FROM ${BASE}\nRUN ln -s ${suite.canary.dir}/sub /dangle\nADD d.tar /\n`, 'd.tar': dangling },
      'sec-dangle:1',
    );
    assertCleanError(r2.r, new RegExp(`ADD d\\.tar: cannot unpack "dangle/${suite.canary.evil}": /dangle is a symlink to ${suite.canary.dir}/sub, which does not exist`));
    suite.canary.verify();
  });

  it('the destination directory is the extraction root (BuildKit chroots there)', async (t) => {
    const archive = await makeTar([
      { name: 'lnk/f', content: 'six\n' },
      { name: 'abs', type: 'symlink', linkname: '/' },
      { name: `abs/${suite.canary.evil}`, content: 'seven\n' },
      // a hard link whose target goes through two links: what it names inside the destination
      { name: 'hl', type: 'link', linkname: 'abs/lnk/f' },
    ]);
    const dockerfile = `FROM ${BASE}\nRUN mkdir -p /opt/sub && ln -s /sub /opt/lnk\nADD t.tar /opt/\n`;
    const { ctx, r } = await build({ Dockerfile: dockerfile, 't.tar': archive }, 'sec-chroot:1');
    assert.equal(r.code, 0, r.stderr);
    suite.canary.verify();
    const got = await kilnListing(suite.root, 'sec-chroot:1', ['/opt']);
    assert.match(got, /^\/opt\/sub\/f\|regular file\|644\|0:0\|2\|/m);
    assert.match(got, /^\/opt\/hl\|regular file\|644\|0:0\|2\|/m);
    assert.match(got, new RegExp(`^/opt/${suite.canary.evil}\\|regular file`, 'm'));
    if (!suite.oracle) return t.skip('dockerd not available');
    const d = await suite.oracle.build(ctx, 'kiln-sec-chroot:1');
    assert.equal(d.code, 0, d.stderr);
    assert.equal(got, await suite.oracle.listing('kiln-sec-chroot:1', ['/opt']));
  });

  it('ADD --chown owns every unpacked entry and the new destination (current BuildKit)', async () => {
    // dockerfile_add_test.go testDockerfileAddChownArchive: out/ and out/foo are 100:200;
    // directories the archive only implies stay root's (as BuildKit's untar makes them)
    const archive = await makeTar([
      { name: 'foo', content: 'content0', uid: 7, gid: 8 },
      { name: 'implied/bar', content: 'b', uid: 9, gid: 9 },
      { name: 'ln', type: 'symlink', linkname: 'foo', uid: 3, gid: 3 },
    ]);
    const { r } = await build({ Dockerfile: `FROM ${BASE}\nADD --chown=100:200 t.tar /out/\n`, 't.tar': archive }, 'sec-chown:1');
    assert.equal(r.code, 0, r.stderr);
    const got = await kilnListing(suite.root, 'sec-chown:1', ['/out']);
    assert.match(got, /^\/out\|directory\|755\|100:200\|/m);
    assert.match(got, /^\/out\/foo\|regular file\|644\|100:200\|/m);
    assert.match(got, /^\/out\/implied\|directory\|755\|0:0\|/m);
    assert.match(got, /^\/out\/implied\/bar\|regular file\|644\|100:200\|/m);
    assert.match(got, /^\/out\/ln\|symbolic link\|777\|100:200\|1\|-> foo$/m);
    suite.canary.verify();
  });

  it('modes, times (directories\' after their children), owners and links are the archive\'s', async () => {
    const archive = await makeTar([
      { name: 'd/', type: 'directory', mode: 0o750, uid: 5, gid: 6, mtime: 1_500_000_000 },
      { name: 'd/f', content: 'f', mode: 0o4755, uid: 7, gid: 8, mtime: 1_400_000_000 },
      { name: 'd/ln', type: 'symlink', linkname: '../nowhere', mtime: 1_300_000_000 },
      { name: 'd/sub/g', content: 'g' },
    ]);
    const { r } = await build({ Dockerfile: `FROM ${BASE}\nADD t.tar /m/\n`, 't.tar': archive }, 'sec-meta:1');
    assert.equal(r.code, 0, r.stderr);
    const run = await runKiln(['run', '--rm', 'sec-meta:1', 'sh', '-c', 'stat -c "%n %a %u:%g %Y" /m/d /m/d/f /m/d/ln /m/d/sub; readlink /m/d/ln'], { root: suite.root });
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines[0], '/m/d 750 5:6 1500000000');
    assert.equal(lines[1], '/m/d/f 4755 7:8 1400000000', 'setuid survives the chown');
    assert.equal(lines[2], '/m/d/ln 777 0:0 1300000000');
    assert.match(lines[3], /^\/m\/d\/sub 755 0:0 \d+$/, 'an implied directory is 0755 and root\'s');
    assert.equal(lines[4], '../nowhere', 'a link is written as it is');
  });

  it('PAX xattrs of unpacked entries reach the layer', async () => {
    const archive = await makeTar([{ name: 'x.txt', content: 'x', pax: { 'SCHILY.xattr.user.kiln': 'yes' } }]);
    const { r } = await build({ Dockerfile: `FROM ${BASE}\nADD t.tar /xa/\n`, 't.tar': archive }, 'sec-xattr:1');
    assert.equal(r.code, 0, r.stderr);
    const { dir, cleanup } = await tempDir('kiln-sec-save-');
    try {
      const out = path.join(dir, 'img.tar');
      const saved = await runKiln(['save', '-o', out, 'sec-xattr:1'], { root: suite.root });
      assert.equal(saved.code, 0, saved.stderr);
      let found: string | undefined;
      for await (const outer of tarEntries(createReadStream(out))) {
        const chunks: Buffer[] = [];
        for await (const c of outer.stream) chunks.push(c as Buffer);
        try {
          for await (const inner of tarEntries(Readable.from([Buffer.concat(chunks)]))) {
            if (inner.header.name.replace(/^\.?\//, '') === 'xa/x.txt') found = inner.header.pax?.['SCHILY.xattr.user.kiln'];
          }
        } catch {
          // a config or manifest, not a layer
        }
      }
      assert.equal(found, 'yes');
    } finally {
      await cleanup();
    }
  });

  it('compressed archives unpack; --unpack=false copies; a file that is no tar is copied', async () => {
    const tar = await makeTar([{ name: 'inside.txt', content: 'unpacked\n', pax: { 'SCHILY.xattr.user.kiln': 'yes' } }]);
    const files: Record<string, Buffer | string> = { 't.tar': tar, 't.tar.gz': gzipSync(tar), 'junk.tar': Buffer.from('this is no tar archive\n'.repeat(40)) };
    for (const [tool, ext] of [['bzip2', 'bz2'], ['xz', 'xz'], ['zstd', 'zst']]) {
      files[`t.tar.${ext}`] = execFileSync(tool, ['-c'], { input: tar });
    }
    files.Dockerfile = [
      `FROM ${BASE}`,
      'ADD t.tar /plain/',
      'ADD t.tar.gz /gz/',
      'ADD t.tar.bz2 /bz2/',
      'ADD t.tar.xz /xz/',
      'ADD t.tar.zst /zst/',
      'ADD --unpack=false t.tar.gz /kept/',
      'ADD junk.tar /junk/',
      '',
    ].join('\n');
    const { r } = await build(files, 'sec-formats:1');
    assert.equal(r.code, 0, r.stderr);
    const got = await kilnListing(suite.root, 'sec-formats:1', ['/plain', '/gz', '/bz2', '/xz', '/zst', '/kept', '/junk']);
    for (const d of ['plain', 'gz', 'bz2', 'xz', 'zst']) assert.match(got, new RegExp(`^/${d}/inside\\.txt\\|regular file`, 'm'), got);
    assert.match(got, /^\/kept\/t\.tar\.gz\|regular file/m);
    assert.doesNotMatch(got, /^\/kept\/inside/m);
    assert.match(got, /^\/junk\/junk\.tar\|regular file/m);
  });

  it('truncated and corrupt archives are clear errors naming the file', async () => {
    const tar = await makeTar([{ name: 'big.txt', content: randomBytes(30_000).toString('base64') }]);
    const gz = gzipSync(tar);
    const cases: Array<[string, Buffer]> = [
      ['cut.tar', tar.subarray(0, 5000)],
      // cut after the first header: BuildKit sees an archive there, and fails to unpack it
      ['cut.tar.gz', gz.subarray(0, Math.floor(gz.length / 2))],
    ];
    for (const [name, bytes] of cases) {
      const { r } = await build({ Dockerfile: `FROM ${BASE}\nADD ${name} /x/\n`, [name]: bytes }, 'sec-bad:1');
      assertCleanError(r, new RegExp(`ADD ${name.replace(/\./g, '\\.')}: the archive is truncated or corrupt`));
    }
  });

  it('ADD of a URL unpacks only with --unpack=true (dockerfile_add_test.go testDockerfileAddArchive)', async () => {
    const tgz = gzipSync(await makeTar([{ name: 'foo', content: 'content0' }]));
    const server = http.createServer((_req, res) => res.end(tgz)).listen(0, '127.0.0.1');
    try {
      await new Promise((ok) => (server.listening ? ok(undefined) : server.once('listening', ok)));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/t.tar.gz`;
      const { r } = await build({ Dockerfile: `FROM ${BASE}\nADD ${url} /kept/\nADD --unpack=true ${url} /dest/\n` }, 'sec-url:1');
      assert.equal(r.code, 0, r.stderr);
      const got = await kilnListing(suite.root, 'sec-url:1', ['/kept', '/dest']);
      assert.match(got, /^\/kept\/t\.tar\.gz\|regular file/m);
      assert.match(got, /^\/dest\/foo\|regular file/m);
      assert.doesNotMatch(got, /^\/dest\/t\.tar\.gz/m);
    } finally {
      server.close();
    }
  });

  it('ADD --checksum of a URL is verified (dockerfile_add_test.go testAddChecksum)', async () => {
    const body = 'checked content\n';
    const server = http.createServer((_req, res) => res.end(body)).listen(0, '127.0.0.1');
    try {
      await new Promise((ok) => (server.listening ? ok(undefined) : server.once('listening', ok)));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/f.txt`;
      const good = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      const ok = await build({ Dockerfile: `FROM ${BASE}\nARG SUM=${good}\nADD --checksum=\${SUM} ${url} /f.txt\n` }, 'sec-sum-ok:1');
      assert.equal(ok.r.code, 0, ok.r.stderr);
      const bad = await build({ Dockerfile: `FROM ${BASE}\nADD --checksum=sha256:${'0'.repeat(64)} ${url} /f.txt\n` }, 'sec-sum-bad:1');
      assertCleanError(bad.r, /digest mismatch/);
      const md5sum = await build({ Dockerfile: `FROM ${BASE}\nADD --checksum=md5:7e55db001d319a94b0b713529a756623 ${url} /f.txt\n` }, 'sec-sum-md5:1');
      assertCleanError(md5sum.r, /unsupported digest algorithm/);
      const junk = await build({ Dockerfile: `FROM ${BASE}\nADD --checksum=sha256:abc ${url} /f.txt\n` }, 'sec-sum-junk:1');
      assertCleanError(junk.r, /invalid checksum digest format/);
    } finally {
      server.close();
    }
  });

  it('ADD --checksum with a local source is an error, as in BuildKit', async () => {
    const { r } = await build({ Dockerfile: `FROM ${BASE}\nADD --checksum=sha256:${'0'.repeat(64)} f /f\n`, f: 'x' }, 'sec-sum:1');
    assertCleanError(r, /checksum requires HTTP\(S\) or Git sources/);
  });
});
