/**
 * `kiln run -v HOST:CONTAINER[:ro]`: host paths bind-mounted into the container. The host path
 * must exist; the container path is resolved inside the rootfs (symlinks in the image never
 * lead out of it, whatever they point at) and made there when missing.
 */
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { runImage, parseVolume } from '../src/run.js';
import { checkBinds, placeBinds } from '../src/exec/binds.js';
import { mountsUnder } from '../src/lifecycle.js';
import { KilnError } from '../src/errors.js';
import { dockerCli, isRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from './helpers.js';
import { dockerOracle, ownName, type DockerOracle } from './oracle/docker.js';

const skip = isRoot() ? false : 'needs root (runc over overlayfs)';

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('kiln run -v', { skip }, () => {
  let ws: Workspace;
  let host: { dir: string; cleanup: () => Promise<void> };
  /** An empty host directory and a host file that symlinks in the image point at. */
  let outsideDir: string;
  let outsideFile: string;
  let src: string;
  before(async () => {
    ws = await workspace();
    host = await tempDir('kiln-binds-');
    outsideDir = path.join(host.dir, 'outside');
    outsideFile = path.join(host.dir, 'outside-file');
    src = path.join(host.dir, 'src');
    await fs.mkdir(outsideDir);
    await fs.writeFile(outsideFile, 'host file, not to be touched\n');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'in.txt'), 'from the host\n');
    const up = '../'.repeat(12);
    const ctx = await ws.context({
      Dockerfile: [
        'FROM busybox:latest',
        `RUN ln -s ${outsideDir} /abs && ln -s ${up}${outsideDir.slice(1)} /rel && ln -s / /rootlink && ln -s /etc/passwd /pw && ln -s ${outsideFile} /filelink && mkdir /m`,
        '',
      ].join('\n'),
    });
    const r = await runKiln(['build', '-t', 'links:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
  });
  let oracle: DockerOracle | undefined;
  after(async () => {
    await oracle?.cleanup();
    await host?.cleanup();
    await ws?.cleanup();
  });

  const run = (args: string[], cwd?: string) => runKiln(['run', ...args], { root: ws.root, cwd });

  it('a directory bind is read and written through; :ro refuses writes', async () => {
    const rw = await run(['-v', `${src}:/data`, 'busybox', 'sh', '-c', 'cat /data/in.txt && echo written > /data/out.txt']);
    assert.equal(rw.code, 0, rw.stderr);
    assert.equal(rw.stdout, 'from the host\n');
    assert.equal(await fs.readFile(path.join(src, 'out.txt'), 'utf8'), 'written\n');
    await fs.rm(path.join(src, 'out.txt'));
    const ro = await run(['-v', `${src}:/data:ro`, 'busybox', 'sh', '-c', 'cat /data/in.txt; echo no > /data/out.txt']);
    assert.notEqual(ro.code, 0);
    assert.equal(ro.stdout, 'from the host\n');
    assert.match(ro.stderr, /Read-only file system/);
    await assert.rejects(fs.stat(path.join(src, 'out.txt')), { code: 'ENOENT' });
    assert.deepEqual(mountsUnder(ws.root), []);
  });

  it('a missing target is made in the container (a file for a file), not in the image', async () => {
    const r = await run(['-v', `${src}/in.txt:/new/deep/file.txt`, '-v', `${src}:/also/new/dir`, 'busybox', 'sh', '-c', 'cat /new/deep/file.txt; ls /also/new/dir; [ -f /new/deep/file.txt ] && [ -d /also/new/dir ] && echo types-ok']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from the host\nin.txt\ntypes-ok\n');
    const again = await run(['busybox', 'sh', '-c', 'ls -d /new /also 2>&1 || true']);
    assert.match(again.stdout, /No such file or directory/);
  });

  it('nested binds mount the parent first, whatever their order; a relative host path is from the working directory', async () => {
    const inner = path.join(host.dir, 'inner');
    await fs.mkdir(inner, { recursive: true });
    await fs.writeFile(path.join(inner, 'x'), 'inner\n');
    const r = await run(['-v', './inner:/m/a/inner', '-v', `${src}:/m/a`, 'busybox', 'sh', '-c', 'cat /m/a/inner/x /m/a/in.txt'], host.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'inner\nfrom the host\n');
  });

  it('symlinks in the image, absolute or climbing with .., resolve inside the rootfs: nothing is made or mounted on the host', async () => {
    const passwd = sha('/etc/passwd');
    const r = await run([
      '-v', `${src}:/abs/sub`,
      '-v', `${src}:/rel/sub2`,
      '-v', `${src}:/rootlink/via-root`,
      '-v', `${src}:/../../../..${host.dir}/climbed`,
      '-v', `${outsideFile}:/pw`,
      '-v', `${src}:/filelink`,
      'links:1', 'sh', '-c',
      [
        'cat /abs/sub/in.txt /rel/sub2/in.txt /via-root/in.txt /filelink/in.txt',
        `cat ${host.dir}/climbed/in.txt`,
        'cat /etc/passwd',
        `for p in ${outsideDir}/sub ${outsideDir}/sub2 ${outsideFile}; do ls -d $p; done`,
      ].join(' && '),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `${'from the host\n'.repeat(4)}from the host\nhost file, not to be touched\n${outsideDir}/sub\n${outsideDir}/sub2\n${outsideFile}\n`,
    );
    // the host paths the links name: untouched
    assert.deepEqual(await fs.readdir(outsideDir), []);
    assert.equal(await fs.readFile(outsideFile, 'utf8'), 'host file, not to be touched\n');
    await assert.rejects(fs.stat(path.join(host.dir, 'climbed')), { code: 'ENOENT' });
    await assert.rejects(fs.stat('/via-root'), { code: 'ENOENT' });
    assert.equal(sha('/etc/passwd'), passwd);
    assert.deepEqual(mountsUnder(ws.root), []);
  });

  it('a target that leads to the root, or of the wrong type, is refused before the run', async () => {
    const toRoot = await run(['-v', `${src}:/rootlink`, 'links:1', 'true']);
    assert.equal(toRoot.code, 1);
    assert.match(toRoot.stderr, /^error: cannot mount .* at \/rootlink: in the image, that path leads to the container's root/m);
    const dirOnFile = await run(['-v', `${src}:/pw`, 'links:1', 'true']);
    assert.equal(dirOnFile.code, 1);
    assert.match(dirOnFile.stderr, /cannot mount the directory .* at \/pw \(\/etc\/passwd in the image\): the image has a file there/);
    const fileOnDir = await run(['-v', `${outsideFile}:/etc`, 'busybox', 'true']);
    assert.match(fileOnDir.stderr, /cannot mount the file .* at \/etc: the image has a directory there/);
    assert.deepEqual(mountsUnder(ws.root), []);
  });

  it('bad volumes are clear errors', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['-v', '/no/such/kiln/path:/x'], /^error: bind source path does not exist: \/no\/such\/kiln\/path$/m],
      [['-v', `${src}:relative`], /^error: invalid bind target "relative": it must be an absolute path/m],
      [['-v', `${src}:/`], /^error: invalid bind target "\/": cannot mount over the container's root/m],
      [['-v', `${src}:/x`, '-v', `${outsideDir}:/x/`], /^error: duplicate mount point \/x/m],
      [['-v', 'myvolume:/x'], /^error: invalid volume "myvolume:\/x": named volumes are not supported/m],
      [['-v', `${src}:/x:z`], /^error: invalid volume .*: unknown option "z"/m],
      [['-v', `${src}`], /^error: invalid volume .*: expected HOST:CONTAINER\[:OPTIONS\]/m],
    ];
    for (const [args, re] of cases) {
      const r = await run([...args, 'busybox', 'true']);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
    }
  });

  it('does what docker 20.10 run -v does with the same binds on the same image', async (t) => {
    oracle = await dockerOracle({ prefix: 'kiln-run-binds' });
    if (oracle.available !== true) return t.skip(`no docker oracle: ${oracle.available}`);
    const image = `${ownName('kiln-run-binds', 'links')}:1`;
    assert.equal((await runKiln(['tag', 'links:1', image], { root: ws.root })).code, 0);
    await oracle.loadFromKiln(ws.root, image);
    if (!(await oracle.ready())) return t.skip('the docker daemon went away');
    const binds = [
      '-v', `${src}:/data:ro`,
      '-v', `${src}:/abs/sub`,
      '-v', `${src}:/rel/sub2`,
      '-v', `${src}/in.txt:/new/deep/file.txt`,
      '-v', `${src}:/also/new/dir:ro`,
      '-v', `${outsideFile}:/pw:ro`,
      '-v', `${src}:/filelink`,
    ];
    const script = [
      'for p in /data/in.txt /abs/sub/in.txt /rel/sub2/in.txt /filelink/in.txt /new/deep/file.txt /also/new/dir/in.txt /etc/passwd; do cat $p; done',
      `stat -c '%n %a %u:%g %F' /new /new/deep /new/deep/file.txt /also /also/new /also/new/dir /abs /abs/sub ${outsideDir} ${outsideDir}/sub /filelink ${outsideFile}`,
      'readlink /abs; readlink /pw',
      '(echo no > /data/x) 2>/dev/null || echo data-ro',
      '(echo no > /also/new/dir/x) 2>/dev/null || echo dir-ro',
      '(echo no >> /etc/passwd) 2>/dev/null || echo passwd-ro',
      'echo yes > /abs/sub/w && cat /abs/sub/w && rm /abs/sub/w',
    ].join('; ');
    const docker = await runCommand(dockerCli, ['run', '--rm', '--network', 'none', ...binds, image, 'sh', '-c', script]);
    if (docker.code !== 0 && /docker daemon|docker\.sock/i.test(docker.stderr)) return t.skip('the docker daemon went away');
    const kiln = await run(['--network', 'none', ...binds, image, 'sh', '-c', script]);
    assert.equal(kiln.code, docker.code, `kiln: ${kiln.stderr}\ndocker: ${docker.stderr}`);
    assert.equal(kiln.stdout, docker.stdout);
    assert.match(kiln.stdout, /data-ro\ndir-ro\npasswd-ro\nyes\n$/);
    assert.deepEqual(await fs.readdir(outsideDir), []);
  });

  it('the library takes binds too, and parseVolume reads -v as docker does', async () => {
    assert.deepEqual(parseVolume('./a:/b:ro', '/base'), { source: '/base/a', target: '/b', readonly: true });
    assert.deepEqual(parseVolume('/a:/b:rw'), { source: '/a', target: '/b', readonly: false });
    const out: string[] = [];
    const r = await runImage({ root: ws.root, image: 'busybox', args: ['cat', '/d/in.txt'], binds: [{ source: src, target: '/d', readonly: true }], onOutput: (c) => out.push(c.toString()) });
    assert.equal(r.exitCode, 0, r.outputTail);
    assert.equal(out.join(''), 'from the host\n');
    await assert.rejects(runImage({ root: ws.root, image: 'busybox', args: ['true'], binds: [{ source: '/nope-kiln', target: '/d' }] }), (e: unknown) => e instanceof KilnError && e.code === 'not-found');
  });
});

test('placeBinds resolves targets inside the root and makes mount points only there', async () => {
  const t = await tempDir('kiln-place-');
  try {
    const root = path.join(t.dir, 'rootfs');
    const outside = path.join(t.dir, 'outside');
    await fs.mkdir(path.join(root, 'etc'), { recursive: true });
    await fs.mkdir(outside);
    await fs.writeFile(path.join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    await fs.symlink(outside, path.join(root, 'abs'));
    await fs.symlink(`${'../'.repeat(10)}${outside.slice(1)}`, path.join(root, 'rel'));
    await fs.symlink('/etc/passwd', path.join(root, 'pw'));
    await fs.symlink('loop2', path.join(root, 'loop1'));
    await fs.symlink('loop1', path.join(root, 'loop2'));
    const file = path.join(t.dir, 'f');
    await fs.writeFile(file, 'f');
    const binds = await checkBinds([
      { source: t.dir, target: '/rel/b/c' },
      { source: t.dir, target: '/abs/a' },
      { source: file, target: '/pw' },
      { source: file, target: '/abs/f' },
    ]);
    const mounts = placeBinds(root, binds);
    assert.deepEqual(
      mounts.map((m) => [m.destination, m.options.join(',')]),
      [
        ['/etc/passwd', 'rbind'],
        [`${outside}/a`, 'rbind'],
        [`${outside}/f`, 'rbind'],
        [`${outside}/b/c`, 'rbind'],
      ],
    );
    assert.ok((await fs.stat(path.join(root, outside, 'a'))).isDirectory());
    assert.ok((await fs.stat(path.join(root, outside, 'f'))).isFile());
    assert.ok((await fs.stat(path.join(root, outside, 'b', 'c'))).isDirectory());
    assert.deepEqual(await fs.readdir(outside), [], 'nothing made outside the root');
    assert.throws(() => placeBinds(root, [{ source: t.dir, target: '/loop1/x', readonly: false, directory: true }]), (e: unknown) => e instanceof KilnError && /too many levels of symbolic links/.test(e.message));
  } finally {
    await t.cleanup();
  }
});
