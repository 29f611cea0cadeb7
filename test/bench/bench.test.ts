/**
 * Smoke tests of the benchmark script: its scenario generators make valid, deterministic
 * contexts of the promised shape, its helpers parse kiln's progress events, and one tiny
 * end-to-end run (kiln only, quick sizes) produces a table and JSON. No timing assertions.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseDockerfile } from '../../src/dockerfile/index.js';
import {
  ByteStream,
  bigContextScenario,
  bigContextShape,
  cachedStepMsFromEvents,
  depsScenario,
  median,
  parseArgs,
  scenarios,
  stepTimesFromEvents,
  STEP_COUNT,
  stepsScenario,
} from '../../scripts/bench.js';
import { haveTool, isRoot, repoRoot, runCommand, tempDir } from '../helpers.js';

/** Every regular file under dir: relative path → sha256 of its content. */
async function treeDigests(dir: string): Promise<Map<string, { sha: string; size: number }>> {
  const out = new Map<string, { sha: string; size: number }>();
  const walk = async (rel: string): Promise<void> => {
    for (const d of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) await walk(r);
      else {
        const data = await fs.readFile(path.join(dir, r));
        out.set(r, { sha: createHash('sha256').update(data).digest('hex'), size: data.length });
      }
    }
  };
  await walk('');
  return out;
}

describe('bench scenario generators', () => {
  for (const sc of scenarios) {
    it(`${sc.name}: generates a context whose Dockerfiles parse and whose COPY sources exist`, async () => {
      const { dir, cleanup } = await tempDir('kiln-bench-test-');
      try {
        const shape = await sc.generate(dir, true);
        const files = await treeDigests(dir);
        assert.equal(files.size, shape.files, 'reported file count matches the tree');
        const dockerfiles = [...files.keys()].filter((f) => f.startsWith('Dockerfile'));
        assert.ok(dockerfiles.includes('Dockerfile'));
        for (const fig of sc.figures) assert.ok(files.has(fig.dockerfile ?? 'Dockerfile'), `${fig.id} uses an existing Dockerfile`);
        for (const name of dockerfiles) {
          const df = parseDockerfile(await fs.readFile(path.join(dir, name), 'utf8'), name);
          assert.equal(df.instructions[0].keyword, 'from');
          assert.equal(df.instructions[0].args[0], 'busybox:latest');
          for (const ins of df.instructions.filter((i) => i.keyword === 'copy' && !i.flags.some((f) => f.startsWith('--from')))) {
            for (const src of ins.args.slice(0, -1)) {
              await fs.access(path.join(dir, src));
            }
          }
        }
      } finally {
        await cleanup();
      }
    });
  }

  it('bigcontext: the promised file count and total size, the same bytes every time', async () => {
    const a = await tempDir('kiln-bench-test-');
    const b = await tempDir('kiln-bench-test-');
    try {
      const shape = bigContextShape(true);
      const got = await bigContextScenario.generate(a.dir, true);
      await bigContextScenario.generate(b.dir, true);
      const ta = await treeDigests(a.dir);
      const tb = await treeDigests(b.dir);
      assert.equal(ta.size, shape.files);
      assert.equal([...ta.values()].reduce((s, f) => s + f.size, 0), shape.bytes);
      assert.equal(got.bytes, shape.bytes);
      assert.deepEqual([...ta.entries()].sort(), [...tb.entries()].sort());
      assert.ok([...ta.values()].filter((f) => f.size > 1024 * 1024).length === shape.big, 'the big files are big');
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  });

  it('the rebuild figures really change one file, keeping its size for bigcontext', async () => {
    const { dir, cleanup } = await tempDir('kiln-bench-test-');
    try {
      await bigContextScenario.generate(dir, true);
      const before = await treeDigests(dir);
      const touch = bigContextScenario.figures.find((f) => f.id === 'touch1')!;
      await touch.before!(dir, 'aaaaaaaaaaaa-000001');
      const after1 = await treeDigests(dir);
      await touch.before!(dir, 'aaaaaaaaaaaa-000002');
      const after2 = await treeDigests(dir);
      const changed = (x: typeof before, y: typeof before) => [...x.keys()].filter((k) => x.get(k)!.sha !== y.get(k)!.sha);
      assert.equal(changed(before, after1).length, 1);
      assert.equal(changed(after1, after2).length, 1);
      const f = changed(before, after1)[0];
      assert.equal(after1.get(f)!.size, before.get(f)!.size);

      const deps = await tempDir('kiln-bench-test-');
      try {
        await depsScenario.generate(deps.dir, true);
        const d0 = await treeDigests(deps.dir);
        await depsScenario.figures.find((x) => x.id === 'src-change')!.before!(deps.dir, 'aaaaaaaaaaaa-000007');
        const d1 = await treeDigests(deps.dir);
        assert.deepEqual(changed(d0, d1), ['src/mod000.js']);
      } finally {
        await deps.cleanup();
      }
    } finally {
      await cleanup();
    }
  });

  it('ByteStream is deterministic per seed and differs between seeds', () => {
    assert.deepEqual(new ByteStream('x').bytes(64), new ByteStream('x').bytes(64));
    assert.notDeepEqual(new ByteStream('x').bytes(64), new ByteStream('y').bytes(64));
    const t = new ByteStream('t').text(1000);
    assert.equal(t.length, 1000);
    assert.match(t.toString('latin1'), /^[A-Za-z0-9+/=\n]+$/);
  });

  it('the steps scenario has STEP_COUNT RUN steps and a one-step variant', async () => {
    const { dir, cleanup } = await tempDir('kiln-bench-test-');
    try {
      await stepsScenario.generate(dir, false);
      const many = parseDockerfile(await fs.readFile(path.join(dir, 'Dockerfile'), 'utf8'));
      const one = parseDockerfile(await fs.readFile(path.join(dir, 'Dockerfile.one'), 'utf8'));
      assert.equal(many.instructions.filter((i) => i.keyword === 'run').length, STEP_COUNT);
      assert.equal(one.instructions.filter((i) => i.keyword === 'run').length, 1);
    } finally {
      await cleanup();
    }
  });
});

describe('bench helpers', () => {
  it('parses flags and rejects bad ones', () => {
    const d = parseArgs([]);
    assert.equal(d.runs, 3);
    assert.equal(d.quick, false);
    assert.deepEqual(d.peers, ['kiln', 'buildkit', 'buildah']);
    const o = parseArgs(['--only', 'steps,deps', '--runs', '5', '--quick', '--json', 'x.json', '--peers', 'kiln']);
    assert.deepEqual(o.only, ['steps', 'deps']);
    assert.equal(o.runs, 5);
    assert.equal(o.quick, true);
    assert.equal(o.json, 'x.json');
    assert.deepEqual(o.peers, ['kiln']);
    assert.throws(() => parseArgs(['--only', 'nope']), /unknown scenario "nope"/);
    assert.throws(() => parseArgs(['--runs', '0']), /positive/);
    assert.throws(() => parseArgs(['--peers', 'kaniko']), /unknown peer/);
    assert.throws(() => parseArgs(['--frobnicate']), /unknown option/);
    assert.equal(parseArgs(['--baseline', 'rel/dir']).baseline, path.resolve('rel/dir'));
    assert.equal(d.baseline, undefined);
  });

  it('median of odd and even counts', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([]), undefined);
  });

  it('reads per-step figures from kiln progress json', () => {
    const lines = [
      '{"type":"cached","id":1,"name":"[1/3] RUN a","ts":"2025-01-01T00:00:00.000Z"}',
      'WARNING: something',
      '{"type":"cached","id":2,"name":"[2/3] RUN b","ts":"2025-01-01T00:00:00.004Z"}',
      '{"type":"cached","id":3,"name":"[3/3] RUN c","ts":"2025-01-01T00:00:00.010Z"}',
      '{"type":"done","id":4,"name":"[4/4] COPY x","ms":120,"ts":"2025-01-01T00:00:00.200Z"}',
    ].join('\n');
    assert.equal(cachedStepMsFromEvents(lines), 5);
    assert.deepEqual(stepTimesFromEvents(lines), [{ name: '[4/4] COPY x', ms: 120 }]);
    assert.equal(cachedStepMsFromEvents('{"type":"cached","ts":"2025-01-01T00:00:00.000Z"}'), undefined);
  });
});

const e2eSkip = !isRoot() ? 'kiln builds need root' : !haveTool('runc') ? 'runc not installed' : false;

describe('bench end to end (kiln only, quick)', { skip: e2eSkip }, () => {
  it('runs the steps scenario and writes a table and JSON with kiln medians, and the same kiln as a --baseline', async () => {
    const { dir, cleanup } = await tempDir('kiln-bench-test-');
    try {
      const json = path.join(dir, 'out.json');
      const script = path.join(repoRoot, 'dist', 'scripts', 'bench.js');
      const r = await runCommand(process.execPath, [script, '--quick', '--only', 'steps', '--runs', '1', '--peers', 'kiln', '--baseline', repoRoot, '--json', json], { timeoutMs: 240_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\| steps \/ cold build/);
      assert.match(r.stdout, /buildkit skipped: not in --peers/);
      assert.match(r.stdout, /\| kiln\/baseline \|/);
      const doc = JSON.parse(await fs.readFile(json, 'utf8')) as { results: Array<{ figure: string; median: Record<string, number>; errors: Record<string, string> }> };
      for (const fig of ['cold', 'cached', 'cached-one', 'per-step-events']) {
        const res = doc.results.find((x) => x.figure === fig);
        assert.ok(res, `figure ${fig} reported`);
        assert.deepEqual(res.errors, {});
        assert.equal(typeof res.median.kiln, 'number', `kiln has a ${fig} median`);
        if (fig !== 'per-step-events') assert.equal(typeof res.median.baseline, 'number', `the baseline has a ${fig} median`);
        assert.equal(res.median.buildkit, undefined);
      }
    } finally {
      await cleanup();
    }
  });
});
