/**
 * The scheduler with fake ops (no root, no runc, no store): a shared vertex is solved once,
 * independent branches run at once up to the limit, a cache hit skips the op, and a
 * failing step is the error the solve reports, naming the step, while the other branches
 * are cancelled and finish.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KilnError } from '../../src/errors.js';
import { CacheKeys } from '../../src/solver/keys.js';
import { failedVertex, StepError } from '../../src/solver/errors.js';
import { Scheduler } from '../../src/solver/scheduler.js';
import type { ProgressEvent } from '../../src/solver/types.js';
import type { DefinitionHit, StepContext } from '../../src/solver/scheduler.js';
import type { Vertex } from '../../src/graph/types.js';
import { copy, deferred, FakeOps, FakeReader, MemoryCache, run, scratch } from './fake-graph.js';

function scheduler(ops: FakeOps, cache = new MemoryCache(), options: { parallelism?: number; signal?: AbortSignal } = {}) {
  const events: ProgressEvent[] = [];
  const s = new Scheduler({ ops, keys: new CacheKeys(new FakeReader()), cache, parallelism: options.parallelism ?? 4, signal: options.signal, progress: (e) => events.push(e) });
  return { s, events, cache };
}

/** Waits, inside a step, until `other` has started: both are running at once. */
function meet(ops: FakeOps, other: string) {
  return async () => {
    while (!ops.started.includes(other)) await new Promise((r) => setImmediate(r));
  };
}

describe('scheduler (fake ops)', () => {
  it('solves a vertex two steps share once, and each step on its parent’s layers', async () => {
    const ops = new FakeOps();
    const base = run(scratch(), 'make base');
    const left = run(base, 'make left', { index: 3 });
    const right = run(base, 'make right', { index: 4 });
    const top = copy(left, ['out'], { from: right });
    const { s, events } = scheduler(ops);
    const solved = await s.solve(top);
    await s.drain();
    assert.deepEqual(ops.calls.filter((c) => c.vertex === base).length, 1, 'the shared RUN ran once');
    assert.equal(ops.calls.length, 4);
    const leftCall = ops.calls.find((c) => c.vertex === left)!;
    assert.equal(leftCall.base.length, 1, 'left runs on the layer base made');
    const topCall = ops.calls.find((c) => c.vertex === top)!;
    assert.deepEqual(topCall.others, [right.name], 'the COPY --from input is the right branch');
    assert.equal(solved.layers.length, 3, 'base, left, then the copy');
    assert.equal(solved.cached, false);
    assert.equal(s.steps.length, 4);
    assert.ok(s.steps.every((st) => st.step?.stage === 'app'), 'step records carry the step identity');
    assert.ok(events.some((e) => e.type === 'log' && e.data.toString() === 'ran RUN make base\n'));
    assert.equal(events.filter((e) => e.type === 'start').length, 4);
    assert.equal(events.filter((e) => e.type === 'done').length, 4);
  });

  it('runs independent branches at the same time, and one at a time with parallelism 1', async () => {
    const build = () => {
      const left = run(scratch(), 'left');
      const right = run(scratch(), 'right', { index: 3 });
      return copy(left, ['x'], { from: right });
    };
    // each branch waits inside its step until the other has started: this only finishes if both run at once
    const hooks: Record<string, (ctx: StepContext) => Promise<void>> = {};
    const parOps = new FakeOps(hooks);
    hooks['RUN left'] = meet(parOps, 'RUN right');
    hooks['RUN right'] = meet(parOps, 'RUN left');
    const { s } = scheduler(parOps, undefined, { parallelism: 2 });
    await s.solve(build());
    assert.equal(parOps.maxRunning, 2);
    const serialOps = new FakeOps();
    const serial = scheduler(serialOps, undefined, { parallelism: 1 });
    await serial.s.solve(build());
    assert.equal(serialOps.calls.length, 3);
    assert.equal(serialOps.maxRunning, 1, 'never two steps at once');
  });

  it('skips the op of a step whose key has a record, and reports it cached', async () => {
    const target = () => run(run(scratch(), 'first'), 'second', { index: 3 });
    const cache = new MemoryCache();
    const first = new FakeOps();
    const a = scheduler(first, cache);
    const made = await a.s.solve(target());
    await a.s.drain();
    await cache.commit();
    assert.equal(first.calls.length, 2);
    const again = new FakeOps();
    const b = scheduler(again, cache);
    const solved = await b.s.solve(target());
    assert.equal(again.calls.length, 0, 'no op ran');
    assert.equal(solved.cached, true);
    assert.deepEqual(solved.layers.map((l) => l.diffId), made.layers.map((l) => l.diffId), 'the recorded layers');
    assert.equal(b.events.filter((e) => e.type === 'cached').length, 2);
    assert.ok(b.s.steps.every((st) => st.cached));
    // without the cache (--no-cache) the op runs again
    const noCache = new FakeOps();
    const c = scheduler(noCache, cache);
    await c.s.solve({ ...target(), noCache: true });
    assert.deepEqual(noCache.calls.map((x) => x.vertex.step?.instruction), ['RUN second']);
  });

  it('takes a step an imported cache has by its definition key without solving any of its inputs', async () => {
    const reader = new FakeReader();
    reader.files = { 'app.txt': 'v1' };
    const target = () => {
      const build = run(scratch(), 'head -c 100 /dev/urandom > /rand');
      return run(copy(copy(scratch(), ['/rand'], { from: build }), ['app.txt']), 'cat /app.txt', { index: 4 });
    };
    // an exporting build: every step's definition key and state, as an exported cache holds them
    const keys = new CacheKeys(reader);
    const exporting = new Scheduler({ ops: new FakeOps(), keys, cache: new MemoryCache(), parallelism: 4 });
    const made = await exporting.solve(target());
    await exporting.drain();
    const exported = new Map<string, DefinitionHit>();
    let cur: Vertex = target();
    while (cur.kind === 'exec' || cur.kind === 'file') {
      const s = await exporting.solve(cur);
      assert.ok(s.definitionKey, `${cur.name} has a definition key`);
      exported.set(s.definitionKey, { key: s.key, layers: s.layers, addedLayer: s.addedLayer, createdAt: '2026-01-01T00:00:00Z' });
      cur = cur.parent;
    }
    const importing = (): MemoryCache & { lookupDefinition(k: string): Promise<DefinitionHit | undefined> } => Object.assign(new MemoryCache(), { lookupDefinition: async (k: string) => exported.get(k) });

    // a fresh runner: no local records; the stage the final one copies from is never solved
    const ops = new FakeOps();
    const fresh = new Scheduler({ ops, keys: new CacheKeys(reader), cache: importing(), parallelism: 4 });
    const solved = await fresh.solve(target());
    await fresh.drain();
    assert.deepEqual(ops.calls, [], 'no step ran');
    assert.equal(solved.key, made.key, 'the content key the exporting build recorded');
    assert.deepEqual(solved.layers.map((l) => l.diffId), made.layers.map((l) => l.diffId));
    assert.deepEqual(fresh.steps.map((s) => s.name), [target().name], 'only the target was looked at');
    assert.ok(fresh.steps[0].cached);

    // a changed context file misses its COPY and what follows; the COPY --from before it still hits, the stage is not solved
    reader.files = { 'app.txt': 'v2' };
    const changed = new FakeOps();
    const after = new Scheduler({ ops: changed, keys: new CacheKeys(reader), cache: importing(), parallelism: 4 });
    await after.solve(target());
    await after.drain();
    assert.deepEqual(changed.calls.map((c) => c.vertex.step?.instruction), ['COPY app.txt /dest/', 'RUN cat /app.txt']);

    // without definition keys (a build with no shared cache) the lookup is by content key only: everything runs
    const plain = new FakeOps();
    const local = new Scheduler({ ops: plain, keys: { key: (v, i, l) => keys.key(v, i, l) }, cache: importing(), parallelism: 4 });
    await local.solve(target());
    assert.equal(plain.calls.length, 4);
  });

  it('reports the failing step by name and origin, cancels the other branch, and finishes cleanly', async () => {
    const slowStarted = deferred();
    let sawAbort = false;
    const hooks: Record<string, (ctx: StepContext) => Promise<void>> = {
      'RUN slow': async (ctx) => {
        slowStarted.resolve();
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        sawAbort = true;
        throw ctx.cancelled();
      },
      'RUN broken': async () => {
        await slowStarted.promise;
        throw new KilnError('it broke');
      },
    };
    const ops = new FakeOps(hooks);
    const slow = run(scratch(), 'slow');
    const broken = run(scratch(), 'broken', { index: 5 });
    const after = run(copy(slow, ['x'], { from: broken }), 'never', { index: 7 });
    const { s, events } = scheduler(ops);
    const err = await s.solve(after).then(
      () => assert.fail('the solve succeeded'),
      (e: unknown) => e,
    );
    await s.drain();
    assert.ok(sawAbort, 'the other branch saw the cancellation');
    assert.ok(err instanceof StepError, String(err));
    assert.equal(s.firstError, err, 'the failure is the build’s error, not the cancellation');
    assert.equal(err.message, 'it broke');
    assert.deepEqual(failedVertex(err)?.step, broken.step);
    assert.equal(err.location?.line, 5, 'located at the step’s Dockerfile line');
    assert.match(err.format(), /^Dockerfile:5:1: it broke\n 5 \| RUN broken/);
    assert.ok(!ops.started.includes('RUN never'), 'nothing after the failure ran');
    const failed = events.filter((e) => e.type === 'error');
    assert.deepEqual(failed.map((e) => e.type === 'error' && [e.name, e.message]).sort(), [[broken.name, 'it broke'], [slow.name, 'CANCELED']].sort());
    // a later solve on the cancelled scheduler stops at once
    await assert.rejects(s.solve(run(scratch(), 'later', { index: 8 })), /step cancelled because another step failed/);
  });

  it('stops with "build interrupted" when the caller aborts', async () => {
    const ac = new AbortController();
    const ops = new FakeOps({
      'RUN wait': async (ctx) => {
        ac.abort();
        if (ctx.signal.aborted) throw ctx.cancelled();
      },
    });
    const { s } = scheduler(ops, undefined, { signal: ac.signal });
    await assert.rejects(s.solve(run(run(scratch(), 'wait'), 'next', { index: 3 })), (e: unknown) => e instanceof KilnError && e.message === 'build interrupted' && e.exitCode === 130);
    await s.drain();
    assert.deepEqual(ops.started, ['RUN wait']);
  });

  it('fails the build as the step whose layer could not be stored in the background', async () => {
    const ops = new FakeOps();
    const original = ops.run.bind(ops);
    ops.run = async (...args) => {
      const made = await original(...args);
      const ready = Promise.reject(new KilnError('disk went away'));
      ready.catch(() => undefined);
      return made && { diffId: made.diffId, ready };
    };
    const v = run(scratch(), 'store me');
    const { s } = scheduler(ops);
    await s.solve(v);
    await s.drain();
    assert.ok(s.firstError instanceof StepError);
    assert.equal(failedVertex(s.firstError)?.name, v.name);
  });
});
