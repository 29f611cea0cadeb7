/**
 * The deterministic parts of the bench's cacheimport scenario (scripts/bench-cache.ts): the
 * cache-mount variant of the deps Dockerfile, the step counts read from kiln's json events and
 * BuildKit's plain output, and the byte accounting of what a fresh runner downloaded. No timing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseDockerfile } from '../../src/dockerfile/index.js';
import { buildkitStepCount, downloaded, formatBytes, generatedOf, kilnStepCount, mountsDockerfile, unexpected } from '../../scripts/bench-cache.js';
import { depsScenario, parseArgs } from '../../scripts/bench.js';
import type { ProxiedRequest } from '../registry/proxy.js';
import { tempDir } from '../helpers.js';

describe('bench cacheimport', () => {
  it('the cache-mount variant is the deps Dockerfile with its install step on a cache mount', async () => {
    const t = await tempDir('kiln-bench-cache-');
    try {
      await depsScenario.generate(t.dir, true);
      const deps = parseDockerfile(await fs.readFile(path.join(t.dir, 'Dockerfile'), 'utf8'), 'Dockerfile').instructions;
      const mounts = parseDockerfile(mountsDockerfile(), 'Dockerfile.mounts').instructions;
      assert.deepEqual(mounts.map((i) => i.keyword), deps.map((i) => i.keyword));
      const changed = mounts.filter((i, n) => i.original !== deps[n].original);
      assert.equal(changed.length, 1);
      assert.equal(changed[0].keyword, 'run');
      assert.deepEqual(changed[0].flags, ['--mount=type=cache,target=/cache']);
      assert.match(changed[0].args[0], /\/cache\/\$name\.so/);
    } finally {
      await t.cleanup();
    }
  });

  it('counts the steps kiln ran and found cached, FROM and non-step events aside', () => {
    const lines = [
      '{"type":"cached","id":1,"name":"[1/5] FROM busybox:latest"}',
      '{"type":"cached","id":2,"name":"[2/5] COPY deps.txt /deps.txt"}',
      'warning: something',
      '{"type":"start","id":3,"name":"[build 3/5] RUN make","time":1}',
      '{"type":"done","id":3,"name":"[build 3/5] RUN make","ms":12}',
      '{"type":"cached","id":4,"name":"[4/5] COPY src/ /app/src"}',
      '{"type":"done","id":5,"name":"exporting","ms":1}',
    ].join('\n');
    assert.deepEqual(kilnStepCount(lines), { ran: 1, cached: 2 });
    assert.deepEqual(kilnStepCount(''), { ran: 0, cached: 0 });
  });

  it("counts BuildKit's CACHED and DONE steps from docker 20.10's plain output", () => {
    const plain = [
      '#1 [internal] load build definition from Dockerfile',
      '#1 sha256:0a2e4f570875d11c8666fee5c5da5114833a2bd363b412c54823ba5c16fed86d',
      '#1 DONE 0.0s',
      '',
      '#5 importing cache manifest from 127.0.0.1:5000/bench/deps:import',
      '#5 DONE 0.1s',
      '',
      '#4 [1/5] FROM docker.io/library/busybox:latest',
      '#4 DONE 0.0s',
      '',
      '#7 [2/5] COPY deps.txt /deps.txt',
      '#7 CACHED',
      '',
      '#8 [3/5] RUN mkdir -p /deps',
      '#8 sha256:945de66cb27da89be5c321aad93f27fb4b387bbfb35ba6eec4465492919d6c80',
      '#8 DONE 0.5s',
      '',
      '#9 [4/5] COPY src/ /app/src',
      '#9 CACHED',
      '',
      '#10 exporting to image',
      '#10 DONE 0.0s',
    ].join('\n');
    assert.deepEqual(buildkitStepCount(plain), { ran: 1, cached: 2 });
  });

  it('adds up the response bytes, blobs and cache-mount layers apart', () => {
    const layer = `sha256:${'a'.repeat(64)}`;
    const mount = `sha256:${'b'.repeat(64)}`;
    const reqs: ProxiedRequest[] = [
      { method: 'GET', path: '/v2/', authorization: false, status: 200, bytes: 2 },
      { method: 'GET', path: '/v2/bench/cache/manifests/import', authorization: false, status: 200, bytes: 900 },
      { method: 'HEAD', path: `/v2/bench/cache/blobs/${mount}`, authorization: false, status: 200, bytes: 0 },
      { method: 'GET', path: `/v2/bench/cache/blobs/${layer}`, authorization: false, status: 200, bytes: 4096 },
      { method: 'GET', path: `/v2/bench/cache/blobs/${mount}?x=1`, authorization: false, status: 200, bytes: 1000 },
    ];
    assert.deepEqual(downloaded(reqs, new Map([[mount, 1000]])), { bytes: 5998, blobBytes: 5096, blobs: 2, mountBytes: 1000, requests: 5 });
    assert.equal(downloaded([], new Map()).bytes, 0);
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(2048), '2.0 KiB');
    assert.equal(formatBytes(3 * 1024 * 1024), '3.00 MiB');
  });

  it("reads the install step's count and judges each figure's kiln run", () => {
    assert.equal(generatedOf('{"type":"log","id":3,"data":"generated 1 of 41\\n"}'), '1 of 41');
    assert.equal(generatedOf('#8 0.512 generated 41 of 41'), '41 of 41');
    // the step's own text (as a step name) is not its output
    assert.equal(generatedOf(`{"type":"cached","name":${JSON.stringify(mountsDockerfile())}}`), undefined);
    const none = { bytes: 10, blobBytes: 0, blobs: 0, mountBytes: 0, requests: 1 };
    assert.equal(unexpected({ figure: 'import' }, { ran: 0, cached: 4 }, undefined, none), undefined);
    assert.match(unexpected({ figure: 'import' }, { ran: 2, cached: 2 }, undefined, none) ?? '', /executed 2 step/);
    assert.match(unexpected({ figure: 'import-mounts' }, { ran: 0, cached: 4 }, undefined, { ...none, mountBytes: 5 }) ?? '', /cache-mount layers/);
    assert.equal(unexpected({ figure: 'mounts-seeded' }, { ran: 4, cached: 0 }, '1 of 41'), undefined);
    assert.match(unexpected({ figure: 'mounts-seeded' }, { ran: 4, cached: 0 }, '41 of 41') ?? '', /not seeded/);
    assert.match(unexpected({ figure: 'mounts-seeded' }, { ran: 0, cached: 4 }, undefined) ?? '', /did not run/);
  });

  it('is a scenario --only names', () => {
    assert.deepEqual(parseArgs(['--only', 'cacheimport']).only, ['cacheimport']);
  });
});
