/**
 * kiln build --build-context NAME=VALUE beyond what BuildKit's ported tests check
 * (test/buildkit/namedcontext.test.ts): precedence over stages and images, RUN --mount
 * from= a directory, FROM a directory with RUN on it, keys that follow the directory's
 * content, docker-image:// pulled from a registry, OCI layouts by tag (skopeo's), paths
 * that try to leave the directory, and the errors for bad values.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { haveTool, isRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry } from '../registry/harness.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

describe('kiln build --build-context', { skip }, () => {
  let ws: Workspace;
  const temps: Array<() => Promise<void>> = [];
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    for (const c of temps) await c();
    await ws.cleanup();
  });

  async function dir(files: Record<string, string>): Promise<string> {
    const t = await tempDir('kiln-named-');
    temps.push(t.cleanup);
    for (const [rel, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(t.dir, rel)), { recursive: true });
      await fs.writeFile(path.join(t.dir, rel), content);
    }
    return t.dir;
  }

  const build = (ctx: string, args: string[], root = ws.root) => runKiln(['build', '--progress', 'plain', ...args, ctx], { root });

  async function fileIn(tag: string, file: string, cat = ['cat']): Promise<string | undefined> {
    const r = await runKiln(['run', tag, ...cat, file], { root: ws.root });
    return r.code === 0 ? r.stdout : undefined;
  }

  it('overrides a stage and an image of the same name, for FROM, COPY --from and RUN --mount from=', async () => {
    const named = await dir({ 'hello.txt': 'from the named context\n' });
    const ctx = await ws.context({
      Dockerfile: [
        'FROM busybox:latest AS tools',
        'RUN echo from the stage > /hello.txt',
        'FROM busybox:latest',
        'COPY --from=tools /hello.txt /copied.txt',
        'RUN --mount=from=tools,target=/in cp /in/hello.txt /mounted.txt',
        '',
      ].join('\n'),
    });
    const r = await build(ctx, ['-t', 'prec:1', '--build-context', `tools=${named}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /echo from the stage/, "the replaced stage's RUN is not run");
    assert.equal(await fileIn('prec:1', '/copied.txt'), 'from the named context\n');
    assert.equal(await fileIn('prec:1', '/mounted.txt'), 'from the named context\n');

    // an image name: COPY --from=busybox reads the directory, not the image
    const ctx2 = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY --from=alpine:3 /hello.txt /\n' });
    const r2 = await build(ctx2, ['-t', 'prec:2', '--build-context', `docker.io/library/alpine:3=${named}`]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await fileIn('prec:2', '/hello.txt'), 'from the named context\n');
  });

  it("reaches ONBUILD triggers of a base image: their COPY --from and RUN --mount from= name the build's contexts", async () => {
    const parentCtx = await ws.context({
      Dockerfile: 'FROM busybox:latest\nONBUILD COPY --from=extra /hello.txt /onbuild-copy.txt\nONBUILD RUN --mount=from=extra,target=/m cp /m/hello.txt /onbuild-mount.txt\n',
    });
    assert.equal((await build(parentCtx, ['-t', 'onbuild-parent:1'])).code, 0);
    const extra = await dir({ 'hello.txt': 'for the trigger\n' });
    const child = await ws.context({ Dockerfile: 'FROM onbuild-parent:1\n' });
    const r = await build(child, ['-t', 'onbuild-child:1', '--build-context', `extra=${extra}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileIn('onbuild-child:1', '/onbuild-copy.txt'), 'for the trigger\n');
    assert.equal(await fileIn('onbuild-child:1', '/onbuild-mount.txt'), 'for the trigger\n');
  });

  it('builds FROM a directory: the empty image with its files, RUN on it included', async () => {
    // a root filesystem of the host's static busybox
    const rootfs = await dir({});
    await fs.mkdir(path.join(rootfs, 'bin'));
    await fs.copyFile('/usr/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
    await fs.chmod(path.join(rootfs, 'bin', 'busybox'), 0o755);
    await fs.symlink('busybox', path.join(rootfs, 'bin', 'sh'));
    const ctx = await ws.context({ Dockerfile: 'FROM rootfs\nRUN /bin/busybox echo ran > /ran\n' });
    const r = await build(ctx, ['-t', 'fromdir:1', '--build-context', `rootfs=${rootfs}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileIn('fromdir:1', '/ran', ['/bin/busybox', 'cat']), 'ran\n');
    const inspect = await runKiln(['inspect', 'fromdir:1'], { root: ws.root });
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, /PATH=\/usr\/local\/sbin/, 'the empty image config (PATH) as BuildKit gives a local context');
  });

  it('keys a step on the content of the paths it reads from the directory', async () => {
    const named = await dir({ 'a.txt': 'one\n', 'big.bin': 'unrelated\n' });
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY --from=src a.txt /a.txt\n' });
    const args = ['-t', 'keyed:1', '--build-context', `src=${named}`];
    assert.equal((await build(ctx, args)).code, 0);
    await fs.writeFile(path.join(named, 'big.bin'), 'changed, but not read\n');
    const cached = await build(ctx, args);
    assert.match(cached.stderr, /COPY --from=src a.txt \/a.txt\n#\d+ CACHED/, cached.stderr);
    await fs.writeFile(path.join(named, 'a.txt'), 'two\n');
    const rerun = await build(ctx, args);
    assert.match(rerun.stderr, /COPY --from=src a.txt \/a.txt\n#\d+ DONE/, rerun.stderr);
    assert.equal(await fileIn('keyed:1', '/a.txt'), 'two\n');
  });

  it('keeps COPY --from a directory inside it: symlinks out and .. stay in the directory', async () => {
    const named = await dir({ 'inside.txt': 'in\n' });
    await fs.symlink('/etc', path.join(named, 'escape'));
    await fs.symlink('../../../../../../etc/passwd', path.join(named, 'up'));
    for (const src of ['escape/passwd', 'up', '../../../../etc/passwd']) {
      const ctx = await ws.context({ Dockerfile: `FROM busybox:latest\nCOPY --from=src ${src} /got\n` });
      const r = await build(ctx, ['-t', 'escape:1', '--build-context', `src=${named}`]);
      if (r.code === 0) {
        const got = await fileIn('escape:1', '/got');
        const host = await fs.readFile('/etc/passwd', 'utf8');
        assert.notEqual(got, host, `${src}: the host's /etc/passwd was copied`);
      } else {
        assert.match(r.stderr, /not found/, `${src}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /ENOENT|internal error|\n\s+at /);
      }
    }
  });

  it('pulls docker-image:// from a registry when the store lacks it, as FROM does', { skip: haveRegistry() ? false : 'docker-registry is not installed' }, async (t) => {
    const reg = await startRegistry();
    t.after(() => reg.stop());
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN echo pushed > /marker\n' });
    const ref = `${reg.host}/named/base:1`;
    const pushed = await build(ctx, ['--push', '-t', ref]);
    assert.equal(pushed.code, 0, pushed.stderr);
    // a root that has busybox but not the pushed image
    const fresh = await workspace();
    t.after(() => fresh.cleanup());
    const use = await fresh.context({ Dockerfile: 'FROM base\nRUN cat /marker > /seen\n' });
    const r = await build(use, ['-t', 'pulled:1', '--build-context', `base=docker-image://${ref}`], fresh.root);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /pull /, 'it was pulled');
    const seen = await runKiln(['run', 'pulled:1', 'cat', '/seen'], { root: fresh.root });
    assert.equal(seen.stdout, 'pushed\n');

    if (haveTool('skopeo')) {
      // an OCI layout skopeo writes (ref name "app", a tag alone), named by its tag
      const out = await tempDir('kiln-named-skopeo-');
      t.after(() => out.cleanup());
      const layout = path.join(out.dir, 'layout');
      const copy = await runCommand('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:app`]);
      assert.equal(copy.code, 0, copy.stderr);
      const byTag = await build(use, ['-t', 'fromlayout:1', '--build-context', `base=oci-layout://${layout}:app`], fresh.root);
      assert.equal(byTag.code, 0, byTag.stderr);
      const seen2 = await runKiln(['run', 'fromlayout:1', 'cat', '/seen'], { root: fresh.root });
      assert.equal(seen2.stdout, 'pushed\n');
      const noTag = await build(use, ['--build-context', `base=oci-layout://${layout}:nosuchtag`], fresh.root);
      assert.notEqual(noTag.code, 0);
      assert.match(noTag.stderr, /has no image tagged nosuchtag/);
      assert.match(noTag.stderr, /Dockerfile:1:6/, 'the error points at the FROM that uses it');
    }
  });

  it('refuses bad values with a clear error before building, and leaves unused contexts alone', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY --from=x /a /a\n' });
    const cases: Array<[string[], RegExp]> = [
      [['--build-context', 'x'], /invalid --build-context "x": expected NAME=VALUE/],
      [['--build-context', 'x='], /invalid --build-context x=: the value is empty/],
      [['--build-context', 'context=/tmp'], /cannot be named "context"/],
      [['--build-context', 'x=https://example.invalid/repo.git'], /remote context \(git or http\) is not supported yet/],
      [['--build-context', 'x=docker-image://'], /docker-image:\/\/ needs an image reference/],
      [['--build-context', 'x=oci-layout:///tmp/l@sha256:abc'], /is not a sha256 digest/],
      [['--build-context', 'x=/nonexistent/kiln-named-dir'], /named context x: cannot read \/nonexistent\/kiln-named-dir/],
      [['--build-context', `x=oci-layout://${ctx}`], /has no index\.json/],
    ];
    for (const [args, want] of cases) {
      const r = await build(ctx, args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, want, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /hint:/, `${args.join(' ')}: a hint`);
      assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, r.stderr);
    }
    // a missing directory that a step uses points at it
    const used = await build(ctx, ['--build-context', 'x=/nonexistent/kiln-named-dir']);
    assert.match(used.stderr, /Dockerfile:2:\d+/);
    // a broken context no step uses is never resolved
    const fine = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN true\n' });
    const r = await build(fine, ['--build-context', 'unused=/nonexistent/kiln-named-dir', '--build-context', 'other=docker-image://127.0.0.1:1/nothing:here']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('an OCI layout with a missing blob fails naming it, and nothing is half stored under a name', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN echo x > /x\n' });
    assert.equal((await build(ctx, ['-t', 'layoutsrc:1'])).code, 0);
    const t = await tempDir('kiln-named-oci-');
    temps.push(t.cleanup);
    const tar = path.join(t.dir, 'img.tar');
    assert.equal((await runKiln(['save', '--format', 'oci', '-o', tar, 'layoutsrc:1'], { root: ws.root })).code, 0);
    const layout = path.join(t.dir, 'layout');
    await fs.mkdir(layout);
    assert.equal((await runCommand('tar', ['-xf', tar, '-C', layout])).code, 0);
    const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(await fs.readFile(path.join(layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
    const last = manifest.layers[manifest.layers.length - 1].digest;
    await fs.rm(path.join(layout, 'blobs', 'sha256', last.slice(7)));
    const use = await ws.context({ Dockerfile: 'FROM base\n' });
    const fresh = await workspace();
    try {
      const r = await build(use, ['-t', 'broken:1', '--build-context', `base=oci-layout://${layout}`], fresh.root);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`blob ${last} is missing`));
      const images = await runKiln(['images'], { root: fresh.root });
      assert.doesNotMatch(images.stdout, /broken/);
    } finally {
      await fresh.cleanup();
    }
  });
});
