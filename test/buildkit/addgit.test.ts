/**
 * Port of BuildKit's frontend/dockerfile/dockerfile_addgit_test.go (see test/buildkit/README.md).
 * The repositories are served as the Go tests serve them: their work tree over dumb http
 * (a node static file server on 127.0.0.1, test/git-harness.ts). `alpine` with `apk add git`
 * is busybox here: what the Go test checks with git inside RUN (`git status -s` clean) is
 * checked on the image's .git instead. All assertion cases: docker 20.10's frontend fetches a
 * .git URL as a plain file (ADD of a git repository came with Dockerfile 1.5).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { gitSupportsSha256, revParse, serveDumb, sh, type Served } from '../git-harness.js';
import { hasEntry, port, readImageFile, resolveEntry, useHarness } from './harness.js';

const h = useHarness();

async function repoDir(t: TestContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-bk-git-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(t: TestContext, dir: string): Promise<Served> {
  const s = await serveDumb(dir);
  t.after(() => s.close());
  return s;
}

/** Three tagged commits, each setting foo to "foo of <tag>". */
async function taggedRepo(t: TestContext, format: 'sha1' | 'sha256', tags: string[]): Promise<string> {
  const dir = await repoDir(t);
  await sh(dir, `git init -q${format === 'sha256' ? ' --object-format=sha256' : ''}`, ...tags.flatMap((tag) => [`echo foo of ${tag} >foo`, 'git add foo', `git commit -q -m ${tag}`, `git tag ${tag}`]), 'git update-server-info');
  return dir;
}

async function testAddGit(t: TestContext, format: 'sha1' | 'sha256'): Promise<void> {
  const dir = await taggedRepo(t, format, ['v0.0.1', 'v0.0.2', 'v0.0.3']);
  const v2 = await revParse(dir, 'v0.0.2');
  const v3 = await revParse(dir, 'v0.0.3');
  const srv = await serve(t, dir);
  const url = srv.url;

  // basic case, and the complicated one: --keep-git-dir, --chown, --checksum, ARGs
  let img = await h.kiln({
    dockerfile: [
      'FROM busybox',
      `ADD ${url}#v0.0.1 /x`,
      'RUN cd /x && [ "$(cat foo)" = "foo of v0.0.1" ]',
      `ARG REPO="${url}"`,
      'ARG TAG="v0.0.2"',
      `ADD --keep-git-dir=true --chown=4242:8484 --checksum=${v2} \${REPO}#\${TAG} /buildkit-chowned`,
      'USER 4242',
      'RUN cd /buildkit-chowned && [ "$(cat foo)" = "foo of v0.0.2" ] && [ "$(stat -c %u foo)" = "4242" ] && [ "$(stat -c %g foo)" = "8484" ]',
      '',
    ].join('\n'),
  });
  // `git status -s` is empty: HEAD at the commit, the index there, every file owned as asked
  assert.equal(readImageFile(img, 'buildkit-chowned/.git/HEAD'), `${v2}\n`);
  assert.ok(hasEntry(img, 'buildkit-chowned/.git/index'));
  const head = resolveEntry(img, 'buildkit-chowned/.git/HEAD');
  assert.deepEqual([head.uid, head.gid], [4242, 8484]);

  // with --checksum, without --keep-git-dir
  img = await h.kiln({
    dockerfile: [
      'FROM busybox',
      `ARG REPO="${url}"`,
      'ARG TAG="v0.0.3"',
      `ADD --checksum=${v3} \${REPO}#\${TAG} /nogitdir`,
      'RUN [ -f /nogitdir/foo ]',
      'RUN [ "$(cat /nogitdir/foo)" = "foo of v0.0.3" ]',
      'RUN [ ! -d /nogitdir/.git ]',
      '',
    ].join('\n'),
  });

  // the ref pulled before, again
  await h.kiln({
    dockerfile: ['FROM busybox', `ARG REPO="${url}"`, 'ARG TAG="v0.0.2"', `ADD --keep-git-dir --checksum=${v2} \${REPO}#\${TAG} /nogitdir`, 'RUN [ -f /nogitdir/foo ]', 'RUN [ "$(cat /nogitdir/foo)" = "foo of v0.0.2" ]', 'RUN [ -d /nogitdir/.git ]', ''].join('\n'),
  });

  // the commit as both checksum and ref
  await h.kiln({
    dockerfile: ['FROM busybox', `ARG REPO="${url}"`, `ARG COMMIT="${v3}"`, `ADD --keep-git-dir=true --checksum=${v3} \${REPO}#\${COMMIT} /commitdir`, 'RUN [ -f /commitdir/foo ]', 'RUN [ "$(cat /commitdir/foo)" = "foo of v0.0.3" ]', 'RUN [ -d /commitdir/.git ]', ''].join('\n'),
  });

  // checksum does not match
  let r = await h.kilnFails({ dockerfile: ['FROM busybox', `ARG REPO="${url}"`, 'ARG TAG="v0.0.3"', `ADD --checksum=${v2} \${REPO}#\${TAG} /faildir`, ''].join('\n') });
  assert.match(r.stderr, /expected checksum to match/);

  // checksum is garbage
  r = await h.kilnFails({ dockerfile: ['FROM busybox', `ARG REPO="${url}"`, 'ARG TAG="v0.0.3"', `ADD --checksum=foobar \${REPO}#\${TAG} /faildir`, ''].join('\n') });
  assert.match(r.stderr, /invalid checksum/);
  assert.match(r.stderr, /expected hex commit hash/);
}

port('testAddGitSHA1', (t) => testAddGit(t, 'sha1'));

port('testAddGitSHA256', async (t) => {
  if (!gitSupportsSha256()) {
    t.skip('the host git cannot make sha256 repositories');
    return;
  }
  await testAddGit(t, 'sha256');
});

port('testAddGitChecksumCache', async (t) => {
  const dir = await taggedRepo(t, 'sha1', ['v0.0.1', 'v0.0.2']);
  const commit = await revParse(dir, 'v0.0.2');
  const srv = await serve(t, dir);
  const dockerfile = (flags: string) => `FROM busybox AS src\nADD --keep-git-dir ${flags}${srv.url}#v0.0.2 /repo\nRUN head -c 16 /dev/urandom | base64 > /repo/unique.txt\n\nFROM scratch\nCOPY --from=src /repo/unique.txt /\n`;
  const first = await h.kiln({ dockerfile: dockerfile('') });
  // with --checksum the ADD, hence the RUN after it, is the same step: the cache gives the same file
  const second = await h.kiln({ dockerfile: dockerfile(`--checksum=${commit} `) });
  assert.equal(readImageFile(second, 'unique.txt'), readImageFile(first, 'unique.txt'), 'cache should be matched and unique file content should be the same');
});

port('testGitQueryString', async (t) => {
  const subModDir = await repoDir(t);
  await sh(subModDir, 'git init -q', 'echo 123 >file', 'git add file', 'git commit -q -m initial', 'git update-server-info');
  const subSrv = await serve(t, subModDir);

  const dir = await repoDir(t);
  await sh(dir, 'git init -q -b master', 'echo base >foo');
  await fs.writeFile(path.join(dir, 'Dockerfile'), '\nFROM scratch AS withgit\nCOPY .git/HEAD out\n\nFROM scratch as withsubmod\nCOPY submod/file out\n\nFROM scratch\nCOPY foo out\n');
  await sh(
    dir,
    `git -c protocol.file.allow=always submodule add -q ${subSrv.url} submod`,
    'git add Dockerfile foo submod',
    'git commit -q -m initial',
    'git tag v0.0.1',
    'git branch base',
    'echo feature >foo',
    'mkdir sub',
    'echo subfeature >sub/foo',
    'cp Dockerfile sub/',
    'git add foo sub',
    'git commit -q -m feature',
    'git branch feature',
    'git checkout -q -B master base',
    'echo v0.0.2 >foo',
    'git add foo',
    'git commit -q -m v0.0.2',
    'git tag v0.0.2',
    'echo latest >foo',
    'git add foo',
    'git commit -q -m latest',
    'git tag latest',
    'git update-server-info',
  );
  const v2 = await revParse(dir, 'v0.0.2');
  const latest = await revParse(dir, 'latest');
  assert.equal(v2.length, 40);
  assert.notEqual(v2, latest);
  const srv = await serve(t, dir);
  const u = srv.url;

  const cases: Array<{ name: string; url: string; target?: string; expectOut?: string; expectErr?: string }> = [
    { name: 'tag with invalid commit', url: `${u}?tag=v0.0.2&commit=${latest}`, expectErr: 'expected checksum to match' },
    { name: 'old style ref', url: `${u}#v0.0.2`, expectOut: 'v0.0.2\n' },
    { name: 'querystring ref', url: `${u}?ref=base`, expectOut: 'base\n' },
    { name: 'querystring branch', url: `${u}?branch=base`, expectOut: 'base\n' },
    { name: 'querystring invalid branch', url: `${u}?branch=invalid`, expectErr: 'repository does not contain ref' },
    { name: 'tag as branch', url: `${u}?branch=v0.0.2`, expectErr: 'repository does not contain ref' },
    { name: 'allowed mixed refs', url: `${u}?tag=v0.0.2#refs/tags/v0.0.2`, expectOut: 'v0.0.2\n' },
    { name: 'v2 by commit', url: `${u}?commit=${latest}`, expectOut: 'latest\n' },
    { name: 'v2 by commit (wrong short)', url: `${u}?commit=${v2.slice(0, 8)}`, expectErr: 'expected checksum to match' },
    { name: 'v2 by commit (short)', url: `${u}?commit=${latest.slice(0, 8)}`, expectOut: 'latest\n' },
    { name: 'v2 ref by commit', url: `${u}?ref=${v2}`, expectOut: 'v0.0.2\n' },
    { name: 'v2 ref by commit (short)', url: `${u}?ref=${v2.slice(0, 8)}`, expectErr: 'repository does not contain ref' },
    { name: 'tag with commit', url: `${u}?tag=v0.0.2&commit=${v2}`, expectOut: 'v0.0.2\n' },
    { name: 'commit with commit', url: `${u}?ref=${v2}&commit=${v2}`, expectOut: 'v0.0.2\n' },
    { name: 'latest with commit', url: `${u}?commit=${latest}`, expectOut: 'latest\n' },
    { name: 'mismatch refs', url: `${u}?tag=v0.0.2#refs/heads/master`, expectErr: 'ref conflicts' },
    { name: 'sub old-style', url: `${u}#feature:sub`, expectOut: 'subfeature\n' },
    { name: 'sub query', url: `${u}?subdir=sub&ref=feature`, expectOut: 'subfeature\n' },
    { name: 'withgit', url: `${u}?keep-git-dir=true`, expectOut: `${latest}\n`, target: 'withgit' },
    { name: 'withgitandtag', url: `${u}?tag=v0.0.2&keep-git-dir=true`, expectOut: `${v2}\n`, target: 'withgit' },
    { name: 'withgit-default', url: u, expectErr: '.git/HEAD" not found', target: 'withgit' },
    { name: 'withgit-valueless', url: `${u}?keep-git-dir&submodules`, expectOut: `${latest}\n`, target: 'withgit' },
    { name: 'withgit-forbidden', url: `${u}?keep-git-dir=false`, expectErr: '.git/HEAD" not found', target: 'withgit' },
    { name: 'withsubmod', url: u, expectOut: '123\n', target: 'withsubmod' },
    { name: 'withsubmodset', url: `${u}?submodules=true`, expectOut: '123\n', target: 'withsubmod' },
    { name: 'withsubmodempty', url: `${u}?submodules`, expectOut: '123\n', target: 'withsubmod' },
    { name: 'withoutsubmod', url: `${u}?submodules=false`, expectErr: 'submod/file" not found', target: 'withsubmod' },
  ];
  // the Go test's "context_" half builds with the repository as the build context (kiln takes
  // a directory); its "add_" half, ported here, ADDs it
  for (const tc of cases) {
    const dockerfile = `\nFROM scratch AS main\nADD ${tc.url} /repo/\n\nFROM scratch as withsubmod\nCOPY --from=main /repo/submod/file /repo/foo\n\nFROM scratch AS withgit\nCOPY --from=main /repo/.git/HEAD /repo/foo\n\nFROM main\n`;
    await t.test(`add_${tc.name}`, async () => {
      if (tc.expectErr !== undefined) {
        const r = await h.kilnFails({ dockerfile, target: tc.target });
        assert.ok(r.stderr.includes(tc.expectErr), `${tc.name}: ${r.stderr}`);
        return;
      }
      const img = await h.kiln({ dockerfile, target: tc.target });
      assert.equal(readImageFile(img, 'repo/foo'), tc.expectOut);
    });
  }
});
