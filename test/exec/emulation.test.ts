/**
 * Foreign platforms under QEMU user emulation: RUN steps of a linux/arm64 build execute through
 * the binfmt_misc handler `kiln setup binfmt` registers (Debian's qemu-user-static, F flag), on
 * the arm64 busybox from Debian's busybox-static:arm64.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ContentStore } from '../../src/oci/store.js';
import type { ImageIndex } from '../../src/oci/types.js';
import { arm64Workspace, ensureEmulation, haveTool, isRoot, runKiln, type Workspace } from '../helpers.js';

const skip = !isRoot()
  ? 'needs root (containers, binfmt_misc)'
  : !haveTool('runc') || !haveTool('qemu-aarch64-static')
    ? 'needs runc and qemu-user-static'
    : process.arch !== 'x64'
      ? 'written for an amd64 machine emulating arm64'
      : false;

interface Inspected {
  config: { architecture: string; os: string; variant?: string };
}

describe('RUN under QEMU user emulation', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    await ensureEmulation('linux/arm64');
    ws = await arm64Workspace();
  });
  after(async () => {
    await ws?.cleanup();
  });

  it('the arm64 base is an index entry of busybox:latest, and its busybox is an aarch64 program', async () => {
    const store = await ContentStore.open(ws.root);
    const top = await store.resolve('busybox:latest');
    assert.equal(top?.mediaType, 'application/vnd.oci.image.index.v1+json');
    const index = await store.readJSON<ImageIndex>(top.digest);
    assert.deepEqual(index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`), ['linux/amd64', 'linux/arm64']);
    assert.equal(index.manifests[1]?.digest, (await store.resolve('busybox:arm64'))?.digest);
    const r = await runKiln(['inspect', 'busybox:arm64'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Inspected).config.architecture, 'arm64');
    const run = await runKiln(['run', 'busybox:arm64', 'uname', '-m'], { root: ws.root });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'aarch64');
  });

  it('--platform linux/arm64: RUN uname -m is aarch64, the image is arm64', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN uname -m > /arch && od -An -c -N5 /bin/busybox | tr -d " " > /elf\n' });
    const b = await runKiln(['build', '--platform', 'linux/arm64', '-t', 'emu-arm64:1', ctx], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    const cfg = (JSON.parse((await runKiln(['inspect', 'emu-arm64:1'], { root: ws.root })).stdout) as Inspected).config;
    assert.deepEqual([cfg.os, cfg.architecture], ['linux', 'arm64']);
    const out = await runKiln(['run', 'emu-arm64:1', 'cat', '/arch'], { root: ws.root });
    assert.equal(out.stdout, 'aarch64\n', out.stderr);
    // the same Dockerfile for this machine runs natively, on the host's busybox of the index
    const native = await runKiln(['build', '-t', 'emu-native:1', ctx], { root: ws.root });
    assert.equal(native.code, 0, native.stderr);
    assert.equal((await runKiln(['run', 'emu-native:1', 'cat', '/arch'], { root: ws.root })).stdout, 'x86_64\n');
  });

  it('the cross-compile pattern: a FROM --platform=$BUILDPLATFORM stage runs natively and is copied into the arm64 stage', async () => {
    const ctx = await ws.context({
      Dockerfile: [
        'FROM --platform=$BUILDPLATFORM busybox:latest AS build',
        'ARG TARGETPLATFORM TARGETARCH BUILDPLATFORM',
        'RUN echo "built on $(uname -m) ($BUILDPLATFORM) for $TARGETARCH ($TARGETPLATFORM)" > /out',
        'FROM busybox:latest',
        'ARG TARGETARCH',
        'COPY --from=build /out /out',
        'RUN echo "runs on $(uname -m) as $TARGETARCH" >> /out',
        '',
      ].join('\n'),
    });
    const b = await runKiln(['build', '--platform', 'linux/arm64', '-t', 'emu-cross:1', ctx], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    const out = await runKiln(['run', 'emu-cross:1', 'cat', '/out'], { root: ws.root });
    assert.equal(out.stdout, 'built on x86_64 (linux/amd64) for arm64 (linux/arm64)\nruns on aarch64 as arm64\n', out.stderr);
  });

  it('InvalidBaseImagePlatform: a single-platform base of another platform warns at its FROM (BuildKit\'s wording), unless the check configuration skips it', async () => {
    const warning = 'InvalidBaseImagePlatform: Base image busybox:amd64 was pulled with platform "linux/amd64", expected "linux/arm64" for current build';
    const build = async (dockerfile: string, extra: string[] = []) => {
      const ctx = await ws.context({ Dockerfile: dockerfile });
      const r = await runKiln(['build', '--progress', 'plain', '--platform', 'linux/arm64', ...extra, ctx], { root: ws.root });
      assert.equal(r.code, 0, r.stderr);
      return r.stderr.split('\n').filter((l) => l.includes('InvalidBaseImagePlatform'));
    };
    const warned = await build('FROM busybox:latest AS ok\n\nFROM busybox:amd64\nCOPY --from=ok /bin/busybox /arm64-busybox\n');
    assert.equal(warned.length, 1, warned.join('\n'));
    assert.match(warned[0] ?? '', /Dockerfile:3:\d+: /);
    assert.ok(warned[0]?.endsWith(warning), warned[0]);
    // the index's arm64 entry, and a base of the platform asked for, give no warning
    assert.deepEqual(await build('FROM busybox:latest\nFROM busybox:arm64\n'), []);
    assert.deepEqual(await build('# check=skip=InvalidBaseImagePlatform\nFROM busybox:amd64\n'), []);
    assert.deepEqual(await build('FROM busybox:latest\n# check=skip=InvalidBaseImagePlatform\nFROM busybox:amd64\n'), []);
    assert.deepEqual(await build('FROM busybox:amd64\n', ['--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=all']), []);
    assert.equal((await build('# check=skip=UndefinedVar\nFROM busybox:amd64\n')).length, 1);
  });
});
