/**
 * End-to-end builds through the CLI: real runc over real overlayfs, a real store.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { isRoot, repoRoot, runKiln, workspace, type Workspace } from '../helpers.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

interface Inspect {
  manifestDigest: string;
  manifest: { layers: { digest: string }[]; config: { digest: string } };
  config: {
    config: Record<string, unknown>;
    history: { created_by: string; empty_layer?: boolean }[];
    rootfs: { diff_ids: string[] };
    author?: string;
  };
}

describe('kiln build', { skip }, () => {
  let ws: Workspace;
  let root: string;
  const context = (files: Record<string, string>) => ws.context(files);

  before(async () => {
    ws = await workspace();
    root = ws.root;
  });
  after(() => ws.cleanup());

  async function inspect(name: string): Promise<Inspect> {
    const r = await runKiln(['inspect', name], { root });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Inspect;
  }

  async function layerNames(digest: string): Promise<string[]> {
    const blob = await fs.readFile(path.join(root, 'blobs', 'sha256', digest.slice(7)));
    // layers a build makes are stored as plain tar; imported ones may be gzip
    const tar = blob[0] === 0x1f && blob[1] === 0x8b ? zlib.gunzipSync(blob) : blob;
    const names: string[] = [];
    for (let off = 0; off + 512 <= tar.length; ) {
      const header = tar.subarray(off, off + 512);
      if (header.every((b) => b === 0)) break;
      const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const prefix = header.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
      const size = parseInt(header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
      const type = String.fromCharCode(header[156]);
      if (type !== 'x' && type !== 'g') names.push(prefix ? `${prefix}/${name}` : name);
      off += 512 + Math.ceil(size / 512) * 512;
    }
    return names;
  }

  it('builds the multi-stage demo and kiln run prints its output', async () => {
    const r = await runKiln(['build', '-t', 'hello:test', path.join(repoRoot, 'examples', 'hello')], { root });
    assert.equal(r.code, 0, r.stderr);
    const run = await runKiln(['run', '--rm', 'hello:test'], { root });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Hello from kiln!\n/);
    assert.match(run.stdout, /built on \S+ as root/);
    const img = await inspect('hello:test');
    assert.equal(img.config.config.User, '1000:1000');
    assert.deepEqual(img.config.config.Entrypoint, ['/bin/cat', '/srv/hello/greeting.txt']);
    assert.equal(img.config.config.WorkingDir, '/srv/hello');
    const nonEmpty = img.config.history.filter((h) => !h.empty_layer).length;
    assert.equal(nonEmpty, img.manifest.layers.length, 'one non-empty history entry per layer');
    assert.equal(img.config.rootfs.diff_ids.length, img.manifest.layers.length);
  });

  it('writes every config field docker would', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox:latest',
        'MAINTAINER someone@example.com',
        'ENV A=1 B="two words"',
        'ENV LEGACY value with spaces',
        'LABEL one=1 two="2 2"',
        'EXPOSE 80 53/udp 8000-8001',
        'VOLUME ["/data"]',
        'STOPSIGNAL SIGQUIT',
        'HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD wget -q -O- http://localhost/ || exit 1',
        'WORKDIR /app',
        'WORKDIR sub',
        'USER app',
        'SHELL ["/bin/sh", "-ec"]',
        'CMD echo shell form',
        '',
      ].join('\n'),
    });
    const r = await runKiln(['build', '-t', 'fields:1', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    const { config } = await inspect('fields:1');
    const c = config.config;
    assert.equal(config.author, 'someone@example.com');
    const env = c.Env as string[];
    assert.ok(env.includes('A=1'));
    assert.ok(env.includes('B=two words'));
    assert.ok(env.includes('LEGACY=value with spaces'));
    assert.ok(env.some((e) => e.startsWith('PATH=')));
    assert.deepEqual(c.Labels, { one: '1', two: '2 2' });
    assert.deepEqual(Object.keys(c.ExposedPorts as object).sort(), ['53/udp', '80/tcp', '8000/tcp', '8001/tcp']);
    assert.deepEqual(c.Volumes, { '/data': {} });
    assert.equal(c.StopSignal, 'SIGQUIT');
    assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'wget -q -O- http://localhost/ || exit 1'], Interval: 30e9, Timeout: 5e9, Retries: 2 });
    assert.equal(c.WorkingDir, '/app/sub');
    assert.equal(c.User, 'app');
    assert.deepEqual(c.Shell, ['/bin/sh', '-ec']);
    assert.deepEqual(c.Cmd, ['/bin/sh', '-ec', 'echo shell form']);
    assert.ok(config.history.some((h) => h.created_by === 'ENV A=1 B=two words'));
  });

  it('ENTRYPOINT resets an inherited CMD; RUN runs with env, workdir, user and build args', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox:latest AS base',
        'CMD ["inherited"]',
        'FROM base',
        'ARG WHO=nobody',
        'ENV GREETING=hi',
        'WORKDIR /home/app',
        'USER app',
        'RUN echo "$GREETING $WHO $(id -u) $(pwd)" > /tmp/out.txt',
        'ENTRYPOINT ["cat", "/tmp/out.txt"]',
        '',
      ].join('\n'),
    });
    const r = await runKiln(['build', '-t', 'env:1', '--build-arg', 'WHO=kiln', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    const img = await inspect('env:1');
    assert.equal(img.config.config.Cmd, undefined);
    assert.ok(img.config.history.some((h) => h.created_by.startsWith('RUN |1 WHO=kiln /bin/sh -c echo')), JSON.stringify(img.config.history));
    const run = await runKiln(['run', 'env:1'], { root });
    assert.equal(run.stdout, 'hi kiln 1000 /home/app\n');
  });

  it('deletions become whiteouts and replaced directories opaque', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest', 'RUN rm /etc/group && rm -rf /home && mkdir -p /home/new', ''].join('\n'),
    });
    const r = await runKiln(['build', '-t', 'wh:1', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    const img = await inspect('wh:1');
    const names = await layerNames(img.manifest.layers.at(-1)!.digest);
    assert.ok(names.includes('etc/.wh.group'), names.join(' '));
    assert.ok(names.includes('home/.wh..wh..opq'), names.join(' '));
    assert.ok(!names.some((n) => n.startsWith('proc') || n.startsWith('dev/') || n === 'etc/resolv.conf'), `no runtime mount stubs: ${names.join(' ')}`);
    const run = await runKiln(['run', 'wh:1', 'sh', '-c', 'ls /etc/group 2>&1; ls /home'], { root });
    assert.match(run.stdout, /No such file/);
    assert.match(run.stdout, /new/);
    assert.doesNotMatch(run.stdout, /app/);
  });

  it('COPY honours .dockerignore, wildcards, --chown and --chmod', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox:latest',
        'COPY --chown=app:app --chmod=0640 *.txt /dst/',
        'COPY dir /dir',
        'RUN ls -ln /dst /dir | sort > /listing',
        '',
      ].join('\n'),
      'a.txt': 'a',
      'b.txt': 'b',
      'secret.txt': 'no',
      'dir/keep': 'k',
      'dir/drop.log': 'd',
      '.dockerignore': 'secret.txt\n**/*.log\n',
    });
    const r = await runKiln(['build', '-t', 'copy:1', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    const run = await runKiln(['run', 'copy:1', 'sh', '-c', 'cat /listing; ls /dir /dst'], { root });
    assert.match(run.stdout, /-rw-r-----\s+1 1000\s+1000\s+1 .* a\.txt/);
    assert.match(run.stdout, /keep/);
    assert.doesNotMatch(run.stdout, /secret\.txt|drop\.log/);
  });

  it('builds only the stages the target needs', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox:latest AS broken',
        'RUN exit 7',
        'FROM busybox:latest AS good',
        'RUN echo good > /good',
        'FROM busybox:latest',
        'COPY --from=broken /etc/passwd /x',
        '',
      ].join('\n'),
    });
    const r = await runKiln(['build', '--target', 'good', '-t', 'target:1', dir], { root });
    assert.equal(r.code, 0, r.stderr);
    const run = await runKiln(['run', 'target:1', 'cat', '/good'], { root });
    assert.equal(run.stdout, 'good\n');
  });

  it('a failed RUN names the command, exit code and last output, and writes no image', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest', 'RUN echo first line && echo about to fail >&2 && exit 3', ''].join('\n'),
    });
    const r = await runKiln(['build', '-t', 'fail:1', '--progress', 'quiet', dir], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Dockerfile:2:1/);
    assert.match(r.stderr, /did not complete successfully: exit code: 3/);
    assert.match(r.stderr, /about to fail/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    const images = await runKiln(['images'], { root });
    assert.doesNotMatch(images.stdout, /fail/);
    const active = await fs.readdir(path.join(root, 'snapshots', 'active')).catch(() => []);
    assert.deepEqual(active, [], 'no mounts left behind');
  });

  it('reports bad input with file:line:col and no stack trace', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['FROM busybox:latest', 'RUNN echo'], /Dockerfile:2:1.*unknown instruction: RUNN[\s\S]*did you mean RUN/i],
      [['FROM busybox:latest', 'COPY missing.txt /'], /missing\.txt.*not found/],
      [['FROM nosuchimage:1'], /Dockerfile:1:\d+.*nosuchimage:1/],
    ];
    for (const [lines, re] of cases) {
      const dir = await context({ Dockerfile: `${lines.join('\n')}\n` });
      const r = await runKiln(['build', '--progress', 'quiet', dir], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });

  it('an unchanged rebuild runs nothing; a changed file re-runs from its COPY on', async () => {
    const dir = await context({
      Dockerfile: ['FROM busybox:latest', 'RUN echo deps > /deps', 'COPY app.txt /app.txt', 'RUN cat /app.txt > /out', ''].join('\n'),
      'app.txt': 'v1',
    });
    const first = await runKiln(['build', '-t', 'cache:1', '--progress', 'plain', dir], { root });
    assert.equal(first.code, 0, first.stderr);
    const second = await runKiln(['build', '-t', 'cache:1', '--progress', 'plain', dir], { root });
    assert.equal(second.code, 0, second.stderr);
    assert.equal((second.stderr.match(/CACHED/g) ?? []).length, 3, second.stderr);
    assert.doesNotMatch(second.stderr, /DONE/);
    await fs.writeFile(path.join(dir, 'app.txt'), 'v2');
    const third = await runKiln(['build', '-t', 'cache:1', '--progress', 'plain', dir], { root });
    assert.equal((third.stderr.match(/CACHED/g) ?? []).length, 1, third.stderr);
    assert.match(third.stderr, /RUN echo deps[^\n]*\n#\d+ CACHED/);
    const run = await runKiln(['run', 'cache:1', 'cat', '/out'], { root });
    assert.equal(run.stdout, 'v2');
  });

  it('secrets reach RUN from a file or the environment and never the image', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox:latest',
        'RUN --mount=type=secret,id=tok --mount=type=secret,id=fromenv,target=/env-secret \\',
        '    test "$(cat /run/secrets/tok)" = "file-secret" && test "$(cat /env-secret)" = "env-secret" && echo ok > /ok',
        '',
      ].join('\n'),
      'tok.txt': 'file-secret',
    });
    const r = await runKiln(['build', '--no-cache', '-t', 'secret:1', '--secret', `id=tok,src=${path.join(dir, 'tok.txt')}`, '--secret', 'id=fromenv,env=KILN_TEST_SECRET', dir], {
      root,
      env: { KILN_TEST_SECRET: 'env-secret' },
    });
    assert.equal(r.code, 0, r.stderr);
    const img = await inspect('secret:1');
    const names = await layerNames(img.manifest.layers.at(-1)!.digest);
    assert.ok(names.includes('ok'), names.join(' '));
    assert.ok(!names.some((n) => /secret/.test(n)), `no secret or its mount point in the layer: ${names.join(' ')}`);
    const missing = await runKiln(['build', '--no-cache', '--secret', 'id=fromenv,env=KILN_UNSET_VAR', dir], { root });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /KILN_UNSET_VAR is not set/);
  });

  it('a fully cached rebuild gives the same image id, as BuildKit does', async () => {
    const dir = await context({ Dockerfile: 'FROM busybox:latest\nENV A=1\nRUN echo x > /y\nLABEL l=1\n' });
    const a = await runKiln(['build', '-q', dir], { root });
    await new Promise((r) => setTimeout(r, 1100));
    const b = await runKiln(['build', '-q', dir], { root });
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /^sha256:[0-9a-f]{64}\n$/);
    assert.equal(b.stdout, a.stdout);
  });

  it('same inputs give the same image digest with SOURCE_DATE_EPOCH', async () => {
    const dir = await context({ Dockerfile: 'FROM busybox:latest\nCOPY f /f\nRUN echo x > /y\n', f: 'content' });
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const a = await runKiln(['build', '--no-cache', '-q', dir], { root, env });
    const b = await runKiln(['build', '--no-cache', '-q', dir], { root, env });
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
  });

  it('SOURCE_DATE_EPOCH: --build-arg, then the environment, then the Dockerfile default', async () => {
    const dir = await context({ Dockerfile: 'ARG SOURCE_DATE_EPOCH=1700000001\nFROM busybox:latest\nCOPY f /f\n', f: 'x' });
    const createdWith = async (args: string[], env: Record<string, string>): Promise<string> => {
      const r = await runKiln(['build', '-q', '-t', 'sde:1', ...args, dir], { root, env });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /not consumed/);
      return ((await inspect('sde:1')).config as { created?: string }).created ?? '';
    };
    assert.equal(await createdWith([], {}), '2023-11-14T22:13:21Z');
    assert.equal(await createdWith([], { SOURCE_DATE_EPOCH: '1700000002' }), '2023-11-14T22:13:22Z');
    assert.equal(await createdWith(['--build-arg', 'SOURCE_DATE_EPOCH=1700000003'], { SOURCE_DATE_EPOCH: '1700000002' }), '2023-11-14T22:13:23Z');
    const bad = await runKiln(['build', '-q', '--build-arg', 'SOURCE_DATE_EPOCH=soon', dir], { root });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid SOURCE_DATE_EPOCH: soon/);
  });
});
