/**
 * The Debian bases of scripts/make-base-image.sh: what is in them (the official images' user,
 * env and CMD), that they are cached (a second call makes nothing), deterministic (made again in
 * another cache, byte for byte the same rootfs) and that a maker killed with -9 half-way leaves
 * nothing the next one does not clean up (mmdebstrap's chroot mounts included).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fs, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, runCommand, runKiln, tempDir } from '../helpers.js';
import { importBase, skipExamples } from './examples.js';

const script = path.join(repoRoot, 'scripts', 'make-base-image.sh');

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function mountsUnder(dir: string): string[] {
  const r = spawnSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((m) => m.startsWith(`${dir}/`));
}

/** The chroot of a running mmdebstrap under a cache dir, once its dpkg database exists. */
function findChroot(cache: string): string | undefined {
  const r = spawnSync('find', [cache, '-maxdepth', '8', '-path', '*/.making.*/tmp/mmdebstrap.*/var/lib/dpkg', '-type', 'd'], { encoding: 'utf8' });
  return r.stdout.trim().split('\n').filter(Boolean)[0];
}

/** Processes whose root or working directory is under dir. */
function processesIn(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    for (const link of ['root', 'cwd']) {
      try {
        if (readlinkSync(`/proc/${pid}/${link}`).startsWith(`${dir}/`)) out.push(`${pid} ${link}`);
      } catch {
        // gone, or not ours to read
      }
    }
  }
  return out;
}

describe('Debian bases (scripts/make-base-image.sh)', { skip: skipExamples }, () => {
  let root = '';
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    const r = await tempDir('kiln-root-bases-');
    cleanups.push(r.cleanup);
    root = r.dir;
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  const inspect = async (image: string) => {
    const r = await runKiln(['inspect', image], { root });
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { config: { created?: string; config?: { Env?: string[]; Cmd?: string[] } } };
    return { Created: info.config.created, Config: info.config.config };
  };
  const sh = async (image: string, cmd: string) => {
    const r = await runKiln(['run', image, 'sh', '-c', cmd], { root });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n');
  };

  it('node:18-bookworm: Debian nodejs 18 and npm, a user node 1000:1000, the official env and CMD', async () => {
    await importBase(root, 'node:18-bookworm');
    const info = await inspect('node:18-bookworm');
    assert.deepEqual(info.Config?.Cmd, ['node']);
    assert.ok(info.Config?.Env?.includes('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'));
    const version = info.Config?.Env?.find((e) => e.startsWith('NODE_VERSION='));
    assert.match(version ?? '', /^NODE_VERSION=18\.\d+\.\d+$/);
    assert.equal(info.Created, '2023-11-14T22:13:20Z');
    const out = await sh('node:18-bookworm', 'node -v; npm -v | cut -d. -f1; getent passwd node; getent group node; stat -c "%u:%g %a" /home/node; [ -e /etc/machine-id ] || echo no-machine-id; ls /var/log/apt | wc -l');
    assert.equal(`NODE_VERSION=${out[0].slice(1)}`, version);
    assert.equal(out[1], '9');
    assert.equal(out[2], 'node:x:1000:1000::/home/node:/bin/bash');
    assert.equal(out[3], 'node:x:1000:');
    assert.equal(out[4], '1000:1000 755');
    assert.deepEqual(out.slice(5), ['no-machine-id', '0']);
  });

  it('node:18-bookworm-slim has node without npm; debian:bookworm is minbase with CMD bash', async () => {
    await importBase(root, 'node:18-bookworm-slim');
    await importBase(root, 'debian:bookworm');
    const slim = 'node -e "console.log(1+1)"; command -v npm || echo no-npm; id -u node; [ "v$NODE_VERSION" = "$(node -v)" ] && echo NODE_VERSION-ok';
    assert.deepEqual(await sh('node:18-bookworm-slim', slim), ['2', 'no-npm', '1000', 'NODE_VERSION-ok']);
    assert.deepEqual((await inspect('debian:bookworm')).Config?.Cmd, ['bash']);
    const deb = await sh('debian:bookworm', '. /etc/os-release; echo $VERSION_CODENAME; command -v apt-get; command -v node || echo no-node; [ -f /etc/apt/apt.conf.d/docker-clean ] && echo docker-clean');
    assert.deepEqual(deb, ['bookworm', '/usr/bin/apt-get', 'no-node', 'docker-clean']);
  });

  it('a second call takes the base from the cache; offline, the cached base is used', async () => {
    const again = await runCommand('bash', [script, 'debian:bookworm', '--root', root]);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /making debian:bookworm/);
    // no archive: curl fails as it does without a network
    const t = await tempDir('kiln-nocurl-');
    cleanups.push(t.cleanup);
    await fs.writeFile(path.join(t.dir, 'curl'), '#!/bin/sh\necho "curl: (6) Could not resolve host" >&2\nexit 6\n', { mode: 0o755 });
    const offline = await runCommand('bash', [script, 'debian:bookworm', '--root', root], { env: { PATH: `${t.dir}:${process.env.PATH}` } });
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stderr, /archive unreachable; using the cached debian:bookworm/);
  });

  it('is deterministic, and a maker killed with -9 leaves nothing the next one does not clean', async () => {
    const cached = await tempDir('kiln-base-tar-');
    cleanups.push(cached.cleanup);
    const mine = path.join(cached.dir, 'cached.tar');
    const r0 = await runCommand('bash', [script, 'debian:bookworm', '--tar-only', mine]);
    assert.equal(r0.code, 0, r0.stderr);
    // a cache of our own: the base is made again from scratch (under a 0700 temp dir, which
    // apt's sandbox user cannot enter: the base must come out the same all the same)
    const cache = await tempDir('kiln-bases-cache-');
    cleanups.push(async () => {
      // never follow a mount out of the cache dir, even when the test failed with some left
      for (const m of mountsUnder(cache.dir).sort().reverse()) spawnSync('umount', ['-l', m]);
      spawnSync('rm', ['-rf', '--one-file-system', cache.dir]);
    });
    const env = { ...process.env, KILN_BASES_CACHE: cache.dir };
    const maker = spawn('bash', [script, 'debian:bookworm', '--tar-only', path.join(cached.dir, 'killed.tar')], { env, detached: true, stdio: 'ignore' });
    // wait for mmdebstrap to be installing packages in its chroot, then kill -9 the lot
    let chroot: string | undefined;
    for (let i = 0; i < 1200 && !chroot; i++) {
      await new Promise((r) => setTimeout(r, 100));
      chroot = findChroot(cache.dir);
    }
    const exited = new Promise((r) => maker.once('exit', r));
    try {
      process.kill(-maker.pid!, 'SIGKILL');
    } catch {
      // it ended by itself (the assertion below says so)
    }
    await exited;
    assert.ok(chroot, 'mmdebstrap made no chroot with a dpkg database within 120 s');
    // its chroot's mounts and processes were in namespaces of their own: none is left
    assert.deepEqual(mountsUnder(cache.dir), []);
    assert.deepEqual(processesIn(cache.dir), []);
    const fresh = path.join(cached.dir, 'fresh.tar');
    const r1 = await runCommand('bash', [script, 'debian:bookworm', '--tar-only', fresh], { env });
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stderr, /making debian:bookworm/);
    assert.deepEqual(mountsUnder(cache.dir), []);
    const [base] = await fs.readdir(cache.dir);
    const [entry] = await fs.readdir(path.join(cache.dir, base));
    const left = await fs.readdir(path.join(cache.dir, base, entry));
    assert.deepEqual(left.filter((f) => f !== '.lock').length, 1, `leftovers: ${left.join(', ')}`);
    assert.ok(!existsSync(path.join(cached.dir, 'killed.tar')));
    if ((await sha256File(fresh)) !== (await sha256File(mine))) {
      // say where: the members whose listing or content differs
      const list = (f: string) => spawnSync('sh', ['-c', 'tar -tvf "$1"; mkdir -p "$1.x" && tar -xf "$1" -C "$1.x" && cd "$1.x" && find . -type f -exec sha256sum {} + | sort -k2', 'sh', f], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout.split('\n');
      const [a, b] = [list(mine), list(fresh)];
      const diff = [...a.filter((l) => !b.includes(l)).map((l) => `- ${l}`), ...b.filter((l) => !a.includes(l)).map((l) => `+ ${l}`)];
      assert.fail(`the same inputs made a different rootfs: ${diff.slice(0, 20).join('\n')}`);
    }
  });
});
