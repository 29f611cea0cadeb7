/**
 * `COPY --chmod`: octal and symbolic modes. applyChmod is checked against the system's
 * chmod(1) (GNU coreutils, with a zero umask as BuildKit applies them) over many modes;
 * the builds port BuildKit's testCopyChmod, testChmodNonOctal and testCopyInvalidChmod.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { applyChmod, createdDirMode, parseChmod } from '../../src/solver/chmod.js';
import { isRoot, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';

const SYMBOLIC = ['go-w', 'u=rw,g=r,o=r', 'a+X', 'u+rw,g+r,o-x,o+w', 'u=rwX,go=rX', 'a=', '+x', 'g=u', 'o=g-w', 'u+s,g+s', '+t', 'a-X', 'ug=rwx,o=', 'u=rwx,g=rx,o=', 'a+rX-w', 'a+t', 'a-t'];
const MODES = [0o000, 0o600, 0o644, 0o755, 0o700, 0o751, 0o4755, 0o2750, 0o1777, 0o640, 0o111, 0o666];

describe('--chmod parsing and application', () => {
  it('gives what chmod(1) gives, for files and directories', async () => {
    const t = await tempDir('kiln-chmod-');
    try {
      let n = 0;
      for (const spec of SYMBOLIC) {
        const parsed = parseChmod(spec);
        for (const mode of MODES) {
          for (const isDir of [false, true]) {
            const p = path.join(t.dir, `e${n++}`);
            if (isDir) mkdirSync(p);
            else writeFileSync(p, '');
            chmodSync(p, mode);
            const r = spawnSync('sh', ['-c', `umask 0 && chmod ${spec} "$1"`, 'sh', p]);
            assert.equal(r.status, 0, String(r.stderr));
            // where GNU and BSD rules differ BuildKit has BSD's: with `=`, GNU chmod keeps
            // a directory's setuid/setgid bits, and clears the sticky bit (o=) and setgid
            // (g=u) where BSD keeps them; `=` over special bits is not compared
            if (spec.includes('=') && (mode & 0o7000) !== 0) continue;
            const want = statSync(p).mode & 0o7777;
            assert.equal(applyChmod(parsed, mode, isDir).toString(8), want.toString(8), `chmod ${spec} on ${isDir ? 'dir' : 'file'} ${mode.toString(8)}`);
          }
        }
      }
    } finally {
      await t.cleanup();
    }
  });

  it('reads octal as BuildKit does, and rejects what it rejects with its message', () => {
    assert.deepEqual(parseChmod('0644'), { kind: 'octal', mode: 0o644 });
    assert.deepEqual(parseChmod('7777'), { kind: 'octal', mode: 0o7777 });
    assert.equal(createdDirMode(parseChmod('0770')), 0o770);
    assert.equal(createdDirMode(parseChmod('u=rwX')), 0o755);
    assert.equal(createdDirMode(undefined), 0o755);
    assert.throws(() => parseChmod('64a'), /invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777/);
    assert.throws(() => parseChmod('10000'), /invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777/);
    for (const bad of ['u', 'u=rwq', 'x+r', 'u=r,,g=r', 'u=r,']) assert.throws(() => parseChmod(bad), /invalid chmod parameter/, bad);
  });
});

describe('COPY --chmod builds', { skip: isRoot() ? false : 'overlayfs needs root' }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(() => ws.cleanup());

  it('sets files to the octal mode, and the parents it creates too (testCopyChmod)', async () => {
    const dir = await ws.context({
      Dockerfile: [
        'FROM busybox:latest',
        'COPY --chmod=0644 foo /',
        'COPY --chmod=777 bar /baz',
        'COPY --chmod=0 foo /foobis',
        'COPY --chmod=777 foo /parent/foo',
        'COPY --chmod=770 foo /parent/sub/foo',
        'ARG mode',
        'COPY --chmod=${mode} foo /footer',
        'RUN stat -c "%n %04a" /foo /baz /foobis /parent /parent/sub /footer > /perms',
        '',
      ].join('\n'),
      foo: 'foo-contents',
      bar: 'bar-contents',
    });
    spawnSync('chmod', ['0600', path.join(dir, 'foo')]);
    spawnSync('chmod', ['0700', path.join(dir, 'bar')]);
    const b = await runKiln(['build', '-q', '--build-arg', 'mode=755', '-t', 'chmod:1', dir], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    const r = await runKiln(['run', 'chmod:1', 'cat', '/perms'], { root: ws.root });
    assert.equal(r.stdout, '/foo 0644\n/baz 0777\n/foobis 0000\n/parent 0777\n/parent/sub 0770\n/footer 0755\n');
  });

  it('applies symbolic modes to each copied entry as chmod does (testChmodNonOctal)', async () => {
    const cases = [
      { src: 'file', dst: 'f1', mode: 'go-w', dir: false },
      { src: 'file', dst: 'f2', mode: 'u=rw,g=r,o=r', dir: false },
      { src: 'file', dst: 'f3', mode: 'a+X', dir: false },
      { src: 'file', dst: 'f4', mode: 'u=rwX,go=rX', dir: false },
      { src: 'dir', dst: 'd1', mode: 'go-w', dir: true },
      { src: 'dir', dst: 'd2', mode: 'u+rw,g+r,o-x,o+w', dir: true },
      { src: 'dir', dst: 'd3', mode: 'a+X', dir: true },
      { src: 'dir', dst: 'd4', mode: 'u=rwX,go=rX', dir: true },
    ];
    const lines = [
      'FROM busybox:latest AS base',
      'RUN mkdir -p /input/dir /expected && touch /input/file && chmod 666 /input/file && chmod 0700 /input/dir && touch /input/dir/inner && chmod 0641 /input/dir/inner',
    ];
    for (const c of cases) {
      if (c.dir) {
        lines.push(`RUN mkdir -p /input/dirs/${c.dst} && cp -a /input/${c.src} /input/dirs/${c.dst}/${c.dst} && cp -a /input/dirs/${c.dst}/. /expected/ && chmod -R ${c.mode} /expected/${c.dst}`);
      } else {
        lines.push(`RUN cp -a /input/${c.src} /expected/${c.dst} && chmod ${c.mode} /expected/${c.dst}`);
      }
    }
    lines.push('FROM busybox:latest', 'COPY --from=base /expected /expected');
    for (const c of cases) lines.push(c.dir ? `COPY --from=base --chmod=${c.mode} /input/dirs/${c.dst} /actual/` : `COPY --from=base --chmod=${c.mode} /input/${c.src} /actual/${c.dst}`);
    const paths = cases.flatMap((c) => (c.dir ? [c.dst, `${c.dst}/inner`] : [c.dst]));
    lines.push(`RUN for p in ${paths.join(' ')}; do echo "$p $(stat -c %A /actual/$p) $(stat -c %A /expected/$p)"; done > /report`, '');
    const dir = await ws.context({ Dockerfile: lines.join('\n') });
    const b = await runKiln(['build', '-q', '-t', 'chmodsym:1', dir], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    const r = await runKiln(['run', 'chmodsym:1', 'cat', '/report'], { root: ws.root });
    const rows = r.stdout.trim().split('\n');
    assert.equal(rows.length, paths.length, r.stdout + r.stderr);
    for (const row of rows) {
      const [p, actual, expected] = row.split(' ');
      assert.equal(actual, expected, `${p}: ${row}`);
    }
  });

  it('reports an invalid --chmod at its Dockerfile line (testCopyInvalidChmod)', async () => {
    for (const [value, message] of [
      ['64a', "invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"],
      ['10000', "invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777"],
      ['u=rwq', "invalid chmod parameter: 'u=rwq'"],
    ]) {
      const dir = await ws.context({ Dockerfile: `FROM busybox:latest\nCOPY --chmod=${value} foo /\n`, foo: 'foo' });
      const r = await runKiln(['build', dir], { root: ws.root });
      assert.notEqual(r.code, 0);
      assert.ok(r.stderr.includes(message), r.stderr);
      assert.match(r.stderr, /Dockerfile:2/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });
});
