/**
 * RUN as BuildKit runs it, through the CLI on real runc over real overlayfs, compared with
 * docker 20.10's BuildKit where it has the feature (read as current BuildKit would write it:
 * see asCurrentBuildkit) and with current BuildKit's source where it does not.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { busyboxRootfsTar, isRoot, kilnBin, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { makeTar } from '../snapshot/tarutil.js';
import { builders, expectedLayers, mergedView, mountsUnder, sorted, type Builders, type Entry, type SavedImage } from './oracle.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';
const EMPTY_LAYER = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';
const HEAD = 'ARG BASE=busybox\nFROM $BASE\n';
const ENV_SECRET = 's3cr3t-env-value';

/** The oracle's image, or a note that this run compared with current BuildKit's rules only. */
async function noteOracle(t: { diagnostic(m: string): void }, image: Promise<SavedImage | undefined>): Promise<SavedImage | undefined> {
  const img = await image;
  if (!img) t.diagnostic('docker 20.10 (the oracle) is not available: checked against current BuildKit only');
  return img;
}

function fileOf(view: Map<string, Entry>, p: string): string | undefined {
  return view.get(p)?.content;
}

describe('RUN', { skip }, () => {
  let ws: Workspace;
  let b: Builders;

  before(async () => {
    ws = await workspace();
    b = await builders(ws.root, await busyboxRootfsTar());
  });
  after(async () => {
    await b.cleanup();
    // whatever a failed test left mounted under its root, deepest first, so the root can go
    for (const m of (await mountsUnder(ws.root)).sort((x, y) => y.length - x.length)) spawnSync('umount', ['-l', m]);
    await ws.cleanup();
  });

  it('steps that change nothing stack: an empty layer each, as many layers as BuildKit', async (t) => {
    const df = `${HEAD}RUN true\nRUN true\nRUN true\nRUN echo ok > /ok\nRUN true\n`;
    const k = await b.kiln(df);
    assert.equal(k.code, 0, k.stderr);
    const img = k.image!;
    assert.equal(img.diffIds.length, 6);
    for (const i of [1, 2, 3, 5]) assert.equal(img.diffIds[i], EMPTY_LAYER, `layer ${i}`);
    assert.deepEqual(img.history.map((h) => h.empty_layer ?? false), [false, false, false, false, false, false]);
    // a rebuild from the cache stacks the same layers again
    const again = await b.kiln(df);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.image!.diffIds, img.diffIds);
    const oracle = await noteOracle(t, b.docker(df));
    if (oracle) {
      assert.equal(img.diffIds.length, oracle.diffIds.length, 'one layer per RUN, as BuildKit');
      assert.deepEqual(img.layers.slice(1).map(sorted), expectedLayers(oracle));
    }
    assert.deepEqual(await mountsUnder(ws.root), []);
  });

  it('keeps /dev, /proc and /sys of the first RUN on a bare base; WORKDIR on an existing dir is an empty layer; mount stubs go', async (t) => {
    const df = `${HEAD}RUN true\nRUN true\nWORKDIR /etc\nWORKDIR /newdir\nRUN --mount=type=tmpfs,target=/mnt/x/y touch /etc/marker\nRUN --mount=type=bind,target=/ctx true\n`;
    const k = await b.kiln(df, { 'a.txt': 'a' }, [], {}, 'bare');
    assert.equal(k.code, 0, k.stderr);
    const layers = k.image!.layers.slice(1).map(sorted);
    assert.deepEqual(
      layers[0].map((e) => `${e.path} ${e.type} ${e.mode.toString(8)}`),
      ['dev directory 755', 'proc directory 755', 'sys directory 755'],
    );
    assert.deepEqual(layers[1], []);
    assert.deepEqual(layers[2], [], 'WORKDIR /etc on an existing directory');
    assert.deepEqual(layers[3].map((e) => e.path), ['newdir']);
    // /etc holds a change: it stays, as the parent of etc/marker; the tmpfs target's stubs go
    assert.deepEqual(layers[4].map((e) => e.path), ['etc', 'etc/marker']);
    assert.deepEqual(layers[5], []);
    const oracle = await noteOracle(t, b.docker(df, { 'a.txt': 'a' }, [], 'bare'));
    if (oracle) {
      assert.equal(k.image!.diffIds.length, oracle.diffIds.length);
      // dockerd 20.10 had no mount stub cleaner (moby/buildkit#3307 and #3314 came later)
      assert.deepEqual(layers, expectedLayers(oracle, { 4: ['mnt', 'mnt/x', 'mnt/x/y'], 5: ['ctx'] }));
    }
  });

  it('a stub made through a symlink (/etc/resolv.conf -> ../run/...) goes, with the parents the runtime made', async () => {
    const links = await makeTar([
      { name: 'etc', type: 'directory' },
      { name: 'etc/resolv.conf', type: 'symlink', linkname: '../run/systemd/resolve/stub-resolv.conf' },
    ]);
    const k = await b.kiln(`${HEAD}ADD links.tar /\nRUN test -e /etc/resolv.conf\n`, { 'links.tar': links });
    assert.equal(k.code, 0, k.stderr);
    // BuildKit's stub cleaner resolves each path in the root (fs.RootPath) and walks up
    assert.deepEqual(k.image!.layers[2], []);
  });

  it('a rw bind mount from a stage or the context is writable and its writes are discarded', async (t) => {
    const df = [
      'ARG BASE=busybox',
      'FROM $BASE AS src',
      'RUN mkdir /data && echo orig > /data/f',
      'FROM $BASE',
      "RUN --mount=type=bind,from=src,source=/data,target=/m,rw sh -c 'echo changed > /m/f && echo new > /m/g && cat /m/f > /seen'",
      "RUN --mount=type=bind,from=src,source=/data,target=/m sh -c 'cat /m/f > /after && ls /m > /list'",
      "RUN --mount=type=bind,target=/c,rw sh -c 'echo x > /c/a.txt && echo y > /c/new.txt && cat /c/a.txt > /seen-ctx'",
      "RUN --mount=type=bind,target=/c sh -c 'ls /c > /ctx-list'",
      'COPY --from=src /data /copied',
      '',
    ].join('\n');
    const k = await b.kiln(df, { 'a.txt': 'a' });
    assert.equal(k.code, 0, k.stderr);
    const view = mergedView(k.image!);
    assert.equal(fileOf(view, 'seen'), 'changed\n');
    assert.equal(fileOf(view, 'after'), 'orig\n');
    assert.equal(fileOf(view, 'list'), 'f\n');
    assert.equal(fileOf(view, 'seen-ctx'), 'x\n');
    assert.equal(fileOf(view, 'ctx-list'), 'Dockerfile\na.txt\n');
    assert.equal(fileOf(view, 'copied/f'), 'orig\n');
    assert.equal(view.has('copied/g'), false);
    assert.equal(await fs.readFile(path.join(k.context, 'a.txt'), 'utf8'), 'a', 'the context is untouched');
    await assert.rejects(fs.access(path.join(k.context, 'new.txt')));
    const oracle = await noteOracle(t, b.docker(df, { 'a.txt': 'a' }));
    if (oracle) {
      assert.deepEqual(k.image!.layers.slice(1).map(sorted), expectedLayers(oracle, { 0: ['m'], 1: ['m'], 2: ['c'], 3: ['c'] }));
    }
    assert.deepEqual(await mountsUnder(ws.root), []);
  });

  it('secrets: env=, mode/uid/gid, the id from the target, on a tmpfs, never on disk', async () => {
    const t = await tempDir('kiln-secret-');
    try {
      const dir = path.join(t.dir, 'a=b');
      await fs.mkdir(dir);
      const src = path.join(dir, 'key=1');
      await fs.writeFile(src, 's3cr3t-file-value');
      const df = [
        HEAD.trimEnd(),
        `RUN --mount=type=secret,id=tok,env=TOKEN sh -c 'test ! -e /run/secrets/tok && printf %s "$TOKEN" | sha256sum > /env-sum'`,
        `RUN --mount=type=secret,target=/run/secrets/apikey,mode=0440,uid=1000,gid=1000 sh -c 'stat -c "%a %u %g" /run/secrets/apikey > /meta && grep -c -- -file- /run/secrets/apikey >> /meta && grep " /run/secrets/apikey " /proc/mounts | cut -d" " -f3 >> /meta'`,
        `RUN --mount=type=secret,id=tok,env=TOKEN2,target=/tokfile sh -c 'test "$TOKEN2" = "$(cat /tokfile)" && stat -c "%a %u %g" /tokfile > /tokmeta'`,
        'RUN --mount=type=secret,id=absent,target=/absent sh -c "test ! -e /absent"',
        '',
      ].join('\n');
      const k = await b.kiln(df, {}, ['--secret', 'id=tok,env=KILN_TEST_SECRET_ENV', '--secret', `id=apikey,src=${src}`], { KILN_TEST_SECRET_ENV: ENV_SECRET });
      assert.equal(k.code, 0, k.stderr);
      const view = mergedView(k.image!);
      assert.equal(fileOf(view, 'env-sum'), `${createHash('sha256').update(ENV_SECRET).digest('hex')}  -\n`);
      assert.equal(fileOf(view, 'meta'), '440 1000 1000\n1\ntmpfs\n');
      assert.equal(fileOf(view, 'tokmeta'), '400 0 0\n');
      for (const l of k.image!.layers.slice(1)) {
        for (const e of l) assert.ok(!/secret|tokfile|absent/.test(e.path), `no secret stub in a layer: ${e.path}`);
      }
      // nothing under the root holds either value, and no mount is left
      const grep = spawnSync('grep', ['-r', '-l', '-e', ENV_SECRET, '-e', 's3cr3t-file-value', ws.root]);
      assert.equal(grep.stdout.toString(), '', 'a secret value reached the kiln root');
      assert.deepEqual(await mountsUnder(ws.root), []);
    } finally {
      await t.cleanup();
    }
  });

  it('while a step with an env secret runs, its runtime spec is on the secrets tmpfs, not on disk', async () => {
    const ctx = await ws.context({
      Dockerfile: `FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN --mount=type=bind,target=/ctx sh -c 'while [ ! -e /ctx/go ]; do sleep 0.05; done'\n`,
    });
    const build = runKiln(['build', '--secret', 'id=tok,env=KILN_TEST_SECRET_ENV', ctx], { root: ws.root, env: { KILN_TEST_SECRET_ENV: ENV_SECRET } });
    let done = false;
    void build.finally(() => (done = true));
    try {
      const bundles = path.join(ws.root, 'run', 'bundles');
      let spec: string | undefined;
      while (!spec && !done) {
        for (const id of await fs.readdir(bundles).catch(() => [] as string[])) {
          const link = await fs.readlink(path.join(bundles, id, 'config.json')).catch(() => undefined);
          if (link) spec = link;
        }
        if (!spec) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(spec, 'the step ran with its spec linked from the bundle');
      assert.match(spec, new RegExp(`^${ws.root}/snapshots/active/[0-9a-f]+/secrets/`));
      const mounted = await mountsUnder(ws.root);
      assert.ok(mounted.includes(path.dirname(spec)), 'the secrets dir is a mount of its own');
      assert.match(await fs.readFile(spec, 'utf8'), new RegExp(`TOKEN=${ENV_SECRET}`));
      const grep = spawnSync('grep', ['-r', '-l', '-e', ENV_SECRET, path.join(ws.root, 'run')]);
      assert.equal(grep.stdout.toString(), '', 'the value is not under run/');
    } finally {
      await fs.writeFile(path.join(ctx, 'go'), '');
      const r = await build;
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(await mountsUnder(ws.root), []);
  });

  it('after kill -9 during a step with secrets, the next build unmounts its tmpfs', async () => {
    const ctx = await ws.context({
      Dockerfile: `FROM busybox\nRUN --mount=type=secret,id=tok,target=/s --mount=type=bind,target=/ctx sh -c 'while [ ! -e /ctx/go ]; do sleep 0.05; done'\n`,
    });
    const child = spawn(process.execPath, [kilnBin, '--root', ws.root, 'build', '--secret', 'id=tok,env=KILN_TEST_SECRET_ENV', ctx], {
      env: { ...process.env, KILN_TEST_SECRET_ENV: ENV_SECRET },
      stdio: 'ignore',
    });
    const exited = once(child, 'exit');
    const runtimeRoot = path.join(ws.root, 'run', 'runtime');
    const running = (): boolean => {
      const r = spawnSync('runc', ['--root', runtimeRoot, 'list', '-q']);
      return r.status === 0 && r.stdout.toString().trim() !== '';
    };
    try {
      let secrets: string | undefined;
      while (!secrets && child.exitCode === null) {
        secrets = (await mountsUnder(ws.root)).find((p) => p.endsWith('/secrets'));
        if (!secrets || !running()) {
          secrets = undefined;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.ok(secrets, 'the step ran with its secrets tmpfs mounted');
      child.kill('SIGKILL');
      await exited;
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      // the orphaned step sees this and exits (reaping containers is another test's subject)
      await fs.writeFile(path.join(ctx, 'go'), '');
      for (let i = 0; i < 400 && running(); i++) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok((await mountsUnder(ws.root)).some((p) => p.endsWith('/secrets')), 'kill -9 left the tmpfs, as expected');
    const next = await runKiln(['build', '-q', await ws.context({ Dockerfile: 'FROM busybox\nRUN true\n' })], { root: ws.root });
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(await mountsUnder(ws.root), []);
    assert.deepEqual(await fs.readdir(path.join(ws.root, 'snapshots', 'active')), []);
  });

  it('a required secret that is missing, a missing or directory secret file: clear errors', async () => {
    const req = await b.kiln(`${HEAD}RUN --mount=type=secret,id=must,required true\n`);
    assert.notEqual(req.code, 0);
    assert.match(req.stderr, /Dockerfile:3:1: secret must: not found \(the mount is required/);
    const missing = await b.kiln(`${HEAD}RUN true\n`, {}, ['--secret', 'id=x,src=/nonexistent/dir/key']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /secret x: cannot read \/nonexistent\/dir\/key: no such file/);
    const asDir = await b.kiln(`${HEAD}RUN true\n`, {}, ['--secret', 'id=d,src=/etc']);
    assert.match(asDir.stderr, /secret d: \/etc is a directory/);
    const env = await b.kiln(`${HEAD}RUN true\n`, {}, ['--secret', 'id=e,env=KILN_TEST_UNSET_VARIABLE']);
    assert.match(env.stderr, /secret e: environment variable KILN_TEST_UNSET_VARIABLE is not set/);
    for (const r of [req, missing, asDir, env]) assert.doesNotMatch(r.stderr, /\n\s+at |internal error|exit code/);
    // a step that fails still unmounts its secrets tmpfs
    const failing = await b.kiln(`${HEAD}RUN --mount=type=secret,id=tok,env=T --mount=type=secret,id=tok,target=/s false\n`, {}, ['--secret', 'id=tok,env=KILN_TEST_SECRET_ENV'], { KILN_TEST_SECRET_ENV: ENV_SECRET });
    assert.match(failing.stderr, /exit code: 1/);
    assert.deepEqual(await mountsUnder(ws.root), []);
    assert.deepEqual(await fs.readdir(path.join(ws.root, 'snapshots', 'active')), []);
  });

  it('tmpfs size= is honoured; from=$VAR is rejected where it is written', async () => {
    const k = await b.kiln(`${HEAD}RUN --mount=type=tmpfs,target=/t,size=64k sh -c 'grep " /t " /proc/mounts | grep -o "size=[0-9a-z]*" > /tsize'\n`);
    assert.equal(k.code, 0, k.stderr);
    assert.equal(fileOf(mergedView(k.image!), 'tsize'), 'size=64k\n');
    const bad = await b.kiln(`${HEAD}FROM $BASE AS src\nFROM $BASE\nARG S=src\nRUN --mount=from=$S,target=/x true\n`);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Dockerfile:6:\d+: .*'from' doesn't support variable expansion, define alias stage instead/);
    const sz = await b.kiln(`${HEAD}RUN --mount=type=bind,target=/x,size=1m true\n`);
    assert.match(sz.stderr, /unexpected key 'size' for mount type 'bind'/);
    const mode = await b.kiln(`${HEAD}RUN --mount=type=tmpfs,target=/x,mode=0700 true\n`);
    assert.match(mode.stderr, /mode not allowed for "tmpfs" type mounts/);
  });

  it('the primary gid is a supplementary group; hostname and TARGETSTAGE as BuildKit sets them', async (t) => {
    const df = [
      HEAD.trimEnd(),
      'ARG TARGETSTAGE',
      'RUN echo "$TARGETSTAGE" > /stage',
      'USER app',
      'RUN grep ^Groups: /proc/self/status > /tmp/groups',
      'USER root',
      'RUN hostname > /host && grep -c "$(hostname)" /etc/hosts >> /host && cp /tmp/groups /groups',
      '',
    ].join('\n');
    const k = await b.kiln(df);
    assert.equal(k.code, 0, k.stderr);
    const view = mergedView(k.image!);
    assert.equal(fileOf(view, 'groups'), 'Groups:\t1000 \n', 'the primary gid is among the supplementary groups');
    assert.equal(fileOf(view, 'host'), 'buildkitsandbox\n1\n');
    assert.equal(fileOf(view, 'stage'), 'default\n');
    const named = await b.kiln(df.replace('FROM $BASE', 'FROM $BASE AS final'), {}, ['--build-arg', 'BUILDKIT_SANDBOX_HOSTNAME=sandbox1']);
    assert.equal(named.code, 0, named.stderr);
    assert.doesNotMatch(named.stderr, /BUILDKIT_SANDBOX_HOSTNAME.*not consumed|unused/i);
    const nview = mergedView(named.image!);
    assert.equal(fileOf(nview, 'host'), 'sandbox1\n1\n');
    assert.equal(fileOf(nview, 'stage'), 'final\n');
    const oracle = await noteOracle(t, b.docker(df));
    // dockerd 20.10 has the default hostname, not yet the primary gid among the groups
    if (oracle) assert.equal(fileOf(mergedView(oracle), 'host'), 'buildkitsandbox\n1\n');
  });
});
