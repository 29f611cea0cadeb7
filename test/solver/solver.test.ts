/**
 * The solver for real: parallel stages, exact cache invalidation, --explain, cancellation
 * and interruption, concurrent builds on one store.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, isRoot, kilnBin, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

interface JsonEvent {
  type: string;
  id: number;
  name: string;
  ts: string;
  message?: string;
}

function events(stderr: string): JsonEvent[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as JsonEvent);
}

describe('solver', { skip }, () => {
  let ws: Workspace;
  let root: string;
  const context = (files: Record<string, string>) => ws.context(files);

  before(async () => {
    ws = await workspace();
    root = ws.root;
  });
  after(() => ws.cleanup());

  const twoStages = [
    'FROM busybox:latest AS left',
    'RUN sleep 1 && echo left > /left',
    'FROM busybox:latest AS right',
    'RUN sleep 1 && echo right > /right',
    'FROM busybox:latest',
    'COPY --from=left /left /left',
    'COPY --from=right /right /right',
    '',
  ].join('\n');

  function overlap(evs: JsonEvent[]): boolean {
    const run = evs.filter((e) => / RUN sleep/.test(e.name));
    const starts = run.filter((e) => e.type === 'start').map((e) => Date.parse(e.ts));
    const dones = run.filter((e) => e.type === 'done').map((e) => Date.parse(e.ts));
    assert.equal(starts.length, 2, JSON.stringify(run));
    assert.equal(dones.length, 2);
    return Math.max(...starts) < Math.min(...dones);
  }

  it('runs independent stages at the same time, and one at a time with --parallel 1', async () => {
    const dir = await context({ Dockerfile: twoStages });
    const par = await runKiln(['build', '--no-cache', '--progress', 'json', '-t', 'par:1', dir], { root });
    assert.equal(par.code, 0, par.stderr);
    assert.ok(overlap(events(par.stderr)), 'the two RUN steps overlap');
    const serial = await runKiln(['build', '--no-cache', '--parallel', '1', '--progress', 'json', dir], { root });
    assert.equal(serial.code, 0, serial.stderr);
    assert.ok(!overlap(events(serial.stderr)), 'with --parallel 1 they do not');
    const run = await runKiln(['run', 'par:1', 'cat', '/left', '/right'], { root });
    assert.equal(run.stdout, 'left\nright\n');
  });

  it('COPY --link runs beside its parent and survives a parent change', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest', 'ARG V=1', 'RUN sleep 1 && echo $V > /v', 'COPY --link app.txt /app/app.txt', ''].join('\n'),
      'app.txt': 'linked',
    });
    const first = await runKiln(['build', '--progress', 'json', '-t', 'link:1', dir], { root });
    assert.equal(first.code, 0, first.stderr);
    const evs = events(first.stderr);
    const copyStart = evs.find((e) => e.type === 'start' && / COPY --link|COPY app\.txt/.test(e.name));
    const runDone = evs.find((e) => e.type === 'done' && / RUN sleep/.test(e.name));
    assert.ok(copyStart && runDone, JSON.stringify(evs));
    assert.ok(Date.parse(copyStart.ts) < Date.parse(runDone.ts), 'the linked copy did not wait for the RUN');
    const second = await runKiln(['build', '--progress', 'json', '--build-arg', 'V=2', '-t', 'link:2', dir], { root });
    assert.equal(second.code, 0, second.stderr);
    const evs2 = events(second.stderr);
    assert.ok(evs2.some((e) => e.type === 'done' && / RUN sleep/.test(e.name)), 'the RUN re-ran');
    assert.ok(evs2.some((e) => e.type === 'cached' && /app\.txt/.test(e.name)), 'the linked COPY stayed cached');
    const out = await runKiln(['run', 'link:2', 'cat', '/v', '/app/app.txt'], { root });
    assert.equal(out.stdout, '2\nlinked');
  });

  it('COPY keys what the layer holds: a checkout owned by another user hits, a mode or content change misses', async () => {
    const dir = await context({ Dockerfile: 'FROM busybox:latest\nCOPY . /app\nCOPY f /f\n', f: 'same content', 'sub/g': 'g' });
    const chownAll = (uid: number) => {
      const r = spawnSync('chown', ['-R', `${uid}:${uid}`, dir]);
      assert.equal(r.status, 0, String(r.stderr));
    };
    chownAll(1111);
    const first = await runKiln(['build', '--progress', 'json', '-t', 'owned:1', dir], { root });
    assert.equal(first.code, 0, first.stderr);
    assert.ok(events(first.stderr).some((e) => e.type === 'done' && /COPY f/.test(e.name)), first.stderr);
    // the same files checked out by another user (another CI runner): both COPYs are cache hits
    chownAll(2222);
    const other = await runKiln(['build', '--progress', 'json', '-t', 'owned:2', dir], { root });
    assert.equal(other.code, 0, other.stderr);
    const evs = events(other.stderr);
    assert.ok(evs.some((e) => e.type === 'cached' && /COPY \. \/app/.test(e.name)), other.stderr);
    assert.ok(evs.some((e) => e.type === 'cached' && /COPY f/.test(e.name)), other.stderr);
    assert.ok(!evs.some((e) => e.type === 'done' && /COPY/.test(e.name)), other.stderr);
    // what the layers hold never depended on the checkout's owner
    const own = await runKiln(['run', 'owned:2', 'stat', '-c', '%u:%g', '/f', '/app/sub/g'], { root });
    assert.equal(own.stdout, '0:0\n0:0\n');
    // a mode change is in the layer: it misses
    await fs.chmod(path.join(dir, 'f'), 0o600);
    const mode = await runKiln(['build', '--progress', 'json', '--explain', dir], { root });
    assert.equal(mode.code, 0, mode.stderr);
    assert.ok(events(mode.stderr).some((e) => e.type === 'done' && /COPY f/.test(e.name)), mode.stderr);
    assert.match(mode.stderr, /1 file changed: f/);
    // so is a content change
    await fs.writeFile(path.join(dir, 'f'), 'other content');
    const content = await runKiln(['build', '--progress', 'json', dir], { root });
    assert.equal(content.code, 0, content.stderr);
    assert.ok(events(content.stderr).some((e) => e.type === 'done' && /COPY f/.test(e.name)), content.stderr);
  });

  it('a bind mount from a stage after a cache mount from another binds its own stage', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox:latest AS a',
        'RUN echo a > /which',
        'FROM busybox:latest AS b',
        'RUN echo b > /which',
        'FROM busybox:latest',
        'RUN --mount=type=cache,from=a,target=/c --mount=type=bind,from=b,target=/b cat /b/which > /out',
        '',
      ].join('\n'),
    });
    const r = await runKiln(['build', '-t', 'mountorder:1', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await runKiln(['run', 'mountorder:1', 'cat', '/out'], { root })).stdout, 'b\n');
  });

  it('--no-cache-filter re-runs only the named stage', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest AS deps', 'RUN echo deps > /d', 'FROM busybox:latest AS app', 'COPY --from=deps /d /d', 'RUN echo app > /a', ''].join('\n'),
    });
    const first = await runKiln(['build', '--progress', 'json', dir], { root });
    assert.equal(first.code, 0, first.stderr);
    const r = await runKiln(['build', '--progress', 'json', '--no-cache-filter', 'app', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    const evs = events(r.stderr);
    assert.ok(evs.some((e) => e.type === 'cached' && /^\[deps /.test(e.name)), 'deps stayed cached');
    assert.ok(evs.some((e) => e.type === 'done' && /^\[app .*RUN echo app/.test(e.name)), 'app re-ran');
    assert.ok(!evs.some((e) => e.type === 'done' && /^\[deps /.test(e.name)));
  });

  it('a stage re-run by --no-cache-filter invalidates what copies from it only when its files changed', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest AS deps', 'ARG OUT=same', 'RUN echo $OUT > /d', 'FROM busybox:latest', 'COPY --from=deps /d /d', 'RUN cat /d > /e', ''].join('\n'),
    });
    // with every mtime clamped, the re-run makes the same layer
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const first = await runKiln(['build', '-q', dir], { root, env });
    assert.equal(first.code, 0, first.stderr);
    const same = await runKiln(['build', '--progress', 'json', '--no-cache-filter', 'deps', dir], { root, env });
    assert.equal(same.code, 0, same.stderr);
    const evs = events(same.stderr);
    assert.ok(evs.some((e) => e.type === 'done' && /^\[deps .*RUN echo/.test(e.name)), 'deps re-ran');
    assert.ok(evs.some((e) => e.type === 'cached' && /COPY --from=deps/.test(e.name)), 'the same files: the COPY stays cached');
    assert.ok(evs.some((e) => e.type === 'cached' && /RUN cat/.test(e.name)));
    // a stage whose re-run makes other files: what reads them runs again, and the next
    // build, cached throughout, gives the files of that last run
    const rnd = await context({
      Dockerfile: ['FROM busybox:latest AS deps', 'RUN head -c 16 /dev/urandom | od -An -tx1 > /d', 'FROM busybox:latest', 'COPY --from=deps /d /d', 'RUN cat /d > /e', ''].join('\n'),
    });
    const out = async (args: string[]): Promise<{ d: string; e: string; evs: JsonEvent[] }> => {
      const r = await runKiln(['build', '--progress', 'json', '-t', 'ncf:1', ...args, rnd], { root });
      assert.equal(r.code, 0, r.stderr);
      const e = (await runKiln(['run', 'ncf:1', 'cat', '/e'], { root })).stdout;
      return { d: (await runKiln(['run', 'ncf:1', 'cat', '/d'], { root })).stdout, e, evs: events(r.stderr) };
    };
    const a = await out([]);
    const b = await out(['--no-cache-filter', 'deps']);
    assert.notEqual(b.d, a.d);
    assert.equal(b.e, b.d);
    assert.ok(b.evs.some((e) => e.type === 'done' && /RUN cat/.test(e.name)), 'other files: the steps reading them run again');
    const c = await out([]);
    assert.ok(!c.evs.some((e) => e.type === 'done'), 'the next build is cached throughout');
    assert.deepEqual([c.d, c.e], [b.d, b.d]);
  });

  it('--no-cache starts cache mounts afresh, and only for the steps that run without the cache', async () => {
    const df = (n: string) => ['FROM busybox:latest AS a', `RUN --mount=type=cache,target=/c touch /c/${n} && ls /c > /list`, 'FROM busybox:latest', 'COPY --from=a /list /list', ''].join('\n');
    const list = async (n: string, args: string[]): Promise<string> => {
      const dir = await context({ Dockerfile: df(n) });
      const r = await runKiln(['build', '-q', '-t', 'cm:1', ...args, dir], { root });
      assert.equal(r.code, 0, r.stderr);
      return (await runKiln(['run', 'cm:1', 'cat', '/list'], { root })).stdout;
    };
    assert.equal(await list('one', []), 'one\n');
    assert.equal(await list('two', []), 'one\ntwo\n');
    assert.equal(await list('three', ['--no-cache-filter', 'other']), 'one\nthree\ntwo\n', 'a stage the filter does not name keeps it');
    assert.equal(await list('four', ['--no-cache']), 'four\n');
    assert.equal(await list('five', ['--no-cache-filter', 'a']), 'five\n');
    assert.equal(await list('six', []), 'five\nsix\n');
  });

  it('never runs a stage the target does not need', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest AS unused', 'RUN echo should-not-run', 'FROM busybox:latest', 'RUN echo needed', ''].join('\n'),
    });
    const r = await runKiln(['build', '--progress', 'json', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    const names = events(r.stderr).map((e) => e.name);
    assert.ok(names.some((n) => /echo needed/.test(n)));
    assert.ok(!names.some((n) => /should-not-run/.test(n)), names.join('\n'));
  });

  it('re-runs exactly the steps after the COPY whose file changed', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox:latest',
        'COPY deps.txt /deps.txt',
        'RUN cat /deps.txt > /installed',
        'COPY src/ /src/',
        'RUN cat /src/* > /built',
        '',
      ].join('\n'),
      'deps.txt': 'deps v1',
      'src/a.js': 'a1',
      'src/b.js': 'b1',
    });
    const first = await runKiln(['build', '--progress', 'json', dir], { root });
    assert.equal(first.code, 0, first.stderr);
    await fs.writeFile(path.join(dir, 'src', 'b.js'), 'b2');
    const second = await runKiln(['build', '--progress', 'json', '--explain', '-t', 'dep:1', dir], { root });
    assert.equal(second.code, 0, second.stderr);
    const evs = events(second.stderr);
    const cached = evs.filter((e) => e.type === 'cached').map((e) => e.name);
    const ran = evs.filter((e) => e.type === 'done').map((e) => e.name);
    assert.deepEqual(cached.map((n) => n.replace(/^\[\S+ /, '[')), ['[2/5] COPY deps.txt /deps.txt', '[3/5] RUN cat /deps.txt > /installed']);
    assert.deepEqual(ran.map((n) => n.replace(/^\[\S+ /, '[')), ['[4/5] COPY src/ /src/', '[5/5] RUN cat /src/* > /built']);
    assert.match(second.stderr, /COPY src\/ \/src\/ — 1 file changed: src\/b\.js/);
    assert.match(second.stderr, /RUN cat \/src\/\* > \/built\n\s+- parent changed: step \[\S+ 4\/5\] COPY src\/ \/src\//);
    const out = await runKiln(['run', 'dep:1', 'cat', '/built'], { root });
    assert.equal(out.stdout, 'a1b2');
  });

  it('--explain names a changed build arg and a base image that moved', async () => {
    const dir = await context({ Dockerfile: ['FROM busybox:latest', 'ARG VERSION=1.0', 'RUN echo $VERSION > /v', ''].join('\n') });
    const a = await runKiln(['build', '--build-arg', 'VERSION=1.0', '-q', dir], { root });
    assert.equal(a.code, 0, a.stderr);
    const b = await runKiln(['build', '--build-arg', 'VERSION=1.1', '--explain', '-q', dir], { root });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /build-arg VERSION: 1\.0 → 1\.1/);

    // move busybox:latest to a different image: same files plus one
    const t = await tempDir('kiln-base-');
    try {
      const tar = path.join(t.dir, 'base.tar');
      await fs.copyFile(await busyboxRootfsTar(), tar);
      await fs.writeFile(path.join(t.dir, 'extra'), 'x');
      assert.equal(spawnSync('tar', ['--append', '-f', tar, '-C', t.dir, 'extra']).status, 0);
      const imp = await runKiln(['import', tar, 'busybox:latest'], { root });
      assert.equal(imp.code, 0, imp.stderr);
    } finally {
      await t.cleanup();
    }
    const c = await runKiln(['build', '--build-arg', 'VERSION=1.1', '--explain', '-q', dir], { root });
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /base image busybox:latest now resolves to sha256:[0-9a-f]{64}/);
  });

  it('one failing step cancels the others and is the error reported', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest AS slow', 'RUN sleep 20', 'FROM busybox:latest AS bad', 'RUN sleep 0.5 && exit 4', 'FROM busybox:latest', 'COPY --from=slow /etc/passwd /a', 'COPY --from=bad /etc/passwd /b', ''].join('\n'),
    });
    const started = Date.now();
    const r = await runKiln(['build', '--no-cache', '--progress', 'plain', dir], { root });
    assert.equal(r.code, 1);
    assert.ok(Date.now() - started < 15_000, 'the slow step was cancelled, not waited for');
    assert.match(r.stderr, /error: .*Dockerfile:4:1: .*exit code: 4/);
    assert.deepEqual(await leftovers(root), { mounts: [], containers: '', active: [], tmp: [] });
  });

  it('Ctrl-C stops the build and leaves no mounts, containers or temp files', async () => {
    const dir = await context({ Dockerfile: ['FROM busybox:latest', 'COPY f /f', 'RUN echo started && sleep 60', ''].join('\n'), f: 'x' });
    const child = spawn(process.execPath, [kilnBin, '--root', root, 'build', '--no-cache', '--progress', 'plain', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const sawStart = new Promise<void>((resolve) => {
      child.stderr.on('data', (c) => {
        stderr += String(c);
        if (/started/.test(stderr)) resolve();
      });
    });
    const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1))));
    await Promise.race([sawStart, new Promise((_, rej) => setTimeout(() => rej(new Error(`RUN never started: ${stderr}`)), 30_000))]);
    const t0 = Date.now();
    child.kill('SIGINT');
    const code = await exited;
    assert.ok(Date.now() - t0 < 10_000, 'stopped promptly');
    assert.equal(code, 130, stderr);
    assert.doesNotMatch(stderr, /\n\s+at /);
    assert.deepEqual(await leftovers(root), { mounts: [], containers: '', active: [], tmp: [] });
  });

  it('two builds at once on one store both succeed', async () => {
    const a = await context({ Dockerfile: 'FROM busybox:latest\nRUN echo shared > /s\nRUN echo a > /x\n' });
    const b = await context({ Dockerfile: 'FROM busybox:latest\nRUN echo shared > /s\nRUN echo b > /x\n' });
    const [ra, rb] = await Promise.all([
      runKiln(['build', '--no-cache', '-t', 'conc:a', a], { root }),
      runKiln(['build', '--no-cache', '-t', 'conc:b', b], { root }),
    ]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal((await runKiln(['run', 'conc:a', 'cat', '/x'], { root })).stdout, 'a\n');
    assert.equal((await runKiln(['run', 'conc:b', 'cat', '/x'], { root })).stdout, 'b\n');
  });
});

/** Mounts, runc containers, active snapshots and temp files a build may have left. */
async function leftovers(root: string): Promise<{ mounts: string[]; containers: string; active: string[]; tmp: string[] }> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(root));
  const list = spawnSync('runc', ['--root', path.join(root, 'run', 'runtime'), 'list', '-q'], { encoding: 'utf8' });
  const active = await fs.readdir(path.join(root, 'snapshots', 'active')).catch(() => []);
  const tmp = await fs.readdir(path.join(root, 'tmp')).catch(() => []);
  return { mounts, containers: (list.stdout ?? '').trim(), active, tmp };
}
