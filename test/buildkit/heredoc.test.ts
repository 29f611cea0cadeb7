/**
 * Port of BuildKit's frontend/dockerfile/dockerfile_heredoc_test.go (see test/buildkit/README.md).
 * Heredocs need Dockerfile 1.4; docker 20.10's built-in frontend predates them, so these
 * are assertion tests.
 */
import assert from 'node:assert/strict';
import { port, readImageFile, useHarness, type ImageResult } from './harness.js';

const h = useHarness();

// upstream busybox has every applet in /bin; the busybox-static base keeps awk in /usr/bin
const binAwk = 'RUN ln -s /bin/busybox /bin/awk';

function expectFiles(img: ImageResult, want: Record<string, string>): void {
  for (const [name, content] of Object.entries(want)) assert.equal(readImageFile(img, name), content, name);
}

port('testCopyHeredoc', async () => {
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS build',
      // the busybox-static base has no adduser
      `RUN echo 'user:x:1001:1001::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1001:' >> /etc/group`,
      'WORKDIR /dest',
      'COPY <<EOF single',
      'single file',
      'EOF',
      'COPY <<EOF <<EOF2 double/',
      'first file',
      'EOF',
      'second file',
      'EOF2',
      'RUN mkdir -p /permfiles',
      'COPY --chmod=777 <<EOF /permfiles/all',
      'dummy content',
      'EOF',
      'COPY --chmod=0644 <<EOF /permfiles/rw',
      'dummy content',
      'EOF',
      'COPY --chown=user:user <<EOF /permfiles/owned',
      'dummy content',
      'EOF',
      'RUN stat -c "%04a" /permfiles/all >> perms && \\',
      '\tstat -c "%04a" /permfiles/rw >> perms && \\',
      '\tstat -c "%U:%G" /permfiles/owned >> perms',
      'FROM scratch',
      'COPY --from=build /dest /',
      '',
    ].join('\n'),
  });
  expectFiles(img, { single: 'single file\n', 'double/EOF': 'first file\n', 'double/EOF2': 'second file\n', perms: '0777\n0644\nuser:user\n' });
});

port('testCopyHeredocSpecialSymbols', async () => {
  const img = await h.kiln({
    dockerfile: [
      'FROM scratch',
      'COPY <<EOF quotefile',
      '"quotes in file"',
      'EOF',
      'COPY <<EOF slashfile1',
      '\\',
      'EOF',
      'COPY <<EOF slashfile2',
      '\\\\',
      'EOF',
      'COPY <<EOF slashfile3',
      '\\$',
      'EOF',
      'COPY <<"EOF" rawslashfile1',
      '\\',
      'EOF',
      'COPY <<"EOF" rawslashfile2',
      '\\\\',
      'EOF',
      'COPY <<"EOF" rawslashfile3',
      '\\$',
      'EOF',
      '',
    ].join('\n'),
  });
  expectFiles(img, {
    quotefile: '"quotes in file"\n',
    slashfile1: '\n',
    slashfile2: '\\\n',
    slashfile3: '$\n',
    rawslashfile1: '\\\n',
    rawslashfile2: '\\\\\n',
    rawslashfile3: '\\$\n',
  });
});

port('testRunBasicHeredoc', async () => {
  const img = await h.kiln({ dockerfile: 'FROM busybox AS build\nRUN <<EOF\necho "i am" >> /dest\nwhoami >> /dest\nEOF\nFROM scratch\nCOPY --from=build /dest /dest\n' });
  assert.equal(readImageFile(img, 'dest'), 'i am\nroot\n');
});

port('testRunFakeHeredoc', async () => {
  const img = await h.kiln({ dockerfile: `FROM busybox AS build\n${binAwk}\nSHELL ["/bin/awk"]\nRUN <<EOF\nBEGIN {\n\tprint "foo" > "/dest"\n}\nEOF\nFROM scratch\nCOPY --from=build /dest /dest\n` });
  assert.equal(readImageFile(img, 'dest'), 'foo\n');
});

port('testRunShebangHeredoc', async () => {
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS build',
      binAwk,
      'WORKDIR /dest',
      'RUN <<EOF',
      '#!/bin/awk -f',
      'BEGIN {',
      '\tprint "hello" >> "./out1"',
      '\tprint "world" >> "./out1"',
      '}',
      'EOF',
      'RUN <<-EOF',
      '\t#!/bin/awk -f',
      '\tBEGIN {',
      '\t\tprint "hello" >> "./out2"',
      '\t\tprint "world" >> "./out2"',
      '\t}',
      'EOF',
      'FROM scratch',
      'COPY --from=build /dest /',
      '',
    ].join('\n'),
  });
  expectFiles(img, { out1: 'hello\nworld\n', out2: 'hello\nworld\n' });
});

port('testRunComplexHeredoc', async () => {
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS build',
      'WORKDIR /dest',
      `RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \\`,
      `\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2`,
      'hello WORLD',
      'EOF1',
      'HELLO world',
      'EOF2',
      'RUN <<EOF 3<<IN1 4<<IN2 awk -f -',
      'BEGIN {',
      '\twhile ((getline line < "/proc/self/fd/3") > 0)',
      '\t\tprint tolower(line) > "./fd3"',
      '\twhile ((getline line < "/proc/self/fd/4") > 0)',
      '\t\tprint toupper(line) > "./fd4"',
      '}',
      'EOF',
      'hello WORLD',
      'IN1',
      'HELLO world',
      'IN2',
      'FROM scratch',
      'COPY --from=build /dest /',
      '',
    ].join('\n'),
  });
  expectFiles(img, { out1: 'hello world\n', out2: 'HELLO WORLD\n', fd3: 'hello world\n', fd4: 'HELLO WORLD\n' });
});

port('testHeredocIndent', async () => {
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS build',
      'COPY <<EOF /dest/foo-copy',
      '\tfoo',
      'EOF',
      'COPY <<-EOF /dest/bar-copy',
      '\tbar',
      'EOF',
      'RUN <<EOF',
      'echo "',
      '\tfoo" > /dest/foo-run',
      'EOF',
      'RUN <<-EOF',
      'echo "',
      '\tbar" > /dest/bar-run',
      'EOF',
      'RUN <<EOF',
      '#!/bin/sh',
      'echo "',
      '\tfoo" > /dest/foo2-run',
      'EOF',
      'RUN <<-EOF',
      '#!/bin/sh',
      'echo "',
      '\tbar" > /dest/bar2-run',
      'EOF',
      'RUN <<EOF sh > /dest/foo3-run',
      'echo "',
      '\tfoo"',
      'EOF',
      'RUN <<-EOF sh > /dest/bar3-run',
      'echo "',
      '\tbar"',
      'EOF',
      'FROM scratch',
      'COPY --from=build /dest /',
      '',
    ].join('\n'),
  });
  expectFiles(img, {
    'foo-copy': '\tfoo\n',
    'foo-run': '\n\tfoo\n',
    'foo2-run': '\n\tfoo\n',
    'foo3-run': '\n\tfoo\n',
    'bar-copy': 'bar\n',
    'bar-run': '\nbar\n',
    'bar2-run': '\nbar\n',
    'bar3-run': '\nbar\n',
  });
});

port('testHeredocVarSubstitution', async () => {
  const copies: Array<[string, string, string]> = [
    ['EOF', 'c1', 'Hello ${name}!'],
    [`'EOF'`, 'c2', 'Hello ${name}!'],
    ['"EOF"', 'c3', 'Hello ${name}!'],
    ['EOF', 'q1', `Hello '\${name}'!`],
    ['EOF', 'q2', 'Hello "${name}"!'],
    [`'EOF'`, 'qsingle1', `Hello '\${name}'!`],
    [`'EOF'`, 'qsingle2', 'Hello "${name}"!'],
    ['"EOF"', 'qdouble1', `Hello '\${name}'!`],
    ['"EOF"', 'qdouble2', 'Hello "${name}"!'],
  ];
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox as build',
      'ARG name=world',
      ...copies.flatMap(([marker, file, body]) => [`COPY <<${marker} /dest/${file}`, body, 'EOF']),
      'RUN <<EOF',
      'greeting="Hello"',
      'echo "${greeting} ${name}!" > /dest/r1',
      'EOF',
      'RUN <<EOF',
      'name="new world"',
      'echo "Hello ${name}!" > /dest/r2',
      'EOF',
      'FROM scratch',
      'COPY --from=build /dest /',
      '',
    ].join('\n'),
  });
  expectFiles(img, {
    c1: 'Hello world!\n',
    c2: 'Hello ${name}!\n',
    c3: 'Hello ${name}!\n',
    q1: `Hello 'world'!\n`,
    q2: 'Hello "world"!\n',
    qsingle1: `Hello '\${name}'!\n`,
    qsingle2: 'Hello "${name}"!\n',
    qdouble1: `Hello '\${name}'!\n`,
    qdouble2: 'Hello "${name}"!\n',
    r1: 'Hello world!\n',
    r2: 'Hello new world!\n',
  });
});

port('testOnBuildHeredoc', async () => {
  const base = await h.kilnBuild({ dockerfile: 'FROM busybox\nONBUILD RUN <<EOF\necho "hello world" >> /dest\nEOF\n' });
  assert.equal(base.code, 0, base.stderr);
  const img = await h.kiln({ dockerfile: `FROM ${base.tag} AS base\nFROM scratch\nCOPY --from=base /dest /dest\n` });
  assert.equal(readImageFile(img, 'dest'), 'hello world\n');
});
