import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  cleanupStaleContainers,
  detectRuntime,
  detectRuntimeFrom,
  findRuntimeBinary,
  probeRuntime,
  resetRuntimeCache,
  runContainer,
  type RunSpec,
} from '../../src/exec/index.js';
import { KilnError } from '../../src/errors.js';
import { makeBusyboxRootfs } from './rootfs.js';

const isRoot = process.getuid?.() === 0;
const haveTools = existsSync('/bin/busybox') && ['/usr/sbin/runc', '/usr/bin/runc', '/sbin/runc', '/bin/runc'].some(existsSync);
const skip = !isRoot ? 'needs root to run containers' : !haveTools ? 'needs runc and busybox-static' : false;

let dir = '';
let rootfs = '';
let stateRoot = '';

before(async () => {
  if (skip) return;
  delete process.env.KILN_RUNTIME;
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-exec-'));
  rootfs = await makeBusyboxRootfs(path.join(dir, 'rootfs'));
  stateRoot = path.join(dir, 'run');
});

after(async () => {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

function runcPath(): string {
  return ['/usr/sbin/runc', '/usr/bin/runc', '/sbin/runc', '/bin/runc'].find(existsSync) as string;
}

function runtimeList(): string[] {
  const out = execFileSync(runcPath(), ['--root', path.join(stateRoot, 'runtime'), 'list', '-q']).toString();
  return out.split('\n').filter(Boolean);
}

async function bundles(): Promise<string[]> {
  return fsp.readdir(path.join(stateRoot, 'bundles')).catch(() => []);
}

async function run(args: string[], extra: Partial<RunSpec> = {}): Promise<{ exitCode: number; signal?: string; out: string; tail: string }> {
  let out = '';
  const res = await runContainer({
    rootfs,
    args,
    env: [],
    cwd: '/',
    user: '',
    network: 'none',
    stateRoot,
    onOutput: (c) => (out += c.toString()),
    ...extra,
  });
  return { exitCode: res.exitCode, signal: res.signal, out, tail: res.outputTail };
}

test('detectRuntime finds a runtime that really runs containers here', { skip }, async () => {
  resetRuntimeCache();
  const rt = await detectRuntime();
  assert.equal(rt.name, 'runc', 'runc is tried first and works on this machine');
  assert.ok(path.isAbsolute(rt.path));
  assert.equal(await detectRuntime(), rt, 'cached per process');

  // crun fails here ("cgroups in hybrid mode not supported"): detection must notice, not assume
  const crun = await findRuntimeBinary('crun');
  if (crun) {
    const reason = await probeRuntime(crun);
    const picked = await detectRuntimeFrom(['crun', 'runc']);
    if (reason === undefined) {
      assert.equal(picked.name, 'crun');
    } else {
      assert.equal(picked.name, 'runc');
      assert.deepEqual(picked.rejected, [{ candidate: 'crun', reason }]);
      assert.ok(reason.length > 0);
      console.log(`# crun rejected: ${reason}`);
    }
  }
  // a binary that is not a working runtime is rejected by running it, not by its name
  await assert.rejects(
    detectRuntimeFrom(['/bin/false', 'no-such-runtime-kiln']),
    (e: unknown) => e instanceof KilnError && /no-such-runtime-kiln: not installed/.test(e.message) && /apt-get install runc/.test(e.hint ?? ''),
  );
});

test('the runtime probe of a kiln root works in the root\'s tmp/, not the system temp dir', { skip }, async () => {
  const root = path.join(dir, 'probe-root');
  const systemTmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-probe-watch-'));
  const seenInSystem: string[] = [];
  const seenInRoot: string[] = [];
  await fsp.mkdir(path.join(root, 'tmp'), { recursive: true });
  const watchers = [
    (await import('node:fs')).watch(systemTmp, (_e, name) => name && seenInSystem.push(String(name))),
    (await import('node:fs')).watch(path.join(root, 'tmp'), (_e, name) => name && seenInRoot.push(String(name))),
  ];
  const savedTmp = process.env.TMPDIR;
  try {
    process.env.TMPDIR = systemTmp;
    resetRuntimeCache();
    const rt = await detectRuntime(path.join(root, 'run'));
    assert.equal(rt.name, 'runc');
    await new Promise((r) => setTimeout(r, 100)); // let the watchers report
    assert.deepEqual(seenInSystem, [], 'nothing was made in the system temp dir');
    // an owned name (kind-pid-start-hex): a kill -9 during the probe leaves it to the reaper
    assert.ok(seenInRoot.some((n) => new RegExp(`^probe-${process.pid}-\\d+-[0-9a-f]+$`).test(n)), seenInRoot.join(', '));
    assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), [], 'the probe removed its files');
  } finally {
    for (const w of watchers) w.close();
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    resetRuntimeCache();
    await fsp.rm(systemTmp, { recursive: true, force: true });
  }
});

test('KILN_RUNTIME overrides detection', { skip }, async () => {
  try {
    process.env.KILN_RUNTIME = 'runc';
    resetRuntimeCache();
    assert.equal((await detectRuntime()).name, 'runc');
    process.env.KILN_RUNTIME = '/nonexistent/kiln-runtime';
    resetRuntimeCache();
    await assert.rejects(detectRuntime(), (e: unknown) => e instanceof KilnError && /KILN_RUNTIME/.test(e.message));
  } finally {
    delete process.env.KILN_RUNTIME;
    resetRuntimeCache();
  }
});

test('exit codes propagate, signals map to 128+N', { skip }, async () => {
  assert.equal((await run(['sh', '-c', 'exit 3'])).exitCode, 3);
  assert.equal((await run(['true'])).exitCode, 0);
  // PID 1 of a pid namespace cannot SIGKILL itself: kill it through the runtime, from outside
  const pending = run(['sleep', '30']);
  let ids: string[] = [];
  // running, not only created: a kill before the process is exec'd (the seccomp filter and the
  // mounts are still being set up) fails the start instead of killing the process
  const running = (id: string): boolean => {
    try {
      return (JSON.parse(execFileSync(runcPath(), ['--root', path.join(stateRoot, 'runtime'), 'state', id]).toString()) as { status?: string }).status === 'running';
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 100 && !(ids.length > 0 && running(ids[0])); i++) {
    await new Promise((r) => setTimeout(r, 100));
    ids = runtimeList();
  }
  execFileSync(runcPath(), ['--root', path.join(stateRoot, 'runtime'), 'kill', ids[0], 'KILL']);
  const killed = await pending;
  assert.equal(killed.exitCode, 137);
  assert.equal(killed.signal, 'SIGKILL');
  const missing = await run(['/no/such/binary']);
  assert.notEqual(missing.exitCode, 0);
  assert.match(missing.tail, /no such file|not found/i);
  assert.deepEqual(runtimeList(), []);
  assert.deepEqual(await bundles(), []);
});

test('env, cwd and user are applied', { skip }, async () => {
  const r = await run(['sh', '-c', 'echo "u=$(id -u) g=$(id -g) G=$(id -G) pwd=$(pwd) foo=$FOO home=$HOME"; echo "path=$PATH"'], {
    env: ['FOO=bar baz'],
    cwd: '/work/dir',
    user: 'app',
  });
  assert.equal(r.exitCode, 0, r.out);
  assert.match(r.out, /u=1000 g=1000 G=1000 2000 pwd=\/work\/dir foo=bar baz home=\/home\/app/);
  assert.match(r.out, /path=\/usr\/local\/sbin:/, 'default PATH when the image has none');
  const wd = await fsp.stat(path.join(rootfs, 'work/dir'));
  assert.equal(wd.uid, 1000, 'missing WORKDIR created for the user');
  const explicit = await run(['sh', '-c', 'echo "$(id -u):$(id -g):$(id -G)"'], { user: '1000:3000' });
  assert.equal(explicit.out.trim(), '1000:3000:3000');
  const root = await run(['sh', '-c', 'echo "$(id -u) $HOME $(hostname)"'], { env: ['PATH=/bin'], hostname: 'builder' });
  assert.equal(root.out.trim(), '0 /root builder');
  await assert.rejects(run(['true'], { user: 'nobody' }), /unable to find user nobody: no matching entries in passwd file/);
});

test('output tail keeps the last 20 lines of stdout and stderr', { skip }, async () => {
  const chunks: Array<'stdout' | 'stderr'> = [];
  let all = '';
  const res = await runContainer({
    rootfs,
    args: ['sh', '-c', 'for i in $(seq 1 30); do echo line $i; done; echo oops >&2; exit 1'],
    env: [],
    cwd: '/',
    user: '',
    network: 'none',
    stateRoot,
    onOutput: (c, s) => {
      chunks.push(s);
      all += c.toString();
    },
  });
  assert.equal(res.exitCode, 1);
  const lines = res.outputTail.split('\n');
  assert.equal(lines.length, 20);
  // stdout and stderr are separate pipes, so 'oops' may arrive before some stdout lines:
  // the tail is the last 20 lines in the order they arrived
  assert.deepEqual(lines, all.trimEnd().split('\n').slice(-20));
  assert.ok(lines.includes('line 30'), res.outputTail);
  assert.ok(lines.every((l) => /^(line (1[0-9]|2\d|30)|oops)$/.test(l)), res.outputTail);
  assert.ok(chunks.includes('stderr') && chunks.includes('stdout'));
  assert.match(all, /line 1\n/);
});

test('bind and tmpfs mounts, readonly rootfs, network none vs host', { skip }, async () => {
  const shared = path.join(dir, 'shared');
  await fsp.mkdir(shared, { recursive: true });
  await fsp.writeFile(path.join(shared, 'in.txt'), 'from host');
  const r = await run(['sh', '-c', 'cat /mnt/host/in.txt; echo back > /mnt/host/out.txt; echo t > /scratch/t && grep " /scratch " /proc/mounts'], {
    mounts: [
      { destination: '/mnt/host', type: 'bind', source: shared, options: ['rw'] },
      { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'size=1m'] },
    ],
  });
  assert.equal(r.exitCode, 0, r.out);
  assert.match(r.out, /^from host/);
  assert.match(r.out, /tmpfs \/scratch tmpfs/);
  assert.equal(await fsp.readFile(path.join(shared, 'out.txt'), 'utf8'), 'back\n');
  // mount points the runtime had to create are removed again
  assert.ok(!existsSync(path.join(rootfs, 'mnt')));
  assert.ok(!existsSync(path.join(rootfs, 'scratch')));
  assert.ok(!existsSync(path.join(rootfs, 'proc')));
  assert.ok(!existsSync(path.join(rootfs, 'etc/hosts')));

  const ro = await run(['sh', '-c', 'cat /mnt/in.txt; touch /mnt/x'], {
    mounts: [{ destination: '/mnt', type: 'bind', source: shared, options: ['ro'] }],
  });
  assert.notEqual(ro.exitCode, 0);
  assert.match(ro.out, /Read-only file system/);

  const roRoot = await run(['sh', '-c', 'touch /x'], { readonlyRootfs: true });
  assert.notEqual(roRoot.exitCode, 0);
  assert.ok(!existsSync(path.join(rootfs, 'x')));

  const none = await run(['sh', '-c', 'ls /sys/class/net; cat /etc/hosts'], { network: 'none' });
  assert.equal(none.out.split('\n')[0], 'lo');
  assert.match(none.out, /127\.0\.0\.1\s+localhost/);
  const host = await run(['sh', '-c', 'ls /sys/class/net | wc -l; cat /etc/resolv.conf'], { network: 'host' });
  assert.equal(host.exitCode, 0);
  const hostIfaces = (await fsp.readdir('/sys/class/net')).length;
  assert.equal(Number(host.out.split('\n')[0]), hostIfaces);
});

test('abort kills the container promptly and leaves no state', { skip }, async () => {
  const ac = new AbortController();
  const started = Date.now();
  setTimeout(() => ac.abort(), 700);
  await assert.rejects(run(['sleep', '30'], { signal: ac.signal }), (e: unknown) => (e as Error).name === 'AbortError');
  assert.ok(Date.now() - started < 10_000, 'returned promptly');
  assert.deepEqual(runtimeList(), []);
  assert.deepEqual(await bundles(), []);
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(run(['true'], { signal: pre.signal }), (e: unknown) => (e as Error).name === 'AbortError');
});

const indexUrl = new URL('../../src/exec/index.js', import.meta.url).href;

function childRunner(): ReturnType<typeof spawn> {
  const code = `
    import { runContainer } from ${JSON.stringify(indexUrl)};
    const r = await runContainer({ rootfs: ${JSON.stringify(rootfs)}, args: ['sh', '-c', 'echo started; sleep 30'], env: [], cwd: '/', user: '', network: 'none', stateRoot: ${JSON.stringify(stateRoot)} });
    console.log('finished', r.exitCode);
  `;
  return spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function waitForOutput(child: ReturnType<typeof spawn>, text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${text}: ${out}`)), 20_000);
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes(text)) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

test('SIGINT to the kiln process kills and deletes its containers', { skip }, async () => {
  const child = childRunner();
  await waitForOutput(child, 'started');
  assert.equal(runtimeList().length, 1);
  const t0 = Date.now();
  child.kill('SIGINT');
  const [code, sig] = await new Promise<[number | null, string | null]>((r) => child.on('exit', (c, s) => r([c, s])));
  assert.equal(sig, 'SIGINT', `died by SIGINT (code ${code})`);
  assert.ok(Date.now() - t0 < 10_000);
  assert.deepEqual(runtimeList(), []);
  assert.deepEqual(await bundles(), []);
});

test('cleanupStaleContainers removes containers of a process killed with SIGKILL', { skip }, async () => {
  const child = childRunner();
  await waitForOutput(child, 'started');
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  assert.equal(runtimeList().length, 1, 'the container outlives its SIGKILLed owner');
  assert.equal((await bundles()).length, 1);
  await cleanupStaleContainers(stateRoot);
  assert.deepEqual(runtimeList(), []);
  assert.deepEqual(await bundles(), []);
});

test('concurrent runs are independent', { skip }, async () => {
  const results = await Promise.all([1, 2, 3].map((n) => run(['sh', '-c', `echo ${n}; exit ${n}`])));
  assert.deepEqual(
    results.map((r) => [r.exitCode, r.out.trim()]),
    [
      [1, '1'],
      [2, '2'],
      [3, '3'],
    ],
  );
});
