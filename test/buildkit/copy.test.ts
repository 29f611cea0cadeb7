/** Port of BuildKit's frontend/dockerfile/dockerfile_copy_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { hasEntry, port, readImageFile, resolveEntry, useHarness } from './harness.js';

const h = useHarness();

port('testDockerfileCopyFromArgs', async () => {
  const r = await h.kilnFails({ dockerfile: 'FROM scratch\nCOPY --from=$FOO . .\n' });
  assert.match(r.stderr, /variable expansion is not supported for --from/);
});

port('testEmptyDestDir', async () => {
  await h.differential({
    dockerfile: 'FROM busybox\nENV empty=""\nCOPY testfile $empty\nRUN [ "$(cat testfile)" == "contents0" ]\n',
    files: { testfile: { content: 'contents0', mode: 0o600 } },
  });
});

port('testPreserveDestDirSlash', async () => {
  const img = await h.differential({
    dockerfile: 'FROM busybox\nCOPY testfile /sample/\nRUN [ "$(cat /sample/testfile)" == "contents0" ]\n',
    files: { testfile: { content: 'contents0', mode: 0o600 } },
  });
  assert.equal(resolveEntry(img, '/sample').type, 'dir');
});

port('testCopyLinkDotDestDir', async () => {
  // COPY --link needs Dockerfile 1.4; docker 20.10's frontend rejects the flag
  const img = await h.kiln({
    dockerfile: 'FROM busybox\nWORKDIR /var/www\nCOPY --link testfile .\nRUN [ "$(cat testfile)" == "contents0" ]\n',
    files: { testfile: { content: 'contents0', mode: 0o600 } },
  });
  assert.equal(readImageFile(img, '/var/www/testfile'), 'contents0');
});

port('testCopyLinkEmptyDestDir', async () => {
  const img = await h.kiln({
    dockerfile: 'FROM busybox\nWORKDIR /var/www\nENV empty=""\nCOPY --link testfile $empty\nRUN [ "$(cat testfile)" == "contents0" ]\n',
    files: { testfile: { content: 'contents0', mode: 0o600 } },
  });
  assert.equal(resolveEntry(img, '/var/www').type, 'dir');
  assert.equal(readImageFile(img, '/var/www/testfile'), 'contents0');
});

const chownExistingDockerfile = (chown: string) => {
  const check = (e: string, p: string) => `e="${e}"; p="${p}"; a=$(stat -c "%u:%g" "$p"); if [ "$a" != "$e" ]; then echo "owner of $p: want $e, got $a"; exit 1; fi`;
  const plain = chown === '';
  const flag = plain ? '' : ` --chown=${chown}`;
  const own = (orig: string) => (plain ? orig : chown);
  return [
    'FROM busybox AS source',
    'RUN touch /file && chown 100:200 /file && mkdir -p /dir/subdir && touch /dir/subdir/nestedfile && chown 100:200 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile',
    'FROM busybox AS test_base',
    'RUN mkdir -p /existingdir/existingsubdir && touch /existingdir/existingfile && chown 500:600 /existingdir && chown 501:601 /existingdir/existingsubdir && chown 501:601 /existingdir/existingfile',
    'FROM test_base',
    `COPY --from=source${flag} /file .`,
    `COPY --from=source${flag} /dir /dir`,
    `COPY --from=source${flag} /dir/. /existingdir`,
    'RUN ' +
      [
        check(own('100:200'), '/file'),
        check(plain ? '0:0' : chown, '/dir'),
        check(own('101:201'), '/dir/subdir'),
        check(own('102:202'), '/dir/subdir/nestedfile'),
        check('500:600', '/existingdir'),
        check('501:601', '/existingdir/existingsubdir'),
        check('501:601', '/existingdir/existingfile'),
        check(own('101:201'), '/existingdir/subdir'),
        check(own('102:202'), '/existingdir/subdir/nestedfile'),
      ].join(' && '),
    '',
  ].join('\n');
};

port('testCopyChownExistingDir', async () => {
  await h.differential({ dockerfile: chownExistingDockerfile('') });
  await h.differential({ dockerfile: chownExistingDockerfile('300:400') });
});

port('testCopyWildcardCache', async () => {
  const dockerfile = 'FROM busybox AS base\nCOPY foo* files/\nRUN cat /dev/urandom | head -c 100 | sha256sum > unique\nCOPY bar files/\nFROM scratch\nCOPY --from=base unique /\n';
  const files = { foo1: 'foo1-data', foo2: 'foo2-data', bar: 'bar-data' };
  const first = readImageFile(await h.kiln({ dockerfile, files }), 'unique');
  const second = readImageFile(await h.kiln({ dockerfile, files: { ...files, bar: 'bar-data-mod' } }), 'unique');
  assert.equal(second, first, 'a change after the RUN keeps its cache');
  const third = readImageFile(await h.kiln({ dockerfile, files: { ...files, bar: 'bar-data-mod', foo2: 'foo2-data-mod' } }), 'unique');
  assert.notEqual(third, first, 'a change to a wildcard source before the RUN reruns it');
});

port('testEmptyWildcard', async () => {
  const img = await h.differential({ dockerfile: 'FROM scratch\nCOPY foo nomatch* /\n', files: { foo: 'contents0' } });
  assert.equal(readImageFile(img, 'foo'), 'contents0');
});

port('testCopyChownCreateDest', async () => {
  await h.differential({
    dockerfile: [
      'FROM busybox',
      'ARG group',
      'ENV owner user01',
      // the busybox-static base has no adduser: the same users written by hand
      `RUN echo 'user:x:1001:1001::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1001:' >> /etc/group`,
      `RUN echo 'user01:x:1002:1002::/home/user01:/bin/sh' >> /etc/passwd && echo 'user01:x:1002:' >> /etc/group`,
      'COPY --chown=user:user . /dest',
      'COPY --chown=${owner}:${group} . /dest01',
      'RUN [ "$(stat -c "%U %G" /dest)" == "user user" ]',
      'RUN [ "$(stat -c "%U %G" /dest01)" == "user01 user" ]',
      '',
    ].join('\n'),
    buildArgs: { group: 'user' },
  });
});

port('testCopyThroughSymlinkContext', async () => {
  const img = await h.differential({
    dockerfile: 'FROM scratch\nCOPY link/foo .\n',
    files: { link: { symlink: 'sub' }, sub: { dir: true, mode: 0o700 }, 'sub/foo': { content: 'contents', mode: 0o600 } },
  });
  assert.equal(readImageFile(img, 'foo'), 'contents');
});

port('testCopyThroughSymlinkMultiStage', async () => {
  const img = await h.differential({
    dockerfile: [
      'FROM busybox AS build',
      'RUN mkdir -p /out/sub && ln -s /out/sub /sub && ln -s out/sub /sub2 && echo -n "data" > /sub/foo',
      'FROM scratch',
      'COPY --from=build /sub/foo .',
      'COPY --from=build /sub2/foo bar',
      '',
    ].join('\n'),
  });
  assert.equal(readImageFile(img, 'foo'), 'data');
  assert.equal(readImageFile(img, 'bar'), 'data');
});

port('testCopySocket', async () => {
  const img = await h.differential({ dockerfile: 'FROM scratch\nCOPY . /\n', files: { 'socket.sock': { socket: true } } });
  assert.equal(resolveEntry(img, 'socket.sock').type, 'file', 'a socket becomes a regular file');
});

port('testCopyFollowAllSymlinks', async () => {
  const img = await h.differential({
    dockerfile: 'FROM scratch\nCOPY foo /\nCOPY foo/sub bar\n',
    files: { bar: { content: 'bar-contents', mode: 0o600 }, foo: { dir: true, mode: 0o700 }, 'foo/sub': { symlink: '../bar' } },
  });
  // what the oracle gives (the Go test only asserts success): the named link is followed,
  // the link inside the copied directory stays a link
  assert.equal(resolveEntry(img, 'bar').type, 'file');
  assert.equal(readImageFile(img, 'bar'), 'bar-contents');
  assert.equal(resolveEntry(img, 'sub').type, 'symlink');
});

port('testCopySymlinks', async () => {
  const img = await h.differential({
    dockerfile: 'FROM scratch\nCOPY foo /\nCOPY sub/l* alllinks/\n',
    files: {
      bar: { content: 'bar-contents', mode: 0o600 },
      foo: { symlink: 'bar' },
      sub: { dir: true, mode: 0o700 },
      'sub/lfile': { content: 'lfile-contents', mode: 0o600 },
      'sub/l0': { symlink: 'subfile' },
      'sub/subfile': { content: 'subfile-contents', mode: 0o600 },
      'sub/l1': { symlink: 'second' },
      'sub/second': { symlink: 'baz' },
      'sub/baz': { content: 'baz-contents', mode: 0o600 },
    },
  });
  assert.equal(readImageFile(img, 'foo'), 'bar-contents');
  assert.equal(readImageFile(img, 'alllinks/l0'), 'subfile-contents');
  assert.equal(readImageFile(img, 'alllinks/lfile'), 'lfile-contents');
  assert.equal(readImageFile(img, 'alllinks/l1'), 'baz-contents');
  // named (or matched) symlinks are copied as what they point to
  assert.equal(resolveEntry(img, 'foo').type, 'file');
  assert.equal(resolveEntry(img, 'alllinks/l1').type, 'file');
});

port('testCopyChown', async () => {
  const img = await h.differential({
    dockerfile: [
      'FROM busybox AS base',
      // upstream busybox has a daemon user (1:1) and names group 65534 nobody; the busybox-static base does not
      `RUN echo 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' >> /etc/passwd && echo 'daemon:x:1:' >> /etc/group && sed -i 's/^nogroup:/nobody:/' /etc/group`,
      'ENV owner 1000',
      'RUN mkdir -m 0777 /out',
      'COPY --chown=daemon foo /',
      'COPY --chown=1000:nobody bar /baz',
      'ARG group',
      'COPY --chown=${owner}:${group} foo /foobis',
      'RUN stat -c "%U %G" /foo  > /out/fooowner',
      'RUN stat -c "%u %G" /baz/sub  > /out/subowner',
      'RUN stat -c "%u %G" /foobis  > /out/foobisowner',
      'FROM scratch',
      'COPY --from=base /out /',
      '',
    ].join('\n'),
    files: { foo: { content: 'foo-contents', mode: 0o600 }, bar: { dir: true, mode: 0o700 }, 'bar/sub': { content: '', mode: 0o600 } },
    buildArgs: { group: 'nobody' },
  });
  assert.equal(readImageFile(img, 'fooowner'), 'daemon daemon\n');
  assert.equal(readImageFile(img, 'subowner'), '1000 nobody\n');
  assert.equal(readImageFile(img, 'foobisowner'), '1000 nobody\n');
});

port('testCopyChmod', async () => {
  const img = await h.differential({
    dockerfile: [
      'FROM busybox AS base',
      'RUN mkdir -m 0777 /out',
      'COPY --chmod=0644 foo /',
      'COPY --chmod=777 bar /baz',
      'COPY --chmod=0 foo /foobis',
      'COPY --chmod=777 foo /parent/foo',
      'COPY --chmod=770 foo /parent/sub/foo',
      'ARG mode',
      'COPY --chmod=${mode} foo /footer',
      'RUN stat -c "%04a" /foo  > /out/fooperm',
      'RUN stat -c "%04a" /baz  > /out/barperm',
      'RUN stat -c "%04a" /foobis  > /out/foobisperm',
      'RUN stat -c "%04a" /parent  > /out/parentperm',
      'RUN stat -c "%04a" /parent/sub  > /out/subparentperm',
      'RUN stat -c "%04a" /footer  > /out/footerperm',
      'FROM scratch',
      'COPY --from=base /out /',
      '',
    ].join('\n'),
    files: { foo: { content: 'foo-contents', mode: 0o600 }, bar: { content: 'bar-contents', mode: 0o700 } },
    buildArgs: { mode: '755' },
  }, { ignore: ['/footerperm', '/parentperm', '/subparentperm'] });
  assert.equal(readImageFile(img, 'fooperm'), '0644\n');
  assert.equal(readImageFile(img, 'barperm'), '0777\n');
  assert.equal(readImageFile(img, 'foobisperm'), '0000\n');
  // parents created for the file get its mode in current BuildKit (docker 20.10: 0755)
  assert.equal(readImageFile(img, 'parentperm'), '0777\n');
  assert.equal(readImageFile(img, 'subparentperm'), '0770\n');
  // docker 20.10 does not expand ARGs in --chmod: the Go test's value is the reference
  assert.equal(readImageFile(img, 'footerperm'), '0755\n');
});

port('testCopyInvalidChmod', async () => {
  for (const mode of ['64a', '10000']) {
    const r = await h.kilnFails({ dockerfile: `FROM scratch\nCOPY --chmod=${mode} foo /\n`, files: { foo: 'foo-contents' } });
    assert.match(r.stderr, new RegExp(`invalid chmod parameter: '${mode}'. it should be octal string and between 0 and 07777`));
  }
});

port('testCopyOverrideFiles', async () => {
  const img = await h.differential({
    dockerfile: 'FROM scratch AS base\nCOPY sub sub\nCOPY sub sub\nCOPY files/foo.go dest/foo.go\nCOPY files/foo.go dest/foo.go\nCOPY files dest\n',
    files: {
      sub: { dir: true, mode: 0o700 },
      'sub/dir1': { dir: true, mode: 0o700 },
      'sub/dir1/dir2': { dir: true, mode: 0o700 },
      'sub/dir1/dir2/foo': { content: 'foo-contents', mode: 0o600 },
      files: { dir: true, mode: 0o700 },
      'files/foo.go': { content: 'foo.go-contents', mode: 0o600 },
    },
  });
  assert.equal(readImageFile(img, 'sub/dir1/dir2/foo'), 'foo-contents');
  assert.equal(readImageFile(img, 'dest/foo.go'), 'foo.go-contents');
});

port('testCopyVarSubstitution', async () => {
  const img = await h.differential({ dockerfile: 'FROM scratch AS base\nENV FOO bar\nCOPY $FOO baz\n', files: { bar: 'bar-contents' } });
  assert.equal(readImageFile(img, 'baz'), 'bar-contents');
});

port('testCopyWildcards', async () => {
  const img = await h.differential({
    dockerfile: [
      'FROM scratch AS base',
      'COPY *.go /gofiles/',
      'COPY f*.go foo2.go',
      'COPY sub/* /subdest/',
      'COPY sub/*/dir2/foo /subdest2/',
      'COPY sub/*/dir2/foo /subdest3/bar',
      'COPY . all/',
      'COPY sub/dir1/ subdest4',
      'COPY sub/dir1/. subdest5',
      'COPY sub/dir1 subdest6',
      '',
    ].join('\n'),
    files: {
      'foo.go': { content: 'foo-contents', mode: 0o600 },
      'bar.go': { content: 'bar-contents', mode: 0o600 },
      sub: { dir: true, mode: 0o700 },
      'sub/dir1': { dir: true, mode: 0o700 },
      'sub/dir1/dir2': { dir: true, mode: 0o700 },
      'sub/dir1/dir2/foo': { content: 'foo-contents', mode: 0o600 },
    },
  });
  const want: Record<string, string> = {
    'gofiles/foo.go': 'foo-contents',
    'gofiles/bar.go': 'bar-contents',
    'foo2.go': 'foo-contents',
    'subdest/dir2/foo': 'foo-contents',
    'subdest2/foo': 'foo-contents',
    'subdest3/bar': 'foo-contents',
    'all/foo.go': 'foo-contents',
    'subdest4/dir2/foo': 'foo-contents',
    'subdest5/dir2/foo': 'foo-contents',
    'subdest6/dir2/foo': 'foo-contents',
  };
  for (const [p, content] of Object.entries(want)) assert.equal(readImageFile(img, p), content, p);
  assert.equal(resolveEntry(img, 'foo2.go').type, 'file', 'one wildcard match to a name without a slash is a file');
});

port('testCopyRelative', async () => {
  await h.differential({
    dockerfile: [
      'FROM busybox',
      'WORKDIR /test1',
      'WORKDIR test2',
      `RUN sh -c "[ "$PWD" = '/test1/test2' ]"`,
      'COPY foo ./',
      `RUN sh -c "[ $(cat /test1/test2/foo) = 'hello' ]"`,
      'ADD foo ./bar/baz',
      `RUN sh -c "[ $(cat /test1/test2/bar/baz) = 'hello' ]"`,
      'COPY foo ./bar/baz2',
      `RUN sh -c "[ $(cat /test1/test2/bar/baz2) = 'hello' ]"`,
      'WORKDIR ..',
      'COPY foo ./',
      `RUN sh -c "[ $(cat /test1/foo) = 'hello' ]"`,
      'COPY foo /test3/',
      `RUN sh -c "[ $(cat /test3/foo) = 'hello' ]"`,
      'WORKDIR /test4',
      'COPY . .',
      `RUN sh -c "[ $(cat /test4/foo) = 'hello' ]"`,
      'WORKDIR /test5/test6',
      'COPY foo ../',
      `RUN sh -c "[ $(cat /test5/foo) = 'hello' ]"`,
      '',
    ].join('\n'),
    files: { foo: { content: 'hello', mode: 0o600 } },
  });
});

port('testCopyUnicodePath', async () => {
  const names = { 'test-äöü.txt': 'foo', 'test-%C3%A4%C3%B6%C3%BC.txt': 'bar', 'test+aou.txt': 'baz' };
  const img = await h.differential({
    dockerfile: `FROM busybox\n${Object.keys(names).map((n) => `COPY ${n} /`).join('\n')}\n`,
    files: names,
  });
  for (const [n, c] of Object.entries(names)) assert.equal(readImageFile(img, n), c);
});

port('testChmodNonOctal', async () => {
  // symbolic modes need a newer frontend than docker 20.10's: checked against chmod(1) in the build
  const cases = [
    { src: 'file', dst: 'f1', mode: 'go-w' },
    { src: 'file', dst: 'f2', mode: 'u=rw,g=r,o=r' },
    { src: 'file', dst: 'f3', mode: 'a+X' },
    { src: 'dir', dst: 'd1', mode: 'go-w', dir: true },
    { src: 'dir', dst: 'd2', mode: 'u+rw,g+r,o-x,o+w', dir: true },
    { src: 'dir', dst: 'd3', mode: 'a+X', dir: true },
  ];
  const expected: string[] = [];
  const copies: string[] = [];
  const verify: string[] = [];
  for (const c of cases) {
    if (c.dir) {
      expected.push(`RUN mkdir -p /input/dirs/${c.dst} && cp -a /input/${c.src} /input/dirs/${c.dst}/${c.dst}`);
      expected.push(`RUN cp -a /input/dirs/${c.dst}/. /expected/ && chmod ${c.mode} /expected/${c.dst}`);
      copies.push(`COPY --from=base --chmod=${c.mode} /input/dirs/${c.dst} /`);
    } else {
      expected.push(`RUN cp -a /input/${c.src} /expected/${c.dst} && chmod ${c.mode} /expected/${c.dst}`);
      copies.push(`COPY --from=base --chmod=${c.mode} /input/${c.src} /${c.dst}`);
    }
    verify.push(`RUN [ "$(stat -c %A /actual/${c.dst})" = "$(stat -c %A /expected/${c.dst})" ]`);
  }
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS base',
      'RUN mkdir /input && touch /input/file && chmod 666 /input/file && mkdir /input/dir && chmod 124 /input/dir && mkdir /expected',
      ...expected,
      'FROM scratch AS result',
      ...copies,
      'FROM base',
      'COPY --from=result / /actual/',
      ...verify,
      '',
    ].join('\n'),
  });
  assert.ok(hasEntry(img, '/actual/d3'));
});

