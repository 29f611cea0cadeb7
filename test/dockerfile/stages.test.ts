/**
 * The one stage and ARG model the build and the checks share: its rules on their own, and
 * the build's warnings and the checks' findings agreeing on the same Dockerfiles.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { KilnError } from '../../src/errors.js';
import { argValue, GlobalArgs, predefinedArgs, splitStages, StageScope, Stages } from '../../src/dockerfile/stages.js';
import { runChecks } from '../../src/dockerfile/checks.js';
import { planBuild } from '../../src/frontend/plan.js';
import type { Platform } from '../../src/oci/types.js';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const plainExpand = (word: string, env: Record<string, string>) => word.replace(/\$(\w+)/g, (_, n: string) => env[n] ?? '');

describe('stages and scopes', () => {
  it('splits global ARGs and stages; strict mode throws the build errors in file order', () => {
    const df = parseDockerfile('ARG A=1\nFROM x AS One\nRUN a\nFROM one\nCOPY a b\n', 'Dockerfile');
    const { metaArgs, stages } = splitStages(df);
    assert.equal(metaArgs.length, 1);
    assert.deepEqual(stages.map((s) => [s.index, s.image, s.name, s.commands.length]), [[0, 'x', 'one', 1], [1, 'one', undefined, 1]]);
    const lookups = new Stages(stages);
    assert.equal(lookups.earlier('ONE', 1)?.index, 0);
    assert.equal(lookups.earlier('0', 1)?.index, 0);
    assert.equal(lookups.earlier('one', 0), undefined);
    assert.equal(lookups.later('one', 0)?.index, 0);

    const strict = (text: string) => {
      const d = parseDockerfile(text, 'Dockerfile');
      try {
        splitStages(d, d);
      } catch (e) {
        assert.ok(e instanceof KilnError);
        return `${e.location?.line ?? '-'}: ${e.message}`;
      }
      return 'ok';
    };
    assert.equal(strict('RUN x\nFROM a b\n'), '1: RUN before FROM: only ARG may come before the first FROM');
    assert.equal(strict('FROM a AS x\nFROM b AS X\n'), '2: duplicate stage name "x"');
    assert.equal(strict('ARG A\n'), '-: Dockerfile: dockerfile contains no stages to build (no FROM instruction)');
    // the lenient split reads the same files without a word
    assert.equal(splitStages(parseDockerfile('RUN x\nFROM a b\n', 'Dockerfile')).stages.length, 1);
  });

  it('global ARGs: build args win and are consumed, defaults expand in order, undeclared names get a suggestion', () => {
    const df = parseDockerfile('ARG BASE=busybox\nARG TAG=$BASE-1\nARG OTHER\nFROM $BASE\n', 'Dockerfile');
    const g = new GlobalArgs(splitStages(df).metaArgs, predefinedArgs(AMD64, AMD64, undefined), { BASE: 'alpine', NOPE: '1' }, plainExpand);
    assert.deepEqual([g.values().BASE, g.values().TAG, 'OTHER' in g.values()], ['alpine', 'alpine-1', false]);
    assert.deepEqual([...g.consumed], ['BASE']);
    assert.equal(g.values(false).TAG, 'busybox-1');
    assert.equal(g.values().TARGETSTAGE, 'default');
    assert.deepEqual(g.undeclared(['BAS', 'OTHER', 'TARGETARCH_']), [{ name: 'BAS', suggestion: 'BASE' }, { name: 'TARGETARCH_', suggestion: 'TARGETARCH' }]);
  });

  it("a stage's ARG: build arg, else default, else the global value; BuildKit's non-env ARGs stay out of the environment", () => {
    const expandDefault = (w: string) => `<${w}>`;
    assert.deepEqual(argValue({ key: 'A', value: 'd' }, { A: 'cli' }, { A: 'g' }, expandDefault), { value: 'cli', fromBuildArg: true });
    assert.deepEqual(argValue({ key: 'A', value: 'd' }, {}, { A: 'g' }, expandDefault), { value: '<d>', fromBuildArg: false });
    assert.deepEqual(argValue({ key: 'A' }, {}, { A: 'g' }, expandDefault), { value: 'g', fromBuildArg: false });
    assert.deepEqual(argValue({ key: 'A' }, {}, {}, expandDefault), { fromBuildArg: false });

    const scope = new StageScope(['PATH=/bin', 'HOME=/root']);
    scope.declareArg('HOME', '/home/app');
    scope.declareArg('BUILDKIT_SBOM_SCAN_STAGE', 'true');
    scope.declareArg('EMPTY', undefined);
    assert.deepEqual(scope.env, ['PATH=/bin', 'HOME=/home/app']);
    assert.ok(scope.isDeclared('EMPTY') && scope.isDeclared('BUILDKIT_SBOM_SCAN_STAGE'));
    assert.deepEqual(scope.undefinedVars(['EMPTY', 'HOM', 'BUILDKIT_SBOM_SCAN_CONTEXT']), [{ name: 'HOM', suggestion: 'HOME' }]);
    const child = scope.clone();
    child.setEnv('X', '1');
    assert.equal(scope.values().X, undefined);
  });
});

/** The variable names the build warns about, and the names the checks report, for one Dockerfile. */
async function bothSides(text: string, buildArgs: Record<string, string> = {}): Promise<{ build: string[]; check: string[] }> {
  const df = parseDockerfile(text, 'Dockerfile');
  const plan = await planBuild(df, {
    buildPlatform: AMD64,
    platform: AMD64,
    buildArgs,
    created: '2024-01-01T00:00:00Z',
    resolveImage: async () => {
      throw new KilnError('not used');
    },
  });
  const names = (messages: string[]) => messages.map((m) => /'\$?(\w+)'/.exec(m)?.[1] ?? m).sort();
  const build = names(plan.warnings.filter((w) => /Undefined(Var|ArgInFrom)/.test(w)).map((w) => w.replace(/^[^:]+:\d+:\d+: /, '')));
  const result = runChecks(df, { buildArgs, platform: 'linux/amd64', skip: ['FinalStageRunsAsRoot', 'BaseImageUnpinned'] });
  const check = names(result.findings.filter((f) => f.rule === 'UndefinedVar' || f.rule === 'UndefinedArgInFrom').map((f) => f.message));
  return { build, check };
}

describe('the build and the checks share one scope', () => {
  const cases: Array<[string, string, Record<string, string>?]> = [
    ['undefined, declared, inherited', 'ARG G=1\nFROM scratch AS a\nARG L\nENV E=$L$G$NOPE\nFROM a\nWORKDIR /$E$L$MISSING\n'],
    ['non-env ARGs are declared, not set', 'FROM scratch\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nENV X=$BUILDKIT_SBOM_SCAN_STAGE$BUILDKIT_SBOM_SCAN_CONTEXT$TYPO\n'],
    ['FROM uses global ARGs only', 'ARG V=scratch\nFROM $V$UNDECLARED\nARG W\nRUN echo $W\n'],
    ['FROM names an earlier stage in any case', 'FROM scratch AS build\nARG X\nFROM BUILD\nENV Y=$X$Z\n'],
    ['FROM names an earlier stage by index', 'FROM scratch AS build\nARG X\nFROM 0\nENV Y=$X$Z\n'],
    ['build args and predefined ARGs', 'FROM scratch\nARG TARGETSTAGE\nARG B\nENV X=$TARGETSTAGE$B$TARGETOS\n', { B: 'x' }],
  ];
  for (const [name, text, buildArgs] of cases) {
    it(name, async () => {
      const { build, check } = await bothSides(text, buildArgs);
      assert.deepEqual(build, check);
    });
  }

  it('both say which variables are undefined in the first case', async () => {
    const { build } = await bothSides(cases[0][1]);
    assert.deepEqual(build, ['G', 'MISSING', 'NOPE']);
  });
});
