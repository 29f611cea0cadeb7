/**
 * The build definition as BuildKit finds it, through the real CLI: the lowercase
 * `dockerfile` fallback, `<Dockerfile>.dockerignore` before `.dockerignore`, ignore
 * patterns BuildKit rejects, UTF-16 Dockerfiles, and ONBUILD heredoc triggers run by a
 * child build. Expectations checked against docker 20.10's BuildKit by hand (lowercase
 * fallback, per-Dockerfile ignore file, "!" and "[" rejected).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';
import { ignoreMatcher, patternProblem } from '../../src/dockerignore.js';

describe('ignore patterns BuildKit rejects', () => {
  it('a lone "!", an unclosed "[", a bad range and a trailing "\\" are problems; ordinary patterns are not', () => {
    for (const bad of ['!', '[', 'a[b', '[]', '[z-a]', 'x\\', '![']) assert.ok(patternProblem(bad), bad);
    for (const good of ['*.log', '!keep.log', 'docs/', '[ab]c', '[^a]', '[a-z]*', '\\[literal', '**/node_modules', '[]a]'.slice(1)]) {
      assert.equal(patternProblem(good), undefined, good);
    }
  });
});

describe('ignore patterns with regular-expression characters', () => {
  // BuildKit's patternmatcher matches . + ( ) | { } $ literally
  it('match the file of that name, not a regular expression', () => {
    const ig = ignoreMatcher(['foo(1).txt', 'c++', 'a|b', 'x{y}', 'v$1', '\\+esc', 'dir+/*.o']);
    for (const f of ['foo(1).txt', 'c++', 'a|b', 'x{y}', 'v$1', '+esc', 'dir+/x.o']) assert.equal(ig.ignores(f), true, f);
    for (const f of ['foo1.txt', 'c', 'cc', 'a', 'b', 'xy', 'xyy', 'v1', 'dirr/x.o']) assert.equal(ig.ignores(f), false, f);
  });
});

describe('the build definition', { skip: isRoot() ? false : 'needs root (runc)' }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws?.cleanup();
  });

  it('a context with only a lowercase "dockerfile" builds from it', async () => {
    const ctx = await ws.context({ dockerfile: 'FROM busybox:latest\nRUN echo lower > /made-by\n' });
    const r = await runKiln(['build', '-q', '-t', 'lower:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const run = await runKiln(['run', 'lower:1', 'cat', '/made-by'], { root: ws.root });
    assert.equal(run.stdout, 'lower\n');
    // kiln check finds it too
    const check = await runKiln(['check', ctx], { root: ws.root });
    assert.match(check.stdout, /dockerfile:1 /);
    // -f naming a missing .../Dockerfile falls back the same way
    const f = await runKiln(['build', '-q', '-f', path.join(ctx, 'Dockerfile'), ctx], { root: ws.root });
    assert.equal(f.code, 0, f.stderr);
  });

  it('no Dockerfile at all: a clear error naming the file and what to do', async () => {
    const ctx = await ws.context({ 'README.md': 'nothing to build\n' });
    const r = await runKiln(['build', ctx], { root: ws.root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read Dockerfile .*Dockerfile: no such file/);
    assert.match(r.stderr, /hint: put a Dockerfile in/);
  });

  it('<Dockerfile>.dockerignore beside -f FILE wins over the context\'s .dockerignore', async () => {
    const ctx = await ws.context({
      'build/app.Dockerfile': 'FROM busybox:latest\nCOPY . /ctx/\n',
      'build/app.Dockerfile.dockerignore': 'b\n',
      '.dockerignore': 'a\n',
      a: 'a',
      b: 'b',
    });
    const r = await runKiln(['build', '-q', '-t', 'perfile:1', '-f', path.join(ctx, 'build/app.Dockerfile'), ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const ls = await runKiln(['run', 'perfile:1', 'ls', '/ctx'], { root: ws.root });
    assert.deepEqual(ls.stdout.trim().split('\n').sort(), ['a', 'build']);
    // the default Dockerfile's own ignore file is <context>/Dockerfile.dockerignore
    const def = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY . /ctx/\n', 'Dockerfile.dockerignore': 'b\nDockerfile*\n', '.dockerignore': 'a\n', a: 'a', b: 'b' });
    assert.equal((await runKiln(['build', '-q', '-t', 'perfile:2', def], { root: ws.root })).code, 0);
    assert.equal((await runKiln(['run', 'perfile:2', 'ls', '/ctx'], { root: ws.root })).stdout, 'a\n');
    // names with regular-expression characters are matched literally
    const special = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY . /ctx/\n', '.dockerignore': 'Dockerfile\nc++\nfoo(1).txt\n', 'c++': '', cc: '', 'foo(1).txt': '', 'foo1.txt': '' });
    assert.equal((await runKiln(['build', '-q', '-t', 'perfile:4', special], { root: ws.root })).code, 0);
    assert.deepEqual((await runKiln(['run', 'perfile:4', 'ls', '-A', '/ctx'], { root: ws.root })).stdout.trim().split('\n').sort(), ['.dockerignore', 'cc', 'foo1.txt']);
    // without its own ignore file, .dockerignore applies
    const plain = await ws.context({ 'build/app.Dockerfile': 'FROM busybox:latest\nCOPY . /ctx/\n', '.dockerignore': 'a\nbuild\n', a: 'a', b: 'b' });
    assert.equal((await runKiln(['build', '-q', '-t', 'perfile:3', '-f', path.join(plain, 'build/app.Dockerfile'), plain], { root: ws.root })).code, 0);
    assert.equal((await runKiln(['run', 'perfile:3', 'ls', '/ctx'], { root: ws.root })).stdout, 'b\n');
  });

  it('a .dockerignore of "!" alone, or with "[", fails naming the file, the line and the pattern', async () => {
    for (const [text, line, pattern] of [['!\n', 1, '!'], ['# c\n*.log\n[\n', 3, '[']] as const) {
      const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY . /\n', '.dockerignore': text });
      const r = await runKiln(['build', ctx], { root: ws.root, cwd: ctx });
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.startsWith(`error: .dockerignore:${line}: invalid pattern "${pattern}"`), r.stderr);
      assert.match(r.stderr, /hint: /);
      assert.doesNotMatch(r.stderr, /regular expression|internal error/);
    }
  });

  it('a UTF-16 Dockerfile is named as such; a UTF-8 byte-order mark is fine', async () => {
    const ctx = await ws.context({});
    const text = 'FROM busybox:latest\nRUN true\n';
    await fs.writeFile(path.join(ctx, 'Dockerfile'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    const r = await runKiln(['build', ctx], { root: ws.root, cwd: ctx });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.startsWith('error: Dockerfile:1:1: Dockerfile is UTF-16; save it as UTF-8\n'), r.stderr);
    assert.match(r.stderr, /hint: .*iconv/);
    await fs.writeFile(path.join(ctx, 'Dockerfile'), Buffer.from(text, 'utf16le'));
    assert.match((await runKiln(['build', ctx], { root: ws.root, cwd: ctx })).stderr, /Dockerfile is UTF-16/);
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `\ufeff${text}`);
    const bom = await runKiln(['build', '-q', ctx], { root: ws.root });
    assert.equal(bom.code, 0, bom.stderr);
  });

  // testOnBuildHeredoc in BuildKit's suite
  it('an ONBUILD RUN <<EOF trigger runs its body in the child build', async () => {
    const base = await ws.context({ Dockerfile: 'FROM busybox:latest\nONBUILD RUN <<EOF\necho "hello world" >> /dest\nEOF\n' });
    assert.equal((await runKiln(['build', '-q', '-t', 'onbuild-base:1', base], { root: ws.root })).code, 0);
    const child = await ws.context({ Dockerfile: 'FROM onbuild-base:1 AS base\nFROM scratch\nCOPY --from=base /dest /dest\n' });
    const r = await runKiln(['build', '-q', '-t', 'onbuild-child:1', child], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    // the child's /dest, read through an image that has a shell
    const probe = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY --from=onbuild-child:1 /dest /dest\n' });
    assert.equal((await runKiln(['build', '-q', '-t', 'onbuild-probe:1', probe], { root: ws.root })).code, 0);
    assert.equal((await runKiln(['run', 'onbuild-probe:1', 'cat', '/dest'], { root: ws.root })).stdout, 'hello world\n');
  });

  it('COPY <<EOF keeps quotes in the file it writes', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nARG name=world\nCOPY <<EOF /q\n"quotes" for \'${name}\'\nEOF\n' });
    assert.equal((await runKiln(['build', '-q', '-t', 'quotes:1', ctx], { root: ws.root })).code, 0);
    assert.equal((await runKiln(['run', 'quotes:1', 'cat', '/q'], { root: ws.root })).stdout, '"quotes" for \'world\'\n');
  });

  it('--platform for an architecture this machine cannot run: error at the RUN, saying what to install', async () => {
    const binfmt = await fs.readdir('/proc/sys/fs/binfmt_misc').catch(() => [] as string[]);
    if (binfmt.includes('qemu-s390x')) return; // emulation is there: the build would run
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN echo hi\n' });
    const r = await runKiln(['build', '--platform', 'linux/s390x', ctx], { root: ws.root, cwd: ctx });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: Dockerfile:2:1: RUN for linux\/s390x cannot execute/);
    assert.match(r.stderr, /kiln setup binfmt --platform linux\/s390x/);
    // without a RUN nothing needs to execute: the image is labelled for the platform asked for
    const copyOnly = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY Dockerfile /\n' });
    assert.equal((await runKiln(['build', '-q', '-t', 's390x:1', '--platform', 'linux/s390x', copyOnly], { root: ws.root })).code, 0);
    const inspect = JSON.parse((await runKiln(['inspect', 's390x:1'], { root: ws.root })).stdout) as { config: { architecture: string; os: string } };
    assert.deepEqual([inspect.config.os, inspect.config.architecture], ['linux', 's390x']);
  });
});
