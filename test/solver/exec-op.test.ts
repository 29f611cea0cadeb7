/**
 * The exec op through a fake Executor (no runc, no overlay): the container spec a RUN
 * asks for (command, environment, hostname, mounts, output), and the errors it reports.
 * The real runtime is tested by the build and BuildKit suites.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import type { RunSpec } from '../../src/exec/index.js';
import { contextSource } from '../../src/graph/types.js';
import { BuildContext } from '../../src/solver/context.js';
import { runExec } from '../../src/solver/ops/exec.js';
import type { OpDeps } from '../../src/solver/ops/deps.js';
import { HttpSources } from '../../src/solver/ops/source.js';
import type { StepContext } from '../../src/solver/scheduler.js';
import type { StateMounter } from '../../src/solver/states.js';
import type { Snapshotter } from '../../src/snapshot/snapshotter.js';
import type { ActiveMount } from '../../src/snapshot/types.js';
import { tempDir } from '../helpers.js';
import { run, scratch } from './fake-graph.js';

describe('exec op (fake executor)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  async function setup(result: { exitCode: number; outputTail: string }, output?: string) {
    const t = await tempDir('kiln-execop-');
    cleanups.push(t.cleanup);
    const rootfs = path.join(t.dir, 'rootfs');
    const ctxDir = path.join(t.dir, 'ctx');
    await fs.mkdir(path.join(rootfs, 'etc'), { recursive: true });
    await fs.mkdir(path.join(ctxDir, 'src'), { recursive: true });
    const context = await BuildContext.open(ctxDir, { walker: 'js' });
    const specs: RunSpec[] = [];
    let n = 0;
    const deps: OpDeps = {
      root: path.join(t.dir, 'root'),
      executor: {
        async run(spec) {
          specs.push(spec);
          if (output !== undefined) spec.onOutput?.(Buffer.from(output), 'stdout');
          return result;
        },
      },
      // a RUN with only these mounts needs no snapshotter nor mounted stage
      snapshotter: undefined as unknown as Snapshotter,
      states: undefined as unknown as StateMounter,
      local: (s) => (s === undefined || s.source === 'context' ? context : undefined),
      http: new HttpSources(() => path.join(t.dir, 'http'), path.join(t.dir, 'http-cache')),
      tempPath: (kind) => path.join(t.dir, `${kind}-${n++}`),
    };
    const mount = { merged: rootfs, upper: rootfs, work: rootfs, release: async () => undefined };
    const logs: string[] = [];
    const ac = new AbortController();
    const ctx: StepContext = { id: 7, signal: ac.signal, log: (_s, d) => logs.push(d.toString()), cancelled: () => new KilnError('cancelled') };
    return { deps, mount, ctx, specs, logs, ctxDir };
  }

  it('asks the executor for the step’s process, environment, hostname and mounts', async () => {
    const s = await setup({ exitCode: 0, outputTail: '' }, 'hello\n');
    const v = run(scratch(), 'make', {
      mounts: [
        { type: 'tmpfs', target: '/tmp', size: 1024 },
        { type: 'bind', target: '/src', source: 'src', from: contextSource(), readonly: true },
      ],
    });
    const extra: ActiveMount[] = [];
    await runExec(s.deps, v, [], s.mount, extra, s.ctx);
    for (const m of extra) await m.release();
    assert.equal(s.specs.length, 1);
    const spec = s.specs[0];
    assert.deepEqual(spec.args, ['/bin/sh', '-c', 'make']);
    assert.equal(spec.rootfs, s.mount.merged);
    assert.equal(spec.hostname, 'buildkitsandbox');
    assert.deepEqual(spec.env, v.env);
    assert.deepEqual(spec.mounts?.find((m) => m.destination === '/tmp'), { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=1024'] });
    assert.deepEqual(spec.mounts?.find((m) => m.destination === '/src'), { destination: '/src', type: 'bind', source: path.join(await fs.realpath(s.ctxDir), 'src'), options: ['rbind', 'ro'] });
    assert.equal(spec.stateRoot, path.join(s.deps.root, 'run'));
    assert.deepEqual(s.logs, ['hello\n'], 'output goes to the step’s log');
  });

  it('reports a failed process as the step’s instruction, at its line, with the last output', async () => {
    const s = await setup({ exitCode: 2, outputTail: 'make: *** no rule\n' });
    const v = run(scratch(), 'make', { index: 4 });
    const err = await runExec(s.deps, v, [], s.mount, [], s.ctx).then(
      () => assert.fail('no error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof KilnError);
    assert.equal(err.message, 'RUN make: process "/bin/sh -c make" did not complete successfully: exit code: 2');
    assert.equal(err.location?.line, 4);
    assert.equal(err.detail, 'last lines of output:\n  make: *** no rule');
  });

  it('refuses a required secret the build was not given, before running anything', async () => {
    const s = await setup({ exitCode: 0, outputTail: '' });
    const v = run(scratch(), 'cat /run/secrets/missing', { mounts: [{ type: 'secret', target: '/run/secrets/missing', id: 'missing', required: true }] });
    await assert.rejects(runExec(s.deps, v, [], s.mount, [], s.ctx), /secret missing: not found/);
    assert.equal(s.specs.length, 0);
  });
});
