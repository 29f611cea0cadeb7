/** The graph's source vertices and inputs: what the solver walks, and what it reads without walking. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { contextSource, httpSource, isSource, vertexInputs } from '../../src/graph/types.js';
import { copy, run, scratch } from '../solver/fake-graph.js';

describe('graph', () => {
  it('names the context and fetched URLs by stable digests', () => {
    assert.equal(contextSource().digest, contextSource().digest);
    assert.equal(contextSource().source, 'context');
    assert.equal(httpSource('http://a/x').digest, httpSource('http://a/x').digest);
    assert.notEqual(httpSource('http://a/x').digest, httpSource('http://a/y').digest);
    assert.notEqual(httpSource('http://a/x').digest, httpSource('http://a/x', `sha256:${'0'.repeat(64)}`).digest);
    assert.ok(isSource(contextSource()) && isSource(httpSource('http://a/x')));
    assert.ok(!isSource(scratch()));
  });

  it('lists the states a step depends on, parent first, and not the sources it reads', () => {
    const base = run(scratch(), 'base');
    const a = run(scratch(), 'a', { index: 3 });
    const b = run(scratch(), 'b', { index: 4 });
    assert.deepEqual(vertexInputs(copy(base, ['x'])), [base], 'a COPY from the context reads no other state');
    assert.deepEqual(vertexInputs(copy(base, ['x'], { from: a })), [base, a]);
    assert.deepEqual(vertexInputs(copy(base, [], { urls: ['http://a/x'] })), [base]);
    const mounted = run(base, 'make', {
      mounts: [
        { type: 'cache', target: '/c', from: a },
        { type: 'bind', target: '/ctx', from: contextSource() },
        { type: 'bind', target: '/b', from: b },
      ],
    });
    assert.deepEqual(vertexInputs(mounted), [base, a, b], 'mounted stages in mount order, the context not among them');
    assert.deepEqual(vertexInputs(scratch()), []);
  });
});
