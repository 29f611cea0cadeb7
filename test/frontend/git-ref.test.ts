/** Which ADD sources are git repositories and what they name (BuildKit's dfgitutil.ParseGitRef rules). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseGitRef } from '../../src/frontend/git.js';

describe('git sources of ADD', () => {
  it('are http(s) URLs whose path ends in .git, git://, ssh:// and user@host:path', () => {
    assert.deepEqual(parseGitRef('https://example.com/org/repo.git#v1:sub/dir'), { remote: 'https://example.com/org/repo.git', ref: 'v1', subdir: 'sub/dir', ssh: false });
    assert.deepEqual(parseGitRef('git://example.com/repo#main'), { remote: 'git://example.com/repo', ref: 'main', subdir: '', ssh: false });
    assert.deepEqual(parseGitRef('ssh://git@example.com:2222/srv/repo.git'), { remote: 'ssh://git@example.com:2222/srv/repo.git', ref: '', subdir: '', ssh: true });
    assert.deepEqual(parseGitRef('git@github.com:moby/buildkit.git#v0.12:docs'), { remote: 'git@github.com:moby/buildkit.git', ref: 'v0.12', subdir: 'docs', ssh: true });
    // a subdir is cleaned as a path in the repository: it cannot climb out
    assert.equal(parseGitRef('https://h/r.git#main:../../etc/')?.subdir, 'etc');
  });

  it('are not: plain URLs, local paths (github.com/... too, as BuildKit), other schemes', () => {
    for (const src of ['https://example.com/file.tar.gz', 'http://example.com/repo', './repo.git', '../x.git', 'github.com/moby/buildkit', 'ftp://example.com/r.git', 'dir/repo.git', 'C:foo']) {
      assert.equal(parseGitRef(src), undefined, src);
    }
  });

  it('read BuildKit query strings: ref, tag, branch, commit, subdir, keep-git-dir, submodules, mtime', () => {
    const u = 'https://h/r.git';
    assert.deepEqual(parseGitRef(`${u}?tag=v1&commit=abc123&subdir=a/b&keep-git-dir&submodules=false&mtime=commit`), {
      remote: u,
      ref: 'refs/tags/v1',
      subdir: 'a/b',
      checksum: 'abc123',
      keepGitDir: true,
      submodules: false,
      mtime: 'commit',
      ssh: false,
    });
    assert.equal(parseGitRef(`${u}?branch=dev`)?.ref, 'refs/heads/dev');
    assert.equal(parseGitRef(`${u}?tag=v1#refs/tags/v1`)?.ref, 'refs/tags/v1');
    assert.equal(parseGitRef(`${u}?ref=main#main`)?.ref, 'main');
    assert.equal(parseGitRef('git@h:r.git?ref=dev#dev:x')?.subdir, 'x');
  });

  it('refuse what BuildKit refuses, with its words', () => {
    const u = 'https://h/r.git';
    const cases: Array<[string, RegExp]> = [
      [`${u}?tag=v1#refs/heads/main`, /ref conflicts: "refs\/heads\/main" vs "refs\/tags\/v1"/],
      [`${u}?ref=a#b`, /ref conflicts: "b" vs "a"/],
      [`${u}?tag=v1&branch=main`, /branch conflicts with tag/],
      [`${u}?subdir=a#main:b`, /subdir conflicts/],
      [`${u}?ref=`, /query "ref" has no value/],
      [`${u}?ref=a&ref=b`, /query "ref" has multiple values/],
      [`${u}?keep-git-dir=maybe`, /invalid keep-git-dir value: "maybe"/],
      [`${u}?mtime=now`, /invalid mtime value/],
      [`${u}?depth=1`, /unexpected query "depth"/],
    ];
    for (const [src, re] of cases) assert.throws(() => parseGitRef(src), re, src);
  });
});
