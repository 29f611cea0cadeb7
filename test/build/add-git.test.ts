/**
 * ADD of a git repository, from real git servers on 127.0.0.1: smart http (git
 * http-backend), dumb http and git:// (git daemon). Keyed by the commit the ref resolves to;
 * --keep-git-dir, subdirs, --checksum as a commit, and what a killed fetch leaves behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { kilnPaths } from '../../src/paths.js';
import { gitDaemon, revParse, serveSmart, sh, type Served } from '../git-harness.js';
import { haveTool, isRoot, kilnBin, repoRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';

const skip = !isRoot() ? 'needs root' : !haveTool('git') ? 'git not installed' : false;

interface Ev {
  type: string;
  name: string;
}

describe('ADD <git repository>', { skip }, () => {
  let ws: Workspace;
  let repos: { dir: string; cleanup: () => Promise<void> };
  let work: string;
  let smart: Served;
  let daemon: Served;

  before(async () => {
    ws = await workspace();
    repos = await tempDir('kiln-git-');
    work = path.join(repos.dir, 'work');
    await fs.mkdir(work);
    await sh(
      work,
      'git init -q -b main',
      'echo one >foo',
      'mkdir -p sub/deeper bin',
      'echo in sub >sub/file',
      'echo deeper >sub/deeper/x',
      'printf "#!/bin/sh\\necho run\\n" >bin/tool',
      'chmod 755 bin/tool',
      'ln -s foo link',
      'git add -A',
      'git commit -q -m one',
      'git tag v1',
      'git tag -a -m annotated v1-annotated',
      'echo two >foo',
      'git commit -q -am two',
      'git tag v2',
      'git clone -q --bare . ../repo.git',
    );
    smart = await serveSmart(repos.dir, 'repo.git');
    daemon = await gitDaemon(repos.dir, 'repo.git');
  });
  after(async () => {
    await smart?.close();
    await daemon?.close();
    await repos?.cleanup();
    await ws?.cleanup();
  });

  const build = async (dockerfile: string, tag: string, extra: string[] = []) => {
    const dir = await ws.context({ Dockerfile: dockerfile });
    const r = await runKiln(['build', '--progress', 'json', '-t', tag, ...extra, dir], { root: ws.root });
    const evs = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Ev);
    return { ...r, add: evs.filter((e) => / ADD /.test(e.name)).map((e) => e.type) };
  };
  const run = async (tag: string, script: string) => {
    const r = await runKiln(['run', tag, 'sh', '-c', script], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const push = (commands: string) => sh(work, commands, 'git push -q --force --tags ../repo.git main');

  it('adds a tag over smart http: the files of that commit, git modes, no .git, root-owned', async () => {
    const r = await build(`FROM busybox:latest\nADD ${smart.url}#v1 /src\n`, 'addgit:tag');
    assert.equal(r.code, 0, r.stderr);
    const out = await run('addgit:tag', 'cd /src && cat foo sub/file && stat -c "%n %a %u:%g" foo bin/tool sub && readlink link && ls -a /src | tr "\\n" " "');
    assert.equal(out, 'one\nin sub\nfoo 644 0:0\nbin/tool 755 0:0\nsub 755 0:0\nfoo\n. .. bin foo link sub ');
  });

  it('keys the step on the commit: a cached build fetches no objects, a moved branch invalidates it', async () => {
    const df = `FROM busybox:latest\nADD ${smart.url}#main /src\n`;
    const first = await build(df, 'addgit:main');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(await run('addgit:main', 'cat /src/foo'), 'two\n');
    smart.requests.length = 0;
    const again = await build(df, 'addgit:main');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.add, ['cached']);
    // only the refs were asked for (ls-remote), no objects
    assert.ok(smart.requests.length > 0);
    assert.ok(!smart.requests.some((u) => u.endsWith(' fetch')), smart.requests.join('\n'));
    await push('echo three >foo && git commit -q -am three');
    try {
      const moved = await build(df, 'addgit:main');
      assert.equal(moved.code, 0, moved.stderr);
      assert.ok(moved.add.includes('done'), JSON.stringify(moved.add));
      assert.equal(await run('addgit:main', 'cat /src/foo'), 'three\n');
      assert.ok(smart.requests.some((u) => u.endsWith(' fetch')), `the new commit was fetched: ${smart.requests.join('\n')}`);
    } finally {
      await push('git reset -q --hard v2');
    }
  });

  it('--keep-git-dir keeps a .git with HEAD detached at the commit and origin the remote', async () => {
    const v2 = await revParse(work, 'v2');
    const r = await build(`FROM busybox:latest\nADD --keep-git-dir=true ${smart.url}#v2 /src\n`, 'addgit:keep');
    assert.equal(r.code, 0, r.stderr);
    const out = await run('addgit:keep', 'cat /src/.git/HEAD && grep -A1 "remote \\"origin\\"" /src/.git/config | tail -1 && ls /src/.git/refs/tags');
    assert.equal(out, `${v2}\n\turl = ${smart.url}\nv2\n`);
  });

  it('adds a branch subdir over git:// (git daemon), and an annotated tag by its commit', async () => {
    const r = await build(`FROM busybox:latest\nADD ${daemon.url}#v1:sub /s\nADD ${daemon.url}?tag=v1-annotated&subdir=sub/deeper /d\n`, 'addgit:daemon');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await run('addgit:daemon', 'cat /s/file /s/deeper/x /d/x && ls /s | tr "\\n" " "'), 'in sub\ndeeper\ndeeper\ndeeper file ');
  });

  it('--checksum is the commit: a prefix matches, another commit fails at the ADD line', async () => {
    const v1 = await revParse(work, 'v1');
    const ok = await build(`FROM busybox:latest\nADD --checksum=${v1.slice(0, 10)} ${smart.url}#v1 /src\n`, 'addgit:sum');
    assert.equal(ok.code, 0, ok.stderr);
    const v2 = await revParse(work, 'v2');
    const bad = await build(`FROM busybox:latest\nADD --checksum=${v2} ${smart.url}#v1 /src\n`, 'addgit:bad');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, new RegExp(`Dockerfile:2:1: .*expected checksum to match ${v2}, got ${v1}`));
    const garbage = await build(`FROM busybox:latest\nADD --checksum=sha256:zz ${smart.url}#v1 /src\n`, 'addgit:garbage');
    assert.match(garbage.stderr, /invalid checksum sha256:zz for Git URL, expected hex commit hash/);
  });

  it('fails clearly: a ref that is not there, a subdir that is a file or a symlink, COPY of a repository', async () => {
    const noRef = await build(`FROM busybox:latest\nADD ${smart.url}#nope /src\n`, 'addgit:x');
    assert.notEqual(noRef.code, 0);
    assert.match(noRef.stderr, /Dockerfile:2:1: http:\S+: repository does not contain ref nope/);
    const fileSub = await build(`FROM busybox:latest\nADD ${smart.url}#v1:foo /src\n`, 'addgit:x');
    assert.match(fileSub.stderr, /invalid subdir foo of http:\S+: foo is not a directory/);
    const linkSub = await build(`FROM busybox:latest\nADD ${smart.url}#v1:link /src\n`, 'addgit:x');
    assert.match(linkSub.stderr, /invalid subdir link of http:\S+: link is a symlink/);
    const copy = await build(`FROM busybox:latest\nCOPY ${smart.url} /src\n`, 'addgit:x');
    assert.match(copy.stderr, /Dockerfile:2:6: source can't be a git ref for COPY/);
    const query = await build(`FROM busybox:latest\nADD ${smart.url}?tag=v1#refs/heads/main /src\n`, 'addgit:x');
    assert.match(query.stderr, /Dockerfile:2:5: invalid git source .*ref conflicts: "refs\/heads\/main" vs "refs\/tags\/v1"/);
    for (const r of [noRef, fileSub, linkSub, copy, query]) assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('fetches into the cache of a killed fetch: git lock files left behind are removed under kiln lock', async () => {
    const cache = kilnPaths(ws.root).cacheGit;
    let bare: string | undefined;
    for (const d of await fs.readdir(cache)) {
      const config = await fs.readFile(path.join(cache, d, 'config'), 'utf8').catch(() => '');
      if (config.includes(smart.url)) bare = path.join(cache, d);
    }
    assert.ok(bare, 'a repository was fetched into the cache');
    await fs.writeFile(path.join(bare, 'shallow.lock'), '');
    await fs.writeFile(path.join(bare, 'packed-refs.lock'), '');
    await push('echo four >foo && git commit -q -am four');
    try {
      const r = await build(`FROM busybox:latest\nADD ${smart.url}#main /src\n`, 'addgit:locks');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await run('addgit:locks', 'cat /src/foo'), 'four\n');
    } finally {
      await push('git reset -q --hard v2');
    }
  });

  it('kill -9 during a fetch: git dies with kiln, and the next build takes the lock and leaves no temp dirs', async () => {
    await push('echo five >foo && git commit -q -am five');
    const dir = await ws.context({ Dockerfile: `FROM busybox:latest\nADD ${smart.url}#main /src\n` });
    smart.hold = true;
    smart.requests.length = 0;
    const kiln = spawn(process.execPath, [kilnBin, '--root', ws.root, 'build', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    kiln.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise((r) => kiln.once('exit', r));
    try {
      await waitUntil(() => smart.requests.some((u) => u.endsWith(' fetch')), () => `no fetch reached the server: ${stderr}`);
      const gits = descendants(kiln.pid!).filter((p) => p.comm === 'git');
      assert.ok(gits.length > 0, 'git runs under kiln');
      kiln.kill('SIGKILL');
      await exited;
      await waitUntil(() => gits.every((p) => !alive(p.pid)), () => `git outlived kiln: ${gits.map((p) => p.pid).join(' ')}`);
    } finally {
      smart.hold = false;
      smart.releaseHeld?.();
      if (kiln.exitCode === null && kiln.signalCode === null) kiln.kill('SIGKILL');
    }
    try {
      const r = await build(`FROM busybox:latest\nADD ${smart.url}#main /src\n`, 'addgit:killed');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await run('addgit:killed', 'cat /src/foo'), 'five\n');
      const left = (await fs.readdir(kilnPaths(ws.root).tmp)).filter((n) => n.includes(`-${kiln.pid}-`));
      assert.deepEqual(left, [], 'what the killed build left in tmp was removed');
    } finally {
      await push('git reset -q --hard v2');
    }
  });

  it('trusts NODE_EXTRA_CA_CERTS for a repository over https, as ADD <url> does (through the kiln command)', async (t) => {
    const dir = await tempDir('kiln-git-tls-');
    t.after(dir.cleanup);
    const cert = path.join(dir.dir, 'cert.pem');
    const key = path.join(dir.dir, 'key.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    assert.equal(r.status, 0, r.stderr.toString());
    const secure = await serveSmart(repos.dir, 'repo.git', { key: await fs.readFile(key), cert: await fs.readFile(cert) });
    t.after(() => secure.close());
    const ctx = await ws.context({ Dockerfile: `FROM busybox:latest\nADD ${secure.url}#v1 /src\n` });
    const kiln = path.join(repoRoot, 'bin', 'kiln');
    const ok = await runCommand(kiln, ['--root', ws.root, 'build', '-t', 'addgit:tls', ctx], { env: { NODE_EXTRA_CA_CERTS: cert, KILN_EXTRA_CA_CERTS: '' } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await run('addgit:tls', 'cat /src/foo'), 'one\n');
    // without it the certificate is not trusted: a clear error at the ADD line
    const bad = await runCommand(kiln, ['--root', ws.root, 'build', '--no-cache', ctx], { env: { NODE_EXTRA_CA_CERTS: '', KILN_EXTRA_CA_CERTS: '' } });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Dockerfile:2:1: could not read the refs of https:\S+: .*(certificate|SSL)/);
  });

  it('kiln prune --all removes the fetched repositories; the next build fetches again', async () => {
    const cache = kilnPaths(ws.root).cacheGit;
    const before = await fs.readdir(cache);
    assert.ok(before.length >= 2, before.join(' '));
    const du = await runKiln(['du', '--verbose'], { root: ws.root });
    assert.equal(du.stdout.match(/ADD <git repository>: fetched objects/g)?.length, before.length, du.stdout);
    const prune = await runKiln(['prune', '--all'], { root: ws.root });
    assert.equal(prune.code, 0, prune.stderr);
    assert.deepEqual(await fs.readdir(cache), []);
    smart.requests.length = 0;
    const r = await build(`FROM busybox:latest\nADD ${smart.url}#v1 /src\n`, 'addgit:pruned');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(smart.requests.some((u) => u.endsWith(' fetch')));
  });
});

async function waitUntil(check: () => boolean, what: () => string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(what());
    await new Promise((r) => setTimeout(r, 50));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The processes under `pid` (from /proc), with their command names. */
function descendants(pid: number): Array<{ pid: number; comm: string }> {
  const all = readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .flatMap((n) => {
      try {
        const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        return [{ pid: Number(n), comm: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(stat.slice(close + 2).split(' ')[1]) }];
      } catch {
        return [];
      }
    });
  const out: Array<{ pid: number; comm: string }> = [];
  const walk = (p: number): void => {
    for (const c of all.filter((x) => x.ppid === p)) {
      out.push({ pid: c.pid, comm: c.comm });
      walk(c.pid);
    }
  };
  walk(pid);
  return out;
}

