/**
 * File operations that only add new paths run without an overlay mount (a fresh upper dir);
 * the image must be exactly what the mounted path makes, and anything the direct path
 * cannot see through (merged or shadowed sources, existing destinations) must still mount.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';

const skip = isRoot() ? false : 'overlayfs needs root';

describe('file operations without a mount', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(() => ws.cleanup());

  it('give the same image as through an overlay mount', async () => {
    const dir = await ws.context({
      Dockerfile: [
        'FROM busybox:latest AS src',
        'RUN mkdir -p /out/sub && echo one > /out/sub/a && echo two > /out/b && ln -s b /out/link && chmod 0750 /out/sub',
        'FROM busybox:latest',
        'WORKDIR /app',
        'COPY --chown=1000:1000 --chmod=0640 ctx.txt /srv/data/ctx.txt',
        'COPY dir/ /opt/dir/',
        'COPY --from=src /out /out',
        'COPY --from=src /out/b /single',
        'COPY --link --from=src /out/sub /linked',
        'COPY ctx.txt /app/',
        '',
      ].join('\n'),
      'ctx.txt': 'context file\n',
      'dir/x': 'x\n',
      'dir/deep/y': 'y\n',
    });
    const env = { SOURCE_DATE_EPOCH: '1700000000', KILN_TRACE: '1' };
    const direct = await runKiln(['build', '--no-cache', '-q', '-t', 'direct:1', dir], { root: ws.root, env });
    assert.equal(direct.code, 0, direct.stderr);
    const directSteps = direct.stderr.split('\n').filter((l) => l.includes('direct (no mount)'));
    // WORKDIR, the two context COPYs into new paths, the two --from copies and the --link
    // copy; the last COPY lands in /app, which WORKDIR made, so it mounts
    assert.equal(directSteps.length, 6, direct.stderr);
    assert.ok(!directSteps.some((l) => l.includes('COPY ctx.txt /app/')), 'a destination a lower layer has is mounted');
    const mounted = await runKiln(['build', '--no-cache', '-q', '-t', 'mounted:1', dir], { root: ws.root, env: { ...env, KILN_DIRECT_FILEOPS: '0' } });
    assert.equal(mounted.code, 0, mounted.stderr);
    assert.ok(!mounted.stderr.includes('direct (no mount)'));
    assert.equal(direct.stdout.trim(), mounted.stdout.trim(), 'same image id either way');
    const run = await runKiln(['run', 'direct:1', 'sh', '-c', 'ls -ln /srv/data /opt/dir/deep /linked; readlink /out/link; cat /single /app/ctx.txt'], { root: ws.root });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /-rw-r-----\s+1 1000\s+1000\s+13 .* ctx\.txt/);
    assert.match(run.stdout, /\by\n/);
    assert.match(run.stdout, /\ba\n/);
    assert.match(run.stdout, /^b$/m);
    assert.match(run.stdout, /two\ncontext file/);
  });

  it('a failed build keeps what its finished steps stored; the retry starts after them', async () => {
    const files = { 'a.txt': 'a\n' };
    const failing = await ws.context({ ...files, Dockerfile: 'FROM busybox:latest\nCOPY a.txt /a/\nRUN cat /a/a.txt > /b\nRUN exit 3\n' });
    const r = await runKiln(['build', '--progress', 'plain', failing], { root: ws.root });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /exit code: 3/);
    const fixed = await ws.context({ ...files, Dockerfile: 'FROM busybox:latest\nCOPY a.txt /a/\nRUN cat /a/a.txt > /b\nRUN true\n' });
    const again = await runKiln(['build', '--progress', 'plain', '-t', 'retry:1', fixed], { root: ws.root });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /COPY a\.txt \/a\/\n#\d+ CACHED/);
    assert.match(again.stderr, /RUN cat \/a\/a\.txt > \/b\n#\d+ CACHED/);
    const run = await runKiln(['run', 'retry:1', 'cat', '/b'], { root: ws.root });
    assert.equal(run.stdout, 'a\n');
  });

  it('mount when a source merges across layers or is deleted above', async () => {
    const dir = await ws.context({
      Dockerfile: [
        'FROM busybox:latest AS src',
        'RUN mkdir -p /d && echo low > /d/low && echo gone > /gone && echo old > /f',
        'RUN echo high > /d/high && rm /gone && rm /d/low && echo new > /f',
        'FROM busybox:latest',
        'COPY --from=src /d /d',
        'COPY --from=src /f /f',
        '',
      ].join('\n'),
    });
    const r = await runKiln(['build', '-t', 'merge:1', dir], { root: ws.root, env: { KILN_TRACE: '1' } });
    assert.equal(r.code, 0, r.stderr);
    const run = await runKiln(['run', 'merge:1', 'sh', '-c', 'ls /d; cat /f'], { root: ws.root });
    assert.equal(run.stdout, 'high\nnew\n', 'the merged view: the upper layer wins, deletions hold');
    const gone = await ws.context({
      Dockerfile: ['FROM busybox:latest AS src', 'RUN echo gone > /gone', 'RUN rm /gone', 'FROM busybox:latest', 'COPY --from=src /gone /gone', ''].join('\n'),
    });
    const g = await runKiln(['build', gone], { root: ws.root });
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /not found/);
  });
});
