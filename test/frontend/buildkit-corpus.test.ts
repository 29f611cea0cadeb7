/**
 * Every case of test/fixtures/buildkit-corpus built with kiln (real runc, real store)
 * and compared with what real BuildKit produced for it (expected.json, recorded by
 * scripts/gen-buildkit-fixtures.ts, or hand-written where dockerd 20.10 cannot build it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isRoot, rootWithBusybox, runKiln, tempDir } from '../helpers.js';
import {
  buildArgFlags,
  checkKey,
  copyContext,
  corpusDir,
  loadCases,
  normalizeConfig,
  parseUnusedBuildArgs,
  type NormalizedImage,
} from './corpus.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';
const cases = await loadCases(corpusDir);

/**
 * Cases that still differ from BuildKit for reasons outside src/frontend (the plan is
 * right; the solver or executor is not). They run and report, as node:test TODOs.
 */
const KNOWN_OUTSIDE_FRONTEND: Record<string, string> = {};

describe('BuildKit corpus', { skip }, () => {
  let root: string;
  let cleanupRoot: () => Promise<void>;

  before(async () => {
    ({ root, cleanup: cleanupRoot } = await rootWithBusybox());
  });
  after(async () => {
    await cleanupRoot?.();
  });

  it('has at least 40 cases, each with an expected.json', async () => {
    assert.ok(cases.length >= 40, `only ${cases.length} cases`);
    for (const c of cases) await fs.access(path.join(c.dir, 'expected.json'));
  });

  for (const c of cases) {
    const todo = KNOWN_OUTSIDE_FRONTEND[c.name];
    it(`${c.name}${c.args.buildkit === false ? ' (hand-written expectation)' : ''}`, { todo }, async () => {
      const expected = JSON.parse(await fs.readFile(path.join(c.dir, 'expected.json'), 'utf8')) as NormalizedImage;
      delete expected.comment;
      const { dir, cleanup } = await tempDir('kiln-corpus-');
      try {
        await copyContext(c, dir);
        const tag = `corpus-${c.name}:latest`;
        const r = await runKiln(['build', '--progress', 'plain', '-t', tag, ...buildArgFlags(c), dir], { root });
        assert.equal(r.code, 0, `kiln build failed:\n${r.stderr}`);
        const ins = await runKiln(['inspect', tag], { root });
        assert.equal(ins.code, 0, ins.stderr);
        const image = JSON.parse(ins.stdout) as { config: Parameters<typeof normalizeConfig>[0] };
        const actual: NormalizedImage = { ...normalizeConfig(image.config), unusedBuildArgs: parseUnusedBuildArgs(r.stderr + r.stdout) };
        if (c.checks.run?.length) {
          actual.files = {};
          for (const argv of c.checks.run) {
            const run = await runKiln(['run', '--rm', '--user', '0:0', '--entrypoint', argv[0], tag, ...argv.slice(1)], { root });
            assert.equal(run.code, 0, `kiln run ${argv.join(' ')}: ${run.stderr}`);
            actual.files[checkKey(argv)] = run.stdout;
          }
        }
        const dump = process.env.KILN_CORPUS_ACTUAL_DIR;
        if (dump) await fs.writeFile(path.join(dump, `${c.name}.json`), `${JSON.stringify(actual, null, 2)}\n`);
        assert.deepEqual(actual, expected);
      } finally {
        await cleanup();
      }
    });
  }
});
