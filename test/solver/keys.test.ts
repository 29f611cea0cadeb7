/**
 * Cache keys with a fake reader (no context directory, mount or network): stable for the
 * same inputs, and changed by exactly what the step's result depends on.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { contextSource, gitSource, httpSource, type Vertex } from '../../src/graph/types.js';
import { KilnError } from '../../src/errors.js';
import { CacheKeys, chainId, describeDefinition, isLinkedCopy } from '../../src/solver/keys.js';
import type { SolvedState } from '../../src/solver/types.js';
import { copy, FakeReader, layer, run, scratch } from './fake-graph.js';

function state(v: Vertex, diffIds: string[]): SolvedState {
  return { vertex: v, key: `key-of-${v.digest}`, layers: diffIds.map(layer), addedLayer: true, cached: false };
}

describe('cache keys (fake reader)', () => {
  const base = run(scratch(), 'make');
  const parent = state(base, ['sha256:aa']);

  it('are stable: the same step over the same inputs and files has the same key', async () => {
    const reader = new FakeReader();
    reader.files = { 'a.txt': 'A' };
    const v = copy(base, ['a.txt']);
    const one = await new CacheKeys(reader).key(v, [parent], false);
    const two = await new CacheKeys(reader).key(copy(base, ['a.txt']), [state(base, ['sha256:aa'])], false);
    assert.equal(one.key, two.key);
    assert.equal(one.filesDigest, 'ctx:a.txt=A');
    assert.match(one.key, /^sha256:[0-9a-f]{64}$/);
  });

  it('change with the files a COPY reads, which are read without owners', async () => {
    const reader = new FakeReader();
    reader.files = { 'a.txt': 'A' };
    const v = copy(base, ['a.txt']);
    const before = (await new CacheKeys(reader).key(v, [parent], false)).key;
    assert.deepEqual(reader.localCalls, [{ paths: ['a.txt'], owners: false }]);
    reader.files = { 'a.txt': 'B' };
    const after = (await new CacheKeys(reader).key(v, [parent], false)).key;
    assert.notEqual(before, after);
  });

  it('change with the parent’s layers, but not its key: the content names the input', async () => {
    const reader = new FakeReader();
    const v = copy(base, ['a.txt']);
    const keys = new CacheKeys(reader);
    const k1 = (await keys.key(v, [parent], false)).key;
    const sameLayersOtherKey = { ...state(base, ['sha256:aa']), key: 'another key' };
    assert.equal((await keys.key(v, [sameLayersOtherKey], false)).key, k1);
    assert.notEqual((await keys.key(v, [state(base, ['sha256:bb'])], false)).key, k1);
  });

  it('of a COPY --link ignore the parent, and of a COPY --from follow the source stage', async () => {
    const reader = new FakeReader();
    const stage = run(scratch(), 'build it', { index: 4 });
    const linked = copy(base, ['out'], { from: stage, link: true });
    assert.ok(isLinkedCopy(linked));
    const keys = new CacheKeys(reader);
    const k = (await keys.key(linked, [state(stage, ['sha256:s1'])], true)).key;
    const otherBase = copy(run(scratch(), 'something else'), ['out'], { from: stage, link: true });
    assert.equal((await keys.key(otherBase, [state(stage, ['sha256:s1'])], true)).key, k, 'another parent, the same key');
    assert.notEqual((await keys.key(linked, [state(stage, ['sha256:s2'])], true)).key, k, 'another source stage content');
    const unlinked = copy(base, ['out'], { from: stage });
    assert.ok(!isLinkedCopy(unlinked));
    assert.equal(JSON.parse(describeDefinition(unlinked)).source.from, stage.name);
  });

  it('of a RUN with a context bind mount read the mounted files with their owners', async () => {
    const reader = new FakeReader();
    reader.files = { src: 'v1' };
    const v = run(base, 'make', { mounts: [{ type: 'bind', target: '/src', source: 'src', from: contextSource() }], index: 3 });
    const before = (await new CacheKeys(reader).key(v, [parent], false)).key;
    assert.deepEqual(reader.localCalls, [{ paths: ['src'], owners: true }]);
    reader.files = { src: 'v2' };
    assert.notEqual((await new CacheKeys(reader).key(v, [parent], false)).key, before);
  });

  it('of an ADD <url> follow the content fetched, not the URL alone', async () => {
    const reader = new FakeReader();
    const url = 'http://example.invalid/file.txt';
    const v = copy(base, [], { urls: [url] });
    reader.urls[url] = 'first';
    const before = (await new CacheKeys(reader).key(v, [parent], false)).key;
    assert.equal((await new CacheKeys(reader).key(v, [parent], false)).key, before);
    reader.urls[url] = 'second';
    assert.notEqual((await new CacheKeys(reader).key(v, [parent], false)).key, before);
    assert.deepEqual(JSON.parse(describeDefinition(v)).urls, [url]);
  });

  it('of an ADD --checksum <url> follow the checksum, without fetching', async () => {
    const reader = new FakeReader();
    let fetched = 0;
    reader.http = async () => {
      fetched++;
      return 'content';
    };
    const url = 'http://example.invalid/file.txt';
    const pinned = (sum: string) => {
      const v = copy(base, [], { urls: [url] });
      if (v.action.op === 'copy') v.action.urls = [httpSource(url, sum)];
      return v;
    };
    const a = (await new CacheKeys(reader).key(pinned(`sha256:${'a'.repeat(64)}`), [parent], false)).key;
    const b = (await new CacheKeys(reader).key(pinned(`sha256:${'b'.repeat(64)}`), [parent], false)).key;
    assert.notEqual(a, b);
    assert.equal(fetched, 0);
  });

  it('refuse a git repository as a COPY source clearly (ADD adds one)', async () => {
    const git = gitSource({ remote: 'https://example.invalid/repo.git' });
    const v = copy(base, ['.'], { from: git });
    await assert.rejects(new CacheKeys(new FakeReader()).key(v, [parent], false), (e: unknown) => e instanceof KilnError && /COPY from https:\/\/example.invalid\/repo.git: a git repository is added with ADD/.test(e.message));
  });

  it('of an ADD of a git repository follow the commit its ref resolves to, not the ref or --checksum', async () => {
    const reader = new FakeReader();
    const remote = 'https://example.invalid/repo.git';
    reader.commits[remote] = 'c1';
    const add = (g: Parameters<typeof gitSource>[0]) => copy(base, [], { gits: [gitSource(g)] });
    const key = async (g: Parameters<typeof gitSource>[0]) => (await new CacheKeys(reader).key(add(g), [parent], false)).key;
    const k1 = await key({ remote, ref: 'main' });
    assert.equal(await key({ remote, ref: 'main' }), k1);
    assert.notEqual(await key({ remote, ref: 'main', subdir: 'sub' }), k1);
    reader.commits[remote] = 'c2';
    assert.notEqual(await key({ remote, ref: 'main' }), k1, 'the ref moved');
    // a definition with --checksum describes the step as one without it (the reader checks it)
    assert.equal(describeDefinition(add({ remote, ref: 'main', checksum: 'abc' })), describeDefinition(add({ remote, ref: 'main' })));
  });

  it('name a layer chain by its diff ids in order', () => {
    assert.equal(chainId([layer('sha256:a'), layer('sha256:b')]), chainId([layer('sha256:a'), layer('sha256:b')]));
    assert.notEqual(chainId([layer('sha256:a'), layer('sha256:b')]), chainId([layer('sha256:b'), layer('sha256:a')]));
  });
});
