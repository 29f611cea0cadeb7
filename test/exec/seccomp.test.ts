/**
 * Docker's default seccomp profile and capability set for RUN, and RUN --security=insecure:
 * the profile as data (rendered per capability set and architecture), and in force for real
 * in runc (/proc/self/status, a system call the profile refuses).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';
import { defaultSeccompProfile } from '../../src/exec/seccomp.js';
import { allCapabilities, buildRuntimeSpec, DEFAULT_CAPABILITIES } from '../../src/exec/spec.js';

const skip = !isRoot() ? 'needs root to run containers' : false;

const allowed = (p: ReturnType<typeof defaultSeccompProfile>): Set<string> =>
  new Set(p.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));

describe('the default profile as data', () => {
  test('with docker\'s default capabilities: the common calls, no namespaces, mounts or keyrings', () => {
    const p = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'x64');
    assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(p.defaultErrnoRet, 1, 'EPERM');
    assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const ok = allowed(p);
    for (const name of ['read', 'write', 'openat', 'execve', 'clock_gettime', 'arch_prctl', 'chroot', 'ptrace', 'io_uring_setup']) assert.ok(ok.has(name), name);
    for (const name of ['mount', 'umount2', 'unshare', 'setns', 'keyctl', 'add_key', 'bpf', 'reboot', 'kexec_load', 'init_module', 'clock_settime', 'open_by_handle_at']) assert.ok(!ok.has(name), name);
    // clone only without namespace flags; clone3 answers ENOSYS so that libc falls back to clone
    const clone = p.syscalls.filter((r) => r.names.includes('clone'));
    assert.deepEqual(clone.map((r) => r.args), [[{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]]);
    assert.deepEqual(p.syscalls.filter((r) => r.names.includes('clone3')).map((r) => [r.action, r.errnoRet]), [['SCMP_ACT_ERRNO', 38]]);
    // socket: any family but AF_VSOCK; personality: the five values docker allows
    assert.deepEqual(p.syscalls.find((r) => r.names[0] === 'socket')?.args, [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }]);
    assert.deepEqual(p.syscalls.filter((r) => r.names[0] === 'personality').map((r) => r.args?.[0].value), [0, 8, 0x20000, 0x20008, 0xffffffff]);
  });

  test('capabilities widen it as docker\'s does, and the architecture picks its own calls', () => {
    const admin = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN', 'CAP_SYS_TIME'], 'x64');
    const ok = allowed(admin);
    for (const name of ['mount', 'unshare', 'setns', 'clone', 'clone3', 'clock_settime']) assert.ok(ok.has(name), name);
    assert.ok(!admin.syscalls.some((r) => r.action === 'SCMP_ACT_ERRNO'), 'no ENOSYS clone3 with CAP_SYS_ADMIN');
    const arm = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'arm64');
    assert.deepEqual(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    assert.ok(allowed(arm).has('set_tls') && !allowed(arm).has('arch_prctl'));
    const s390 = defaultSeccompProfile(DEFAULT_CAPABILITIES, 's390x');
    assert.deepEqual(s390.syscalls.filter((r) => r.names.includes('clone')).map((r) => r.args?.[0].index), [1], 's390 passes clone flags second');
  });

  test('the runtime spec: the filter and docker\'s capabilities by default; every capability and no filter when insecure', () => {
    const input = {
      rootfs: '/r',
      args: ['true'],
      env: [],
      cwd: '/',
      user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
      hostname: 'h',
      network: 'none' as const,
      readonlyRootfs: false,
      tty: false,
      etcFiles: { hosts: '/h', resolvConf: '/r' },
      mounts: [],
    };
    const sandbox = buildRuntimeSpec(input);
    assert.equal(sandbox.linux.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
    assert.deepEqual(sandbox.process.capabilities.bounding, DEFAULT_CAPABILITIES);
    assert.ok(sandbox.linux.maskedPaths.includes('/proc/kcore'));
    const insecure = buildRuntimeSpec({ ...input, security: 'insecure' });
    assert.equal(insecure.linux.seccomp, undefined);
    assert.deepEqual(insecure.process.capabilities.bounding, allCapabilities());
    assert.ok(insecure.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
    assert.deepEqual([insecure.linux.maskedPaths, insecure.linux.readonlyPaths], [[], []]);
    assert.ok(insecure.linux.devices?.some((d) => d.path === '/dev/fuse' && d.major === 10 && d.minor === 229));
  });
});

describe('in force in runc', { skip }, () => {
  let ws: Workspace | undefined;
  before(async () => {
    ws = await workspace();
  });
  after(async () => {
    await ws?.cleanup();
  });

  async function build(dockerfile: string, args: string[] = []): Promise<{ code: number; out: string }> {
    const ctx = await ws!.context({ Dockerfile: dockerfile });
    const r = await runKiln(['build', '--no-cache', '--progress', 'plain', '--network', 'none', ...args, ctx], { root: ws!.root, timeoutMs: 120_000 });
    return { code: r.code, out: r.stdout + r.stderr };
  }

  test('a RUN has the filter on, and a call it refuses fails with EPERM', async () => {
    const r = await build(
      'FROM busybox\nRUN grep -q "^Seccomp:[[:space:]]*2" /proc/self/status && echo filtered\nRUN ! unshare -U true 2>/tmp/err && grep -q "Operation not permitted" /tmp/err && echo refused\n',
    );
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /filtered/);
    assert.match(r.out, /refused/);
  });

  test('RUN --security=insecure: every capability, no filter, the devices BuildKit adds; only with --allow security.insecure', async () => {
    const df =
      'FROM busybox\n' +
      'RUN [ ! -e /dev/fuse ] && [ ! -e /dev/loop-control ] && echo no-devices\n' +
      'RUN --security=insecure grep -q "^Seccomp:[[:space:]]*0" /proc/self/status && unshare -U -r true && [ -c /dev/fuse ] && [ -c /dev/loop-control ] && echo unfiltered\n';
    const denied = await build(df);
    assert.notEqual(denied.code, 0);
    assert.match(denied.out, /Dockerfile:3:5: RUN --security=insecure: entitlement security\.insecure is not allowed/);
    assert.match(denied.out, /--allow security\.insecure/);
    const allowedRun = await build(df, ['--allow', 'security.insecure']);
    assert.equal(allowedRun.code, 0, allowedRun.out);
    assert.match(allowedRun.out, /no-devices/);
    assert.match(allowedRun.out, /unfiltered/);
  });

  test('an unknown --security mode is a clear error at its line', async () => {
    const r = await build('FROM busybox\nRUN --security=privileged true\n');
    assert.notEqual(r.code, 0);
    assert.match(r.out, /Dockerfile:2:5: unsupported security mode "privileged"/);
  });
});
