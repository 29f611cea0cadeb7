/**
 * The planner on its own: planBuild over parsed Dockerfiles, with base images served
 * from memory (the store is not what is under test here; the planner is).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { KilnError } from '../../src/errors.js';
import { planBuild, expandPorts, type BuildPlan, type NamedContextState, type PlanOptions, type ResolvedImage } from '../../src/frontend/plan.js';
import { goDuration, goQuote, goQuoteList } from '../../src/frontend/gofmt.js';
import { namedLocalSource, type ExecVertex, type FileVertex, type Vertex } from '../../src/graph/types.js';
import type { ImageConfig, Platform } from '../../src/oci/types.js';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64' };

function image(config: ImageConfig['config'] = {}): ImageConfig {
  return {
    architecture: 'amd64',
    os: 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: ['sha256:' + '1'.repeat(64)] },
    history: [{ created_by: 'base' }],
  };
}

const IMAGES: Record<string, ImageConfig> = {
  'base:1': image({ Env: ['PATH=/usr/bin:/bin', 'FROM_BASE=yes'], Cmd: ['base-cmd'] }),
  'trigger:1': image({ Env: ['PATH=/bin'], OnBuild: ['RUN echo triggered', 'ENV TRIGGERED=1'] }),
};

interface Run {
  plan: BuildPlan;
  resolved: Array<{ ref: string; platform: Platform }>;
}

async function plan(text: string, opts: Partial<PlanOptions> = {}): Promise<Run> {
  const resolved: Run['resolved'] = [];
  const df = parseDockerfile(text, 'Dockerfile');
  const p = await planBuild(df, {
    buildPlatform: AMD64,
    created: '2024-01-01T00:00:00Z',
    resolveImage: async (ref, platform): Promise<ResolvedImage> => {
      resolved.push({ ref, platform });
      const config = IMAGES[ref];
      if (!config) throw new KilnError(`image "${ref}" is not in the store`, { hint: 'kiln import or kiln pull it first' });
      return { ref, manifestDigest: `sha256:${Buffer.from(ref).toString('hex').padEnd(64, '0').slice(0, 64)}`, config: structuredClone(config), layers: [] };
    },
    ...opts,
  });
  return { plan: p, resolved };
}

/** The exec/file vertices of the target's chain, base first. */
function chain(v: Vertex): Array<ExecVertex | FileVertex> {
  const out: Array<ExecVertex | FileVertex> = [];
  let cur = v;
  while (cur.kind === 'exec' || cur.kind === 'file') {
    out.unshift(cur);
    cur = cur.parent;
  }
  return out;
}

function execs(p: BuildPlan): ExecVertex[] {
  return chain(p.target.state).filter((v): v is ExecVertex => v.kind === 'exec');
}

function envOf(v: ExecVertex): Record<string, string> {
  return Object.fromEntries(v.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

function historyOf(p: BuildPlan): string[] {
  return (p.target.config.history ?? []).slice(1).map((h) => h.created_by ?? '');
}

async function planError(text: string, opts: Partial<PlanOptions> = {}): Promise<KilnError> {
  try {
    await plan(text, opts);
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${String(e)}`);
    return e;
  }
  assert.fail('planning succeeded');
}

describe('ARG scoping', () => {
  it('global ARGs reach FROM only, unless the stage redeclares them', async () => {
    const { plan: p } = await plan('ARG G=global\nARG TAG=1\nFROM base:${TAG}\nRUN echo one\nARG G\nRUN echo two\n');
    const [one, two] = execs(p);
    assert.equal(envOf(one).G, undefined);
    assert.equal(envOf(one).TAG, undefined);
    assert.equal(envOf(two).G, 'global');
    assert.deepEqual(historyOf(p), ['RUN /bin/sh -c echo one # buildkit', 'ARG G=global', 'RUN |1 G=global /bin/sh -c echo two # buildkit']);
  });

  it('--build-arg overrides defaults, global and stage, and is consumed', async () => {
    const { plan: p, resolved } = await plan('ARG TAG=0\nFROM base:${TAG}\nARG V=default\nARG E=$V-x\nRUN true\n', {
      buildArgs: { TAG: '1', V: 'cli' },
    });
    assert.equal(resolved[0].ref, 'base:1');
    assert.equal(envOf(execs(p)[0]).V, 'cli');
    assert.equal(envOf(execs(p)[0]).E, 'cli-x');
    assert.deepEqual(historyOf(p).slice(0, 2), ['ARG V=cli', 'ARG E=cli-x']);
    assert.deepEqual(p.unusedBuildArgs, []);
  });

  it('reports build args no ARG consumed', async () => {
    const { plan: p } = await plan('FROM base:1\nARG USED\nRUN true\n', { buildArgs: { USED: '1', NOPE: '2', HTTP_PROXY: 'http://p:1' } });
    assert.deepEqual(p.unusedBuildArgs, ['NOPE']);
  });

  it('a stage ARG does not leak into the next stage, but a stage built FROM it inherits it', async () => {
    const { plan: p } = await plan('FROM base:1 AS a\nARG X=1\nFROM base:1 AS b\nRUN echo b\nFROM a\nRUN echo c\n', { target: 'b' });
    assert.equal(envOf(execs(p)[0]).X, undefined);
    const { plan: c } = await plan('FROM base:1 AS a\nARG X=1\nFROM base:1 AS b\nRUN echo b\nFROM a\nRUN echo c\n');
    assert.equal(envOf(execs(c)[0]).X, '1');
    assert.deepEqual(historyOf(c), ['ARG X=1', 'RUN |1 X=1 /bin/sh -c echo c # buildkit']);
  });

  it('ENV wins over an earlier ARG; a later ARG wins for RUN but not in the image', async () => {
    const { plan: p } = await plan('FROM base:1\nARG X=arg\nENV X=env\nRUN a\nENV Y=env\nARG Y=arg\nRUN b\n');
    const [a, b] = execs(p);
    assert.equal(envOf(a).X, 'env');
    assert.equal(envOf(b).Y, 'arg');
    assert.ok(p.target.config.config?.Env?.includes('Y=env'));
    assert.equal(historyOf(p)[2], 'RUN |1 X=env /bin/sh -c a # buildkit');
    assert.equal(historyOf(p)[5], 'RUN |2 X=env Y=arg /bin/sh -c b # buildkit');
  });

  it('a redeclared ARG is listed once in RUN history, with its last value', async () => {
    const { plan: p } = await plan('FROM base:1\nARG V=one\nARG V=two\nARG V\nRUN x\n');
    assert.equal(envOf(execs(p)[0]).V, 'two');
    assert.equal(historyOf(p)[3], 'RUN |1 V=two /bin/sh -c x # buildkit');
  });

  it('proxy build args reach RUN in both spellings but never history or the cache key', async () => {
    const text = 'FROM base:1\nRUN wget x\n';
    const { plan: p } = await plan(text, { buildArgs: { HTTPS_PROXY: 'http://proxy:3128' } });
    const env = envOf(execs(p)[0]);
    assert.equal(env.HTTPS_PROXY, 'http://proxy:3128');
    assert.equal(env.https_proxy, 'http://proxy:3128');
    assert.deepEqual(historyOf(p), ['RUN /bin/sh -c wget x # buildkit']);
    const { plan: q } = await plan(text);
    assert.equal(execs(p)[0].digest, execs(q)[0].digest);
  });

  it('predefines the platform ARGs for ARG and FROM --platform', async () => {
    const { plan: p, resolved } = await plan(
      'FROM --platform=$BUILDPLATFORM base:1 AS build\nARG TARGETARCH\nARG BUILDARCH\nARG TARGETPLATFORM\nRUN echo $TARGETARCH\n',
      { platform: ARM64 },
    );
    assert.deepEqual(resolved[0].platform, AMD64);
    const env = envOf(execs(p)[0]);
    assert.equal(env.TARGETARCH, 'arm64');
    assert.equal(env.BUILDARCH, 'amd64');
    assert.equal(env.TARGETPLATFORM, 'linux/arm64');
    const { plan: q } = await plan('FROM base:1\nRUN echo $TARGETARCH\n', { platform: ARM64 });
    assert.equal(envOf(execs(q)[0]).TARGETARCH, undefined, 'undeclared platform ARGs are not in the environment');
  });
});

describe('config evolution', () => {
  it('expands every ENV word with the environment from before the instruction', async () => {
    const { plan: p } = await plan('FROM base:1\nENV A=1\nENV A=2 B=$A C=${FROM_BASE}\n');
    const env = p.target.config.config?.Env ?? [];
    assert.ok(env.includes('A=2') && env.includes('B=1') && env.includes('C=yes'), env.join(' '));
    assert.equal(historyOf(p)[1], 'ENV A=2 B=1 C=yes');
  });

  it('FROM scratch has PATH and WorkingDir "/"; WORKDIR / makes no layer', async () => {
    const { plan: p } = await plan('FROM scratch\nWORKDIR /\nWORKDIR app\n');
    assert.equal(p.target.config.config?.WorkingDir, '/app');
    assert.deepEqual(p.target.config.config?.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    assert.deepEqual(
      p.target.config.history?.map((h) => [h.created_by, h.empty_layer === true]),
      [['WORKDIR /', true], ['WORKDIR /app', false]],
    );
    assert.equal(chain(p.target.state).length, 1);
  });

  it('writes CMD, ENTRYPOINT, HEALTHCHECK, EXPOSE, VOLUME and SHELL history as BuildKit formats it', async () => {
    const { plan: p } = await plan(
      [
        'FROM base:1',
        'CMD echo "hi"',
        'ENTRYPOINT ["/bin/echo", "a\\tb"]',
        'HEALTHCHECK --interval=1m30s --timeout=500ms --retries=2 CMD ["true"]',
        'EXPOSE 80 127.0.0.1:8080:8081/udp 9000-9001',
        'VOLUME /a /b',
        'SHELL ["/bin/ash", "-c"]',
        '',
      ].join('\n'),
    );
    assert.deepEqual(historyOf(p), [
      'CMD ["/bin/sh" "-c" "echo \\"hi\\""]',
      'ENTRYPOINT ["/bin/echo" "a\\tb"]',
      'HEALTHCHECK {Test:[CMD true] Interval:1m30s Timeout:500ms StartPeriod:0s StartInterval:0s Retries:2}',
      'EXPOSE [80/tcp 8081/udp 9000/tcp 9001/tcp]',
      'VOLUME [/a /b]',
      'SHELL [/bin/ash -c]',
    ]);
    const cc = p.target.config.config!;
    assert.deepEqual(cc.Cmd, ['/bin/sh', '-c', 'echo "hi"'], 'a CMD set in this stage survives ENTRYPOINT');
    assert.deepEqual(cc.Healthcheck, { Test: ['CMD', 'true'], Interval: 90e9, Timeout: 5e8, Retries: 2 });
  });

  it('ENTRYPOINT clears an inherited CMD; CMD [] clears it too', async () => {
    const { plan: p } = await plan('FROM base:1\nENTRYPOINT ["/bin/echo"]\n');
    assert.equal(p.target.config.config?.Cmd, undefined);
    const { plan: q } = await plan('FROM base:1\nCMD []\n');
    assert.equal(q.target.config.config?.Cmd, undefined);
    assert.deepEqual(historyOf(q), ['CMD []']);
  });

  it('runs a base image\'s ONBUILD triggers first, and does not pass them on', async () => {
    const { plan: p } = await plan('FROM trigger:1\nRUN echo own\n');
    assert.deepEqual(historyOf(p), ['RUN /bin/sh -c echo triggered # buildkit', 'ENV TRIGGERED=1', 'RUN /bin/sh -c echo own # buildkit']);
    assert.equal(p.target.config.config?.OnBuild, undefined);
  });

  it('ONBUILD records the trigger in the config only', async () => {
    const { plan: p } = await plan('FROM base:1 AS base\nONBUILD RUN echo x\nFROM base\nRUN echo y\n', { target: 'base' });
    assert.deepEqual(p.target.config.config?.OnBuild, ['RUN echo x']);
    assert.deepEqual(historyOf(p), []);
    const { plan: child } = await plan('FROM base:1 AS base\nONBUILD RUN echo x\nFROM base\nRUN echo y\n');
    assert.deepEqual(historyOf(child), ['RUN /bin/sh -c echo x # buildkit', 'RUN /bin/sh -c echo y # buildkit']);
    assert.equal(child.target.config.config?.OnBuild, undefined);
  });

  it('COPY history carries --chown, --chmod and heredoc names', async () => {
    const { plan: p } = await plan('FROM base:1\nCOPY --chown=1:2 --chmod=644 a b /d/\nCOPY <<EOF /f\nx\nEOF\n');
    assert.deepEqual(historyOf(p), ['COPY --chown=1:2 --chmod=644 a b /d/ # buildkit', 'COPY <<EOF /f # buildkit']);
  });

  it('a shebang heredoc runs as /dev/pipes/NAME through the shell', async () => {
    const { plan: p } = await plan('FROM base:1\nRUN <<EOF\n#!/bin/sh\necho hi\nEOF\n');
    const [run] = execs(p);
    assert.deepEqual(run.args, ['/bin/sh', '-c', '/dev/pipes/EOF']);
    assert.deepEqual(run.inlineFiles, [{ path: '/dev/pipes/EOF', content: '#!/bin/sh\necho hi\n', mode: 0o755 }]);
  });

  it('RUN --mount from= an earlier stage mounts that stage', async () => {
    const { plan: p } = await plan('FROM base:1 AS gen\nRUN make\nFROM base:1\nRUN --mount=from=gen,target=/g,source=/out cat /g/x\n');
    const [run] = execs(p);
    const from = run.mounts[0].from;
    assert.ok(from && from.kind === 'exec', 'the mount comes from the gen stage');
    assert.equal(run.mounts[0].readonly, true);
  });
});

describe('SOURCE_DATE_EPOCH', () => {
  const created = (p: BuildPlan) => (p.target.config.history ?? []).map((h) => h.created);

  it('a global ARG default sets the epoch and every time the build writes', async () => {
    const { plan: p } = await plan('ARG SOURCE_DATE_EPOCH=1445412480\nFROM base:1\nENV A=1\nRUN true\n');
    assert.equal(p.sourceDateEpoch, 1445412480);
    assert.equal(p.target.config.created, '2015-10-21T07:28:00Z');
    assert.deepEqual(created(p).slice(1), ['2015-10-21T07:28:00Z', '2015-10-21T07:28:00Z']);
  });

  it('a build arg wins over the default, and is consumed without an ARG', async () => {
    const { plan: p } = await plan('ARG SOURCE_DATE_EPOCH=1700000001\nFROM base:1\nRUN true\n', { buildArgs: { SOURCE_DATE_EPOCH: '1700000002' } });
    assert.equal(p.sourceDateEpoch, 1700000002);
    const { plan: q } = await plan('FROM base:1\nRUN true\n', { buildArgs: { SOURCE_DATE_EPOCH: '1700000003' } });
    assert.equal(q.sourceDateEpoch, 1700000003);
    assert.deepEqual(q.unusedBuildArgs, []);
  });

  it('an empty build arg turns a default off; a stage ARG or "context" sets none', async () => {
    for (const [text, buildArgs] of [
      ['ARG SOURCE_DATE_EPOCH=1700000001\nFROM base:1\n', { SOURCE_DATE_EPOCH: '' }],
      ['FROM base:1\nARG SOURCE_DATE_EPOCH=1700000001\n', {}],
      ['ARG SOURCE_DATE_EPOCH=context\nFROM base:1\n', {}],
    ] as const) {
      const { plan: p } = await plan(text, { buildArgs });
      assert.equal(p.sourceDateEpoch, undefined, text);
      assert.equal(p.target.config.created, '2024-01-01T00:00:00Z');
    }
  });

  it('an invalid value is an error at its ARG, or naming the build arg', async () => {
    const e = await planError('ARG X=1 \\\n  SOURCE_DATE_EPOCH=soon\nFROM base:1\n');
    assert.match(e.message, /invalid SOURCE_DATE_EPOCH: soon/);
    assert.equal(e.location?.line, 1);
    const b = await planError('FROM base:1\n', { buildArgs: { SOURCE_DATE_EPOCH: '12.5' } });
    assert.match(b.message, /invalid SOURCE_DATE_EPOCH: 12\.5: not a whole number of seconds since 1970 \(from --build-arg\)/);
    assert.match(b.hint ?? '', /Unix timestamp/);
  });
});

describe('diagnostics', () => {
  it('COPY --from a stage defined later: located, with a hint', async () => {
    const e = await planError('FROM base:1 AS first\nCOPY --from=later /x /x\nFROM base:1 AS later\n', { target: 'first' });
    assert.match(e.message, /cannot copy from stage "later", it needs to be defined before current stage "first" \(stage "later" is used before it is defined, at line 3\)/);
    assert.deepEqual([e.location?.line, e.location?.column], [2, 6]);
    assert.match(e.hint ?? '', /move that stage above/);
    const text = e.format();
    assert.match(text, /^Dockerfile:2:6: /);
    assert.match(text, /\n {3}\| {6}\^{12}\n/);
  });

  it('FROM a stage defined later is an error, not an image lookup', async () => {
    const e = await planError('FROM later AS app\nRUN x\nFROM base:1 AS later\n', { target: 'app' });
    assert.match(e.message, /stage "later" is used before it is defined \(line 3\)/);
    assert.equal(e.location?.line, 1);
  });

  it('COPY --from an unknown name suggests the nearest stage', async () => {
    const e = await planError('FROM base:1 AS build\nRUN make\nFROM base:1\nCOPY --from=biuld /out /out\n');
    assert.match(e.message, /"biuld" is neither an earlier build stage nor an image in the store/);
    assert.equal(e.hint, 'did you mean the stage "build"?');
    assert.deepEqual([e.location?.line, e.location?.column], [4, 6]);
  });

  it('COPY --from with a variable is refused as BuildKit refuses it', async () => {
    const e = await planError('FROM base:1 AS build\nFROM base:1\nARG SRC=build\nCOPY --from=$SRC /x /x\n');
    assert.match(e.message, /variable expansion is not supported for --from/);
    assert.match(e.hint ?? '', /global scope/);
  });

  it('warns about undefined variables, BuildKit UndefinedVar style, with a suggestion', async () => {
    const { plan: p } = await plan('FROM base:1\nARG VERSION=1\nENV V=$VERSON\nLABEL x=$VERSION y=$NOPE_NOTHING_LIKE\n');
    assert.equal(p.warnings.length, 2, p.warnings.join('\n'));
    assert.match(p.warnings[0], /^Dockerfile:3:\d+: UndefinedVar: Usage of undefined variable '\$VERSON' \(did you mean \$VERSION\?\)$/);
    assert.match(p.warnings[1], /^Dockerfile:4:\d+: UndefinedVar: Usage of undefined variable '\$NOPE_NOTHING_LIKE'$/);
    const { plan: q } = await plan('FROM base:1\nARG DECLARED\nENV X=$DECLARED\n');
    assert.deepEqual(q.warnings, [], 'a declared ARG without a value is not undefined');
  });

  it('warns about undeclared FROM arguments', async () => {
    const { plan: p } = await plan('ARG TAG=1\nFROM base:${TAG}${SUFIX}\n');
    assert.match(p.warnings[0], /^Dockerfile:2:\d+: UndefinedArgInFrom: FROM argument 'SUFIX' is not declared$/);
  });

  it('rejects bad HEALTHCHECK durations and retries, at the flag', async () => {
    let e = await planError('FROM base:1\nHEALTHCHECK --interval=5x CMD true\n');
    assert.match(e.message, /invalid duration for --interval: "5x"/);
    assert.match(e.hint ?? '', /30s/);
    assert.deepEqual([e.location?.line, e.location?.column], [2, 13]);
    e = await planError('FROM base:1\nHEALTHCHECK --timeout=10us CMD true\n');
    assert.match(e.message, /cannot be less than 1ms/);
    e = await planError('FROM base:1\nHEALTHCHECK --retries=-1 CMD true\n');
    assert.match(e.message, /--retries cannot be negative/);
    e = await planError('FROM base:1\nHEALTHCHECK --retries=lots CMD true\n');
    assert.match(e.message, /invalid value for --retries: "lots"/);
    e = await planError('FROM base:1\nHEALTHCHECK curl localhost\n');
    assert.match(e.message, /Unknown type "curl" in HEALTHCHECK \(try CMD\)/);
  });

  it('rejects bad EXPOSE specs at the word', async () => {
    let e = await planError('FROM base:1\nEXPOSE 80 80/xyz\n');
    assert.match(e.message, /invalid proto: xyz/);
    assert.deepEqual([e.location?.line, e.location?.column], [2, 11]);
    e = await planError('FROM base:1\nEXPOSE 70000\n');
    assert.match(e.message, /65535/);
    e = await planError('FROM base:1\nEXPOSE 90-80\n');
    assert.match(e.message, /invalid range/);
    e = await planError('FROM base:1\nEXPOSE http\n');
    assert.match(e.message, /invalid containerPort: http/);
    assert.ok(e.hint);
  });

  it('SHELL must be JSON, and the hint shows the JSON form', async () => {
    const e = await planError('FROM base:1\nSHELL /bin/bash -c\n');
    assert.match(e.message, /SHELL requires the arguments to be in JSON form/);
    assert.equal(e.hint, 'write SHELL ["/bin/bash","-c"]');
    assert.equal(e.location?.line, 2);
  });

  it('an unknown --target suggests the nearest stage', async () => {
    const e = await planError('FROM base:1 AS build\nFROM base:1 AS release\n', { target: 'relase' });
    assert.equal(e.message, 'target stage "relase" could not be found (did you mean release?)');
    assert.match(e.hint ?? '', /this Dockerfile has: build, release/);
  });

  it('STOPSIGNAL accepts names with or without SIG and numbers, nothing else', async () => {
    for (const ok of ['SIGTERM', 'TERM', '9', 'SIGRTMIN+3']) await plan(`FROM base:1\nSTOPSIGNAL ${ok}\n`);
    const e = await planError('FROM base:1\nSTOPSIGNAL SIGNOPE\n');
    assert.match(e.message, /Invalid signal: SIGNOPE/);
  });
});

describe('Go formatting helpers', () => {
  it('formats durations as time.Duration.String()', () => {
    assert.deepEqual(
      [0, 500, 1500, 5e8, 3e9, 90e9, 300e9, 3600e9, 1.5e9, 3723e9].map(goDuration),
      ['0s', '500ns', '1.5µs', '500ms', '3s', '1m30s', '5m0s', '1h0m0s', '1.5s', '1h2m3s'],
    );
  });

  it('quotes as strconv.Quote', () => {
    assert.equal(goQuote('a"b\\c\n\x01é'), '"a\\"b\\\\c\\n\\x01é"');
    assert.equal(goQuoteList(['/bin/sh', '-c', 'x y']), '["/bin/sh" "-c" "x y"]');
  });

  it('expandPorts keeps the container port of ip:host:port forms', () => {
    const fail = (m: string) => new Error(m);
    assert.deepEqual(expandPorts('127.0.0.1:80:8080/UDP', fail), ['8080/udp']);
    assert.deepEqual(expandPorts('7-8', fail), ['7/tcp', '8/tcp']);
  });
});

describe('step identity', () => {
  it('every step vertex says its stage, its place in "[stage n/m]" and its instruction, as its progress label does', async () => {
    const { plan: p } = await plan(
      'FROM base:1 AS build\nWORKDIR /src\nCOPY a b\nRUN make\nFROM scratch\nCOPY --from=build /src/b /b\nRUN ["true"]\n',
    );
    const seen: Vertex[] = [];
    const walk = (v: Vertex): void => {
      if (seen.includes(v)) return;
      seen.push(v);
      if (v.kind === 'exec') {
        walk(v.parent);
        for (const m of v.mounts) if (m.from && m.from.kind !== 'local') walk(m.from);
      } else if (v.kind === 'file') {
        walk(v.parent);
        if (v.action.op === 'copy' && v.action.source.from.kind !== 'local' && v.action.source.from.kind !== 'git') walk(v.action.source.from);
      }
    };
    walk(p.target.state);
    const steps = seen.map((v) => v.step);
    for (const [i, v] of seen.entries()) {
      const s = steps[i];
      assert.ok(s, `no step on ${v.name}`);
      assert.equal(v.name, `[${s.stage} ${s.index}/${s.total}] ${s.instruction}`);
    }
    const byInstruction = Object.fromEntries(steps.map((s) => [s!.instruction, s]));
    assert.deepEqual(byInstruction['RUN make'], { stage: 'build', stageIndex: 0, index: 4, total: 4, instruction: 'RUN make' });
    assert.deepEqual(byInstruction['WORKDIR /src'], { stage: 'build', stageIndex: 0, index: 2, total: 4, instruction: 'WORKDIR /src' });
    assert.deepEqual(byInstruction['FROM base:1'], { stage: 'build', stageIndex: 0, index: 1, total: 4, instruction: 'FROM base:1' });
    assert.deepEqual(byInstruction['RUN ["true"]'], { stage: 'stage-1', stageIndex: 1, index: 3, total: 3, instruction: 'RUN ["true"]' });
    assert.deepEqual(byInstruction['COPY --from=build /src/b /b'], { stage: 'stage-1', stageIndex: 1, index: 2, total: 3, instruction: 'COPY --from=build /src/b /b' });
    assert.equal(byInstruction['FROM scratch']?.stageIndex, 1);
  });

  it("BuildKit's non-env ARGs are declared but never reach RUN's environment", async () => {
    const { plan: p } = await plan('FROM base:1\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nARG OTHER=1\nRUN true\n');
    const env = envOf(execs(p)[0]);
    assert.equal(env.BUILDKIT_SBOM_SCAN_STAGE, undefined);
    assert.equal(env.OTHER, '1');
    assert.deepEqual(historyOf(p).slice(0, 1), ['ARG BUILDKIT_SBOM_SCAN_STAGE=true']);
  });
});

describe('named contexts (--build-context)', () => {
  /** A lookup serving `contexts` (name → what it stands for), recording what was asked. */
  function contexts(map: Record<string, NamedContextState>): { asked: string[]; namedContext: NonNullable<PlanOptions['namedContext']> } {
    const asked: string[] = [];
    return {
      asked,
      namedContext: async (name) => {
        asked.push(name);
        return map[name];
      },
    };
  }
  const dir = (name: string): NamedContextState => ({ kind: 'local', source: namedLocalSource(name), label: `local /ctx/${name}` });
  const img = (ref: string): NamedContextState => ({
    kind: 'image',
    label: ref,
    image: { ref, manifestDigest: `sha256:${'9'.repeat(64)}`, config: structuredClone(IMAGES[ref]), layers: [] },
  });

  it('replaces a stage of its name, whose instructions are not dispatched', async () => {
    const c = contexts({ tools: img('base:1') });
    const { plan: p, resolved } = await plan('FROM trigger:1 AS tools\nRUN never\nFROM scratch\nCOPY --from=tools /a /a\n', { namedContext: c.namedContext });
    const copy = chain(p.target.state).at(-1) as FileVertex;
    assert.equal(copy.action.op, 'copy');
    const from = copy.action.op === 'copy' ? copy.action.source.from : undefined;
    assert.equal(from?.kind, 'image');
    assert.ok(!resolved.some((r) => r.ref === 'trigger:1'), 'the replaced stage base is not resolved');
    assert.ok(!JSON.stringify(p.stagesPlanned.map((s) => s.config.history)).includes('never'));
  });

  it('gives COPY --from and RUN --mount from= a directory as a source vertex, over an image of that name', async () => {
    const c = contexts({ 'base:1': dir('base:1') });
    const { plan: p } = await plan('FROM scratch\nCOPY --from=base:1 /a /a\n', { namedContext: c.namedContext });
    const copy = p.target.state as FileVertex;
    assert.deepEqual(copy.action.op === 'copy' ? copy.action.source.from : undefined, namedLocalSource('base:1'));
    const run = await plan('FROM base:1\nRUN --mount=from=extra,target=/m true\n', { namedContext: contexts({ extra: dir('extra') }).namedContext });
    const exec = run.plan.target.state as ExecVertex;
    assert.deepEqual(exec.mounts[0].from, namedLocalSource('extra'));
  });

  it('FROM a directory is the empty image with the directory as its first layer', async () => {
    const { plan: p } = await plan('FROM src\nENV X=1\n', { namedContext: contexts({ src: dir('src') }).namedContext });
    const [first] = chain(p.target.state);
    assert.equal(first.kind, 'file');
    assert.equal(first.parent.kind, 'scratch');
    assert.equal(p.target.config.config?.WorkingDir, '/');
    assert.equal(p.target.config.history?.filter((h) => !h.empty_layer).length, 1);
  });

  it('an image context runs its ONBUILD triggers; scratch and stage indexes are never looked up; unused contexts are not asked for', async () => {
    const c = contexts({ base: img('trigger:1') });
    const { plan: p } = await plan('FROM scratch AS s0\nFROM busybox AS unused\nFROM base\nCOPY --from=0 /a /a\n', { namedContext: c.namedContext });
    assert.ok(chain(p.target.state).some((v) => v.kind === 'exec' && v.args.join(' ').includes('echo triggered')));
    assert.deepEqual(c.asked.sort(), ['base', 's0'].sort());
  });

  it('a stage replaced by an image takes that image\'s platform', async () => {
    const arm = img('base:1');
    if (arm.kind === 'image') arm.image.config.architecture = 'arm64';
    const { plan: p } = await plan('FROM busybox AS b\nFROM scratch\nCOPY --from=b /a /a\n', { namedContext: contexts({ b: arm }).namedContext });
    const copy = p.target.state as FileVertex;
    const from = copy.action.op === 'copy' ? copy.action.source.from : undefined;
    assert.deepEqual(from && 'platform' in from ? from.platform : undefined, ARM64);
  });

  it('a failing lookup is an error at the instruction that names the context', async () => {
    const namedContext: PlanOptions['namedContext'] = async () => {
      throw new KilnError('named context x: cannot read /nope', { hint: 'give a directory' });
    };
    await assert.rejects(plan('FROM scratch\nCOPY --from=x /a /a\n', { namedContext }), (e: unknown) => e instanceof KilnError && e.location?.line === 2 && /cannot read \/nope/.test(e.message));
  });
});
