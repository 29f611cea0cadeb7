/** Port of BuildKit's frontend/dockerfile/dockerfile_resources_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, readImageFile, useHarness } from './harness.js';

const h = useHarness();

port('testUlimit', async () => {
  // the frontend attribute ulimit is build --ulimit
  const img = await h.kiln({ dockerfile: 'FROM busybox AS base\nRUN ulimit -n > /ulimit\nFROM scratch\nCOPY --from=base /ulimit /\n', kilnArgs: ['--ulimit', 'nofile=1062:1062'] });
  assert.equal(readImageFile(img, '/ulimit').trim(), '1062');
});

port('testLinuxResources', async () => {
  // the frontend attribute memory is build --memory; cgroup v2 shows memory.max, a v1 or hybrid
  // hierarchy (this machine) memory/memory.limit_in_bytes
  const img = await h.kiln({
    dockerfile:
      'FROM busybox AS base\nRUN mkdir /out && (cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes) > /out/memory\nFROM scratch\nCOPY --from=base /out /\n',
    kilnArgs: ['--memory', '67108864'],
  });
  assert.equal(readImageFile(img, '/memory').trim(), '67108864');
});
