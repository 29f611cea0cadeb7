/**
 * `kiln setup binfmt`: Debian's qemu-user-static handlers registered with the kernel's real
 * binfmt_misc, with the F flag. The register/uninstall cases use linux/riscv64, a handler no other
 * suite relies on (qemu-aarch64 is shared with the arm64 builds and is never removed here).
 */
import { after, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { debianHandlers, registrationLine, setupBinfmt } from '../../src/setup.js';
import { BINFMT_DIR, executionProblem, readBinfmtHandler } from '../../src/oci/platform.js';
import { KilnError } from '../../src/errors.js';
import { haveTool, isRoot, kilnBin, runCommand, runKiln, tempDir, workspace } from '../helpers.js';

const RISCV = `${BINFMT_DIR}/qemu-riscv64`;
const haveQemu = existsSync('/usr/lib/binfmt.d/qemu-riscv64.conf') && haveTool('qemu-riscv64-static');
const skip = !isRoot() ? 'needs root (binfmt_misc)' : !haveQemu ? "needs Debian's qemu-user-static" : process.arch !== 'x64' ? 'written for an amd64 machine' : false;

/** Removes the riscv64 handler (only ours: nothing else registers it). */
function removeRiscv(): void {
  if (existsSync(RISCV)) writeFileSync(RISCV, '-1');
}

describe("Debian's handler descriptions", { skip: haveQemu ? false : "needs Debian's qemu-user-static" }, () => {
  it('each platform maps to its QEMU handler: arm/v7 to qemu-arm, 386 natively on amd64', async () => {
    const dir = await tempDir('kiln-binfmt-');
    try {
      writeFileSync(`${dir.dir}/register`, '');
      const amd64 = { os: 'linux', architecture: 'amd64' };
      assert.match(executionProblem({ os: 'linux', architecture: 'arm', variant: 'v7' }, amd64, dir.dir) ?? '', /no binfmt_misc handler for arm is registered \(.*\/qemu-arm\)/);
      assert.match(executionProblem({ os: 'linux', architecture: 'ppc64le' }, amd64, dir.dir) ?? '', /\/qemu-ppc64le\)/);
      assert.equal(executionProblem({ os: 'linux', architecture: '386' }, amd64, dir.dir), undefined);
      const changes = setupBinfmt({ dir: dir.dir, platforms: [{ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: '386' }], host: amd64 });
      assert.deepEqual(changes.map((c) => `${c.name} ${c.action}`), ['qemu-arm registered', 'qemu-i386 native']);
      assert.match(readFileSync(`${dir.dir}/register`, 'utf8'), /^:qemu-arm:M::\\x7f\\x45\\x4c\\x46\\x01.*:\/usr\/libexec\/qemu-binfmt\/arm-binfmt-P:[POC]*F$/);
    } finally {
      await dir.cleanup();
    }
  });

  it('binfmt.d and binfmt-support describe the same handler; registration always asks for F', () => {
    const fromConf = debianHandlers({ binfmts: '/nonexistent' }).get('qemu-aarch64');
    const fromBinfmts = debianHandlers({ binfmtD: '/nonexistent' }).get('qemu-aarch64');
    assert.ok(fromConf && fromBinfmts);
    assert.equal(fromConf.source, '/usr/lib/binfmt.d/qemu-aarch64.conf');
    assert.equal(fromBinfmts.source, '/usr/share/binfmts/qemu-aarch64');
    for (const k of ['magic', 'mask', 'interpreter', 'offset', 'qemuArch'] as const) assert.equal(fromConf[k], fromBinfmts[k], k);
    assert.match(fromConf.magic, /^\\x7f\\x45\\x4c\\x46/);
    assert.equal(fromConf.qemuArch, 'aarch64');
    assert.match(registrationLine(fromConf), /^:qemu-aarch64:M::\\x7f.*:\/usr\/libexec\/qemu-binfmt\/aarch64-binfmt-P:[POC]*F$/);
    assert.match(registrationLine({ ...fromConf, flags: 'P' }), /:PF$/);
  });
});

describe('kiln setup binfmt', { skip }, () => {
  beforeEach(removeRiscv);
  after(removeRiscv);

  it('registers a handler with F, says so, is idempotent, and --uninstall removes it', async () => {
    removeRiscv();
    assert.match(executionProblem({ os: 'linux', architecture: 'riscv64' }) ?? '', /no binfmt_misc handler for riscv64 is registered/);
    const r = await runKiln(['setup', 'binfmt', '--platform', 'linux/riscv64'], { root: '/nonexistent-kiln-root' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'registered qemu-riscv64 for linux/riscv64 (interpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P, flags POF)\n');
    const h = readBinfmtHandler(BINFMT_DIR, 'qemu-riscv64');
    assert.ok(h?.enabled && h.flags.includes('F'));
    assert.match(readFileSync(RISCV, 'utf8'), /magic 7f454c460201010000000000000000000200f300/);
    assert.equal(executionProblem({ os: 'linux', architecture: 'riscv64' }), undefined);
    const again = await runKiln(['setup', 'binfmt', '--platform', 'riscv64'], { root: '/nonexistent-kiln-root' });
    assert.equal(again.stdout, 'qemu-riscv64 for linux/riscv64 already registered (interpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P, flags POF)\n');
    const un = await runKiln(['setup', 'binfmt', '--uninstall', '--platform', 'linux/riscv64'], { root: '/nonexistent-kiln-root' });
    assert.equal(un.code, 0, un.stderr);
    assert.equal(un.stdout, 'removed qemu-riscv64 for linux/riscv64\n');
    assert.equal(existsSync(RISCV), false);
    const un2 = await runKiln(['setup', 'binfmt', '--uninstall', '--platform', 'linux/riscv64'], { root: '/nonexistent-kiln-root' });
    assert.equal(un2.stdout, 'qemu-riscv64 for linux/riscv64 was not registered\n');
  });

  it('a handler registered without F (fails inside containers) is registered again with F; a disabled one is enabled', async () => {
    removeRiscv();
    const h = debianHandlers().get('qemu-riscv64')!;
    writeFileSync(`${BINFMT_DIR}/register`, `:qemu-riscv64:M::${h.magic}:${h.mask}:${h.interpreter}:P`);
    assert.match(executionProblem({ os: 'linux', architecture: 'riscv64' }) ?? '', /registered without the F \(fix-binary\) flag, so the kernel looks for its interpreter \/usr\/libexec\/qemu-binfmt\/riscv64-binfmt-P inside the container/);
    // a build's RUN for that platform stops there, saying so and what to run
    const ws = await workspace();
    try {
      const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN true\n' });
      const b = await runKiln(['build', '--platform', 'linux/riscv64', ctx], { root: ws.root });
      assert.equal(b.code, 1, b.stderr);
      assert.match(b.stderr, /^error: \S*Dockerfile:2:1: RUN for linux\/riscv64 cannot execute: the binfmt_misc handler \/proc\/sys\/fs\/binfmt_misc\/qemu-riscv64 is registered without the F \(fix-binary\) flag/m);
      assert.match(b.stderr, /hint: register QEMU user emulation as root: kiln setup binfmt --platform linux\/riscv64/);
    } finally {
      await ws.cleanup();
    }
    const r = await runKiln(['setup', 'binfmt', '--platform', 'linux/riscv64'], { root: '/nonexistent-kiln-root' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^registered qemu-riscv64 for linux\/riscv64 again, with the F flag \(.*flags POF\)\n$/);
    writeFileSync(RISCV, '0');
    assert.match(executionProblem({ os: 'linux', architecture: 'riscv64' }) ?? '', /qemu-riscv64 is disabled/);
    const e = await runKiln(['setup', 'binfmt', '--platform', 'linux/riscv64'], { root: '/nonexistent-kiln-root' });
    assert.match(e.stdout, /^enabled qemu-riscv64 for linux\/riscv64/);
    assert.equal(executionProblem({ os: 'linux', architecture: 'riscv64' }), undefined);
    removeRiscv();
  });

  it('mounts binfmt_misc when it is not mounted (in a mount namespace of its own)', async () => {
    // the kernel's handlers are shared; only this namespace loses (then regains) the mount
    const script = `umount ${BINFMT_DIR} && test ! -e ${BINFMT_DIR}/register && "${process.execPath}" "${kilnBin}" setup binfmt --platform linux/arm64 && test -e ${BINFMT_DIR}/register`;
    const r = await runCommand('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /qemu-aarch64 for linux\/arm64 (already registered|registered)/);
  });

  it('the host platform needs no handler; bad platforms and missing descriptions are clear errors', async () => {
    const native = await runKiln(['setup', 'binfmt', '--platform', 'linux/amd64,linux/386'], { root: '/nonexistent-kiln-root' });
    assert.equal(native.stdout, 'linux/amd64 runs natively on this machine: no handler needed\nlinux/386 runs natively on this machine: no handler needed\n');
    const bad = await runKiln(['setup', 'binfmt', '--platform', 'linux/amd65'], { root: '/nonexistent-kiln-root' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: invalid platform "linux\/amd65": unknown architecture "amd65" \(did you mean amd64\?\)/);
    const win = await runKiln(['setup', 'binfmt', '--platform', 'windows/arm64'], { root: '/nonexistent-kiln-root' });
    assert.match(win.stderr, /^error: kiln setup binfmt: windows\/arm64 is not a Linux platform/);
    assert.throws(
      () => setupBinfmt({ platforms: [{ os: 'linux', architecture: 'riscv64' }], sources: { binfmtD: '/nonexistent', binfmts: '/nonexistent' } }),
      (e: unknown) => e instanceof KilnError && e.code === 'not-found' && /no QEMU handler description for linux\/riscv64/.test(e.message) && /apt-get install qemu-user-static/.test(e.hint ?? ''),
    );
    assert.equal(existsSync(RISCV), false);
  });

  it('without --platform: every foreign architecture qemu-user-static emulates (into a scratch binfmt dir)', async () => {
    const dir = await tempDir('kiln-binfmt-');
    try {
      writeFileSync(`${dir.dir}/register`, '');
      const changes = setupBinfmt({ dir: dir.dir });
      const names = changes.map((c) => `${c.name}=${c.platform.os}/${c.platform.architecture}${c.platform.variant ? `/${c.platform.variant}` : ''}`);
      for (const want of ['qemu-aarch64=linux/arm64', 'qemu-arm=linux/arm/v7', 'qemu-riscv64=linux/riscv64', 'qemu-s390x=linux/s390x', 'qemu-ppc64le=linux/ppc64le']) assert.ok(names.includes(want), `${want} in ${names.join(' ')}`);
      // handlers of architectures kiln has no platform for (qemu-alpha, qemu-xtensa) are left out
      assert.ok(!names.some((n) => n.startsWith('qemu-alpha=')));
      assert.ok(changes.every((c) => c.action === 'registered'));
      // what the kernel was given last is a registration line with F
      assert.match(readFileSync(`${dir.dir}/register`, 'utf8'), /^:qemu-[a-z0-9]+:M::\\x7f\\x45\\x4c\\x46.*:\/usr\/libexec\/qemu-binfmt\/[a-z0-9]+-binfmt-P:[POC]*F$/);
    } finally {
      await dir.cleanup();
    }
  });

  it('needs root: a clear error for anyone else', async () => {
    const home = await tempDir('kiln-setup-');
    try {
      const r = await runCommand('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, kilnBin, 'setup', 'binfmt', '--platform', 'linux/riscv64'], {
        env: { HOME: home.dir, PATH: process.env.PATH ?? '' },
      });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /^error: kiln setup binfmt needs root: it mounts binfmt_misc and registers handlers with the kernel\nhint: run it as root: sudo kiln setup binfmt --platform linux\/riscv64/);
      assert.equal(existsSync(RISCV), false);
    } finally {
      await home.cleanup();
    }
  });
});
