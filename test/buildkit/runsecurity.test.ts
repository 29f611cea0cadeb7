/** Port of BuildKit's frontend/dockerfile/dockerfile_runsecurity_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { port, useHarness } from './harness.js';

const h = useHarness();

// docker's default capability set, as the bounding set of a RUN
const defaultCaps = '"CapBnd:\t00000000a80425fb"';
const INSECURE = ['--allow', 'security.insecure'];

/** The capabilities of this process (kiln's), as the Go test's 0x3fffffffff sees them: insecure mode grants what kiln holds. */
function heldCaps(): string {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return (BigInt(`0x${m?.[1] ?? '0'}`) & 0x3fffffffffn).toString(16);
}

port('testRunSecurityInsecure', async () => {
  // RUN --security is a labs flag in docker 20.10's frontend: assertion only. The Go test
  // expects 3fffffffff, every capability up to CAP_AUDIT_READ: BuildKit grants the ones it
  // holds itself, and so does kiln; where the machine withholds one (here CAP_SYS_RESOURCE)
  // the expectation is what this process holds.
  const dockerfile =
    'FROM busybox\n' +
    `RUN --security=insecure [ "$(printf '%x' $(( $(cat /proc/self/status | grep CapBnd | cut -f 2 | sed s#^#0x#) & 0x3fffffffff)))" == "${heldCaps()}" ]\n` +
    `RUN [ "$(cat /proc/self/status | grep CapBnd)" == ${defaultCaps} ]\n`;
  await h.kiln({ dockerfile, kilnArgs: INSECURE });
  const denied = await h.kilnFails({ dockerfile });
  assert.match(denied.stderr, /entitlement security\.insecure is not allowed/);
});

port('testRunSecuritySandbox', async () => {
  await h.kiln({ dockerfile: `FROM busybox\nRUN --security=sandbox [ "$(cat /proc/self/status | grep CapBnd)" == ${defaultCaps} ]\n` });
});

port('testRunSecurityDefault', async () => {
  await h.differential({ dockerfile: `FROM busybox\nRUN [ "$(cat /proc/self/status | grep CapBnd)" == ${defaultCaps} ]\n` });
});

port('testInsecureDevicesWhitelist', async () => {
  // alpine's apk and the hellofs FUSE image cannot be had here: busybox's losetup, mke2fs
  // (which wants a block device) and mount stand in for e2fsprogs and mount -o loop in the
  // loop device part, detaching the device whatever happens; the FUSE mount is left out
  const dockerfile =
    'FROM busybox\n' +
    'RUN [ ! -e /dev/fuse ] && [ ! -e /dev/loop-control ]\n' +
    'RUN --security=insecure [ -c /dev/fuse ] && [ -c /dev/loop-control ]\n' +
    'RUN --security=insecure dmesg > /dev/null\n' +
    'RUN --security=insecure ls -l /dev && dd if=/dev/zero of=disk.img bs=20M count=1 && \\\n' +
    '\tL=$(losetup -f) && losetup $L disk.img && \\\n' +
    '\t{ mke2fs -q $L && mkdir -p /mnt && mount $L /mnt && touch /mnt/foo && umount /mnt; r=$?; losetup -d $L; [ $r = 0 ]; } && \\\n' +
    '\trm disk.img\n';
  await h.kiln({ dockerfile, kilnArgs: INSECURE });
  const denied = await h.kilnFails({ dockerfile });
  assert.match(denied.stderr, /entitlement security\.insecure is not allowed/);
});
