/**
 * COPY --parents, ported from BuildKit's dockerfile_parents_test.go (docker 20.10's
 * BuildKit has no --parents, so these assert what the Go tests assert): the `/./` pivot,
 * wildcards before and after it, `**`, and sources that match nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';

const skip = isRoot() ? false : 'overlayfs needs root';

const BASE = `FROM busybox:latest AS base
WORKDIR /test
RUN <<eot
	set -ex
	mkdir -p a/b/c/d/e
	mkdir -p a/b2/c/d/e
	mkdir -p a/b/c2/d/e
	mkdir -p a/b/c2/d/e2
	touch a/b/c/d/foo
	touch a/b/c/d/e/bay
	touch a/b2/c/d/e/bar
	touch a/b/c2/d/e/baz
	touch a/b/c2/d/e2/baz
eot
`;

const RELATIVE = `${BASE}
FROM busybox:latest AS middle
COPY --from=base --parents /test/a/b/./c/d /out/
RUN <<eot
	set -ex
	[ -d /out/c/d/e ]
	[ -f /out/c/d/foo ]
	[ ! -d /out/a ]
	[ ! -d /out/e ]
eot

FROM busybox:latest AS end
COPY --from=base --parents /test/a/b/c/d/. /out/
RUN <<eot
	set -ex
	[ -d /out/test/a/b/c/d/e ]
	[ -f /out/test/a/b/c/d/foo ]
eot

FROM busybox:latest AS start
COPY --from=base --parents ./test/a/b/c/d /out/
RUN <<eot
	set -ex
	[ -d /out/test/a/b/c/d/e ]
	[ -f /out/test/a/b/c/d/foo ]
eot

FROM busybox:latest AS double
COPY --from=base --parents /test/a/./b/./c /out/
RUN <<eot
	set -ex
	[ -d /out/b/c/d/e ]
	[ -f /out/b/c/d/foo ]
eot

FROM busybox:latest AS wildcard
COPY --from=base --parents /test/a/./*/c /out/
RUN <<eot
	set -ex
	[ -d /out/b/c/d/e ]
	[ -f /out/b2/c/d/e/bar ]
eot

FROM busybox:latest AS doublewildcard
COPY --from=base --parents /test/a/b*/./c/**/e /out/
RUN <<eot
	set -ex
	[ -d /out/c/d/e ]
	[ -f /out/c/d/e/bay ]
	[ -f /out/c/d/e/bar ]
eot

FROM busybox:latest AS doubleinputs
COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /out/
RUN <<eot
	set -ex
	[ -f /out/d/e/baz ]
	[ ! -f /out/d/e/bay ]
	[ -f /out/d/e2/baz ]
	[ -f /out/c/d/e/bar ]
eot

FROM busybox:latest AS normal
COPY --from=base --parents /test/a/b/c/d /out/
RUN <<eot
	set -ex
	[ -d /out/test/a/b/c/d/e ]
	[ -f /out/test/a/b/c/d/e/bay ]
	[ ! -d /out/e ]
	[ ! -d /out/a ]
eot

FROM busybox:latest AS nonexistentfile
COPY --from=base --parents /test/nonexistent-file /out/

FROM busybox:latest AS wildcard-nonexistent
COPY --from=base --parents /test/a/b3*/c /out/
RUN <<eot
	set -ex
	[ -d /out ]
	[ ! -d /out/a ]
eot

FROM busybox:latest AS wildcard-afterpivot
COPY --from=base --parents /test/a/b/./c3* /out/
RUN <<eot
	set -ex
	[ -d /out ]
	[ ! -d /out/a ]
	[ ! -d /out/c* ]
eot
`;

describe('COPY --parents (BuildKit dockerfile_parents_test.go)', { skip }, () => {
  let ws: Workspace;
  before(async () => {
    ws = await workspace();
  });
  after(() => ws.cleanup());

  it('keeps context paths under dest (testCopyParents)', async () => {
    const dir = await ws.context({
      Dockerfile: 'FROM busybox:latest\nCOPY --parents foo1/foo2/bar /\nWORKDIR /test\nCOPY --parents foo1/foo2/ba* .\n',
      'foo1/foo2/bar': 'testing',
      'foo1/foo2/baz': 'testing2',
    });
    const b = await runKiln(['build', '-q', '-t', 'parents:1', dir], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    const r = await runKiln(['run', 'parents:1', 'cat', '/foo1/foo2/bar', '/test/foo1/foo2/bar', '/test/foo1/foo2/baz'], { root: ws.root });
    assert.equal(r.stdout, 'testingtestingtesting2');
  });

  it('keeps only what follows the /./ pivot, with wildcards before and after it (testCopyRelativeParents, testCopyParentsMissingDirectory)', async () => {
    const dir = await ws.context({ Dockerfile: RELATIVE });
    for (const target of ['middle', 'end', 'start', 'double', 'wildcard', 'doublewildcard', 'doubleinputs', 'normal', 'wildcard-nonexistent', 'wildcard-afterpivot']) {
      const r = await runKiln(['build', '-q', '--target', target, dir], { root: ws.root });
      assert.equal(r.code, 0, `target ${target}: ${r.stderr}`);
    }
    const missing = await runKiln(['build', '-q', '--target', 'nonexistentfile', dir], { root: ws.root });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /nonexistent-file" not found/);
  });
});
