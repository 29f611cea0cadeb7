/**
 * RUN --mount options beyond BuildKit's own integration tests, compared with what docker
 * 20.10's BuildKit builds from the same Dockerfile (test/buildkit/harness.ts differential):
 * cache mounts seeded from a stage (from + source), read-only cache mounts, uid/gid/mode
 * naming a cache of their own, bind mounts from a stage or an image with source, and rw bind
 * mounts whose writes are discarded. Cache ids carry a suffix of this run, so docker's cache
 * mounts from an earlier run do not count.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { isRoot } from '../helpers.js';
import { readImageFile, useHarness } from '../buildkit/harness.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';
const h = useHarness();
const run = randomBytes(4).toString('hex');
// docker 20.10 leaves a RUN's mount targets in the layer (see test/buildkit/README.md)
const targets = (...paths: string[]) => ({ ignore: paths });

const SEED = `FROM busybox AS seed
RUN mkdir -p /data/sub && echo seeded > /data/sub/f && chown -R 1000:1000 /data/sub && echo outside > /outside
FROM busybox
`;

test('a cache mount seeded from a stage: from + source, then read-only', { skip }, async () => {
  const img = await h.differential({
    dockerfile: `${SEED}RUN --mount=type=cache,id=seeded-${run},from=seed,source=/data,target=/c cat /c/sub/f > /out1 && stat -c '%u' /c/sub >> /out1 && ls /c >> /out1 && echo more > /c/added
RUN --mount=type=cache,id=seeded-${run},from=seed,source=/data,target=/c,ro cat /c/added > /out2 && if touch /c/x 2>/dev/null; then echo writable >> /out2; fi
RUN --mount=type=cache,id=seeded-${run},target=/c ls /c > /out3
`,
  }, targets('/c'));
  assert.equal(readImageFile(img, 'out1'), 'seeded\n1000\nsub\n');
  assert.equal(readImageFile(img, 'out2'), 'more\n');
  // the same id without from is another cache (BuildKit keys a seeded cache by its seed)
  assert.equal(readImageFile(img, 'out3'), '');
});

test('uid/gid/mode without source make a cache of their own', { skip }, async () => {
  const img = await h.differential({
    dockerfile: `FROM busybox
RUN --mount=type=cache,id=perm-${run},target=/c touch /c/plain
RUN --mount=type=cache,id=perm-${run},target=/c,uid=1000,mode=0700 ls /c > /out && stat -c '%u %a' /c >> /out && touch /c/owned
RUN --mount=type=cache,id=perm-${run},target=/c,uid=1000,mode=0700 ls /c >> /out
RUN --mount=type=cache,id=perm-${run},target=/c ls /c >> /out
`,
  }, targets('/c'));
  assert.equal(readImageFile(img, 'out'), '1000 700\nowned\nplain\n');
});

test('a cache source is a directory inside the cache; a missing one fails', { skip }, async () => {
  const img = await h.differential({
    dockerfile: `FROM busybox
RUN --mount=type=cache,id=sub-${run},target=/c mkdir -p /c/a/b && echo in-b > /c/a/b/f
RUN --mount=type=cache,id=sub-${run},source=a/b,target=/sub cat /sub/f > /out
`,
  }, targets('/c', '/sub'));
  assert.equal(readImageFile(img, 'out'), 'in-b\n');
  const r = await h.kilnFails({ dockerfile: `FROM busybox\nRUN --mount=type=cache,id=missing-${run},source=nothere,target=/sub true\n` });
  assert.match(r.stderr, /cache mount missing-\w+: source nothere is not a directory in the cache/);
});

test('bind mounts from a stage and from an image, with source; rw writes are discarded', { skip }, async () => {
  const img = await h.differential({
    dockerfile: `${SEED}RUN --mount=type=bind,from=seed,source=/data,target=/d,rw echo new > /d/new && rm /d/sub/f && ls -R /d > /out1
RUN --mount=type=bind,from=seed,source=/data,target=/d ls -R /d > /out2 && cat /d/sub/f >> /out2 && if touch /d/x 2>/dev/null; then echo writable >> /out2; fi
RUN --mount=type=bind,from=busybox,source=/etc,target=/e grep -c root /e/passwd > /out3
`,
  }, targets('/d', '/e'));
  assert.equal(readImageFile(img, 'out1'), '/d:\nnew\nsub\n\n/d/sub:\n');
  assert.equal(readImageFile(img, 'out2'), '/d:\nsub\n\n/d/sub:\nf\nseeded\n');
  assert.equal(readImageFile(img, 'out3'), '1\n');
});

test('a cache source never leaves the cache: links and .. are resolved within it', { skip }, async () => {
  const id = `links-${run}`;
  const img = await h.kiln({
    dockerfile: `FROM busybox
RUN --mount=type=cache,id=${id},target=/c mkdir -p /c/a/b && echo inside > /c/a/b/f && ln -s /a/b /c/abs && ln -s ../.. /c/a/up && ln -s / /c/root
RUN --mount=type=cache,id=${id},source=abs,target=/s1 --mount=type=cache,id=${id},source=a/up/a/b,target=/s2 cat /s1/f /s2/f > /out
`,
  });
  assert.equal(readImageFile(img, 'out'), 'inside\ninside\n');
  for (const source of ['root/etc', '../../../../../etc', 'a/up/up/up/etc']) {
    const r = await h.kilnFails({ dockerfile: `FROM busybox\nRUN --mount=type=cache,id=${id},source=${source},target=/s cat /s/hostname > /leak\n` });
    assert.match(r.stderr, /is not a directory in the cache/, source);
  }
});

test('a tmpfs mount with size= holds that much and no more', { skip }, async () => {
  // size= needs a newer Dockerfile frontend than docker 20.10's: kiln only
  const img = await h.kiln({
    dockerfile: `FROM busybox
RUN --mount=type=tmpfs,target=/t,size=1m dd if=/dev/zero of=/t/f bs=64k count=8 2>/dev/null && rm /t/f && echo small > /out && if dd if=/dev/zero of=/t/f bs=64k count=32 2>/dev/null; then echo fits >> /out; else echo full >> /out; fi
`,
  });
  assert.equal(readImageFile(img, 'out'), 'small\nfull\n');
});
