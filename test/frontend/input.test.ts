/**
 * Frontend fixes for everyday input, at the planner: BuildKit's "did you mean" wording for
 * misspelt flags and targets, --chown validation, COPY heredoc bodies expanded with quotes
 * kept, ONBUILD heredoc triggers stored whole, the target platform in the image config and
 * the emulation check for RUN on a foreign platform.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { KilnError } from '../../src/errors.js';
import { planBuild, type BuildPlan, type PlanOptions } from '../../src/frontend/plan.js';
import type { FileVertex, Vertex } from '../../src/graph/types.js';
import type { ImageConfig, Platform } from '../../src/oci/types.js';
import { closestWord } from '../../src/suggest.js';
import { executionProblem, parsePlatform, tryParsePlatform } from '../../src/oci/platform.js';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };

const BASE: ImageConfig = {
  architecture: 'amd64',
  os: 'linux',
  config: { Env: ['PATH=/bin'] },
  rootfs: { type: 'layers', diff_ids: [] },
  history: [],
};

/** Plans `text`; every base image is `base` (default BASE). */
function plan(text: string, opts: Partial<PlanOptions> = {}, base: ImageConfig = BASE): Promise<BuildPlan> {
  return planBuild(parseDockerfile(text, 'Dockerfile'), {
    buildPlatform: AMD64,
    created: '2024-01-01T00:00:00Z',
    resolveImage: async (ref) => ({ ref, manifestDigest: `sha256:${'a'.repeat(64)}`, config: structuredClone(base), layers: [] }),
    ...opts,
  });
}

async function planError(text: string, opts: Partial<PlanOptions> = {}): Promise<KilnError> {
  const e = await plan(text, opts).then(() => 'planning succeeded', (x: unknown) => x);
  assert.ok(e instanceof KilnError, `expected a KilnError, got ${String(e)}`);
  return e;
}

function copies(v: Vertex): FileVertex[] {
  const out: FileVertex[] = [];
  for (let cur = v; cur.kind === 'exec' || cur.kind === 'file'; cur = cur.parent) if (cur.kind === 'file') out.unshift(cur);
  return out;
}

function inlineOf(p: BuildPlan): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of copies(p.target.state)) {
    const a = f.action as { dest: string; inline?: Array<{ content: string }> };
    if (a.inline) out[a.dest] = a.inline[0]!.content;
  }
  return out;
}

describe('did you mean, in BuildKit\'s words', () => {
  it('a misspelt flag names the flag it is close to, in the message', async () => {
    const chown = await planError('FROM base\nCOPY --chwon=1 a /\n');
    assert.equal(chown.message, 'unknown flag: --chwon (did you mean chown?)');
    assert.deepEqual([chown.location?.line, chown.location?.column], [2, 6]);
    assert.match(chown.hint ?? '', /COPY accepts --from, --chown/);
    assert.equal((await planError('FROM base\nRUN --mout=type=tmpfs,target=/t true\n')).message, 'unknown flag: --mout (did you mean mount?)');
    assert.equal((await planError('FROM base\nRUN --mont=type=tmpfs,target=/t true\n')).message, 'unknown flag: --mont (did you mean mount?)');
    // nothing close: no suggestion, the hint lists what is accepted
    const far = await planError('FROM base\nADD --frobnicate a /\n');
    assert.equal(far.message, 'unknown flag: --frobnicate');
    assert.match(far.hint ?? '', /ADD accepts --chown/);
  });

  // testMountInvalid in BuildKit's suite
  it('a misspelt --mount key, type or sharing value names the one it is close to', async () => {
    const key = await planError('FROM base\nRUN --mount=typ=tmpfs /bin/true\n');
    assert.match(key.message, /unexpected key 'typ'/);
    assert.match(key.message, /\(did you mean type\?\)$/);
    const type = await planError('FROM base\nRUN --mount=type=tmp /bin/true\n');
    assert.equal(type.message, 'unsupported mount type "tmp" (did you mean tmpfs?)');
    const sharing = await planError('FROM base\nRUN --mount=type=cache,target=/c,sharing=lockd /bin/true\n');
    assert.equal(sharing.message, 'unsupported sharing value "lockd" (did you mean locked?)');
    assert.ok(sharing.hint);
  });

  it('a misspelt --target names the stage', async () => {
    const e = await planError('FROM base AS build\nFROM base\n', { target: 'bulid' });
    assert.equal(e.message, 'target stage "bulid" could not be found (did you mean build?)');
  });

  it('the search is BuildKit\'s: distance below 3, none on an exact match, case kept when asked', () => {
    assert.equal(closestWord('chwon', ['from', 'chown', 'chmod']), 'chown');
    assert.equal(closestWord('xyzzy', ['from', 'chown']), undefined);
    assert.equal(closestWord('chown', ['chown', 'chmod']), undefined);
    assert.equal(closestWord('workdri', ['WORKDIR'], false), 'workdir');
    assert.equal(closestWord('WORKDRI', ['WORKDIR'], false), 'WORKDIR');
  });
});

describe('COPY --chown', () => {
  it('USER:GROUP:MORE is an error at the flag', async () => {
    const e = await planError('FROM base\nCOPY --chown=1:2:3 a /\n');
    assert.match(e.message, /^invalid --chown=1:2:3: expected USER\[:GROUP\]/);
    assert.equal(e.location?.line, 2);
    assert.ok(e.hint);
  });

  it('USER and USER:GROUP are accepted', async () => {
    await plan('FROM base\nCOPY --chown=1:2 a /\nCOPY --chown=app a /\n');
  });
});

describe('heredocs', () => {
  // testHeredocVarSubstitution and testCopyHeredocSpecialSymbols in BuildKit's suite
  it('an unquoted COPY heredoc expands variables and keeps quotes verbatim', async () => {
    const p = await plan(
      [
        'FROM base', 'ARG name=world',
        'COPY <<EOF /c1', 'Hello ${name}!', 'EOF',
        "COPY <<'EOF' /c2", 'Hello ${name}!', 'EOF',
        'COPY <<"EOF" /c3', 'Hello ${name}!', 'EOF',
        'COPY <<EOF /q1', "Hello '${name}'!", 'EOF',
        'COPY <<EOF /q2', 'Hello "${name}"!', 'EOF',
        "COPY <<'EOF' /qsingle2", 'Hello "${name}"!', 'EOF',
        'COPY <<"EOF" /qdouble1', "Hello '${name}'!", 'EOF',
        'COPY <<EOF /quotefile', '"quotes in file"', 'EOF',
        'COPY <<EOF /slash2', '\\\\', 'EOF',
        'COPY <<EOF /slash3', '\\$', 'EOF',
        'COPY <<"EOF" /raw3', '\\$', 'EOF',
        '',
      ].join('\n'),
    );
    assert.deepEqual(inlineOf(p), {
      '/c1': 'Hello world!\n',
      '/c2': 'Hello ${name}!\n',
      '/c3': 'Hello ${name}!\n',
      '/q1': "Hello 'world'!\n",
      '/q2': 'Hello "world"!\n',
      '/qsingle2': 'Hello "${name}"!\n',
      '/qdouble1': "Hello '${name}'!\n",
      '/quotefile': '"quotes in file"\n',
      '/slash2': '\\\n',
      '/slash3': '$\n',
      '/raw3': '\\$\n',
    });
  });

  it('ONBUILD RUN <<EOF keeps its body in the config, and the child runs it', async () => {
    const parent = await plan('FROM base\nONBUILD RUN <<EOF\necho "hello world" >> /dest\nEOF\n');
    const trigger = parent.target.config.config?.OnBuild;
    assert.deepEqual(trigger, ['RUN <<EOF\necho "hello world" >> /dest\nEOF']);
    const child = await plan('FROM base\n', {}, parent.target.config);
    let run: Vertex = child.target.state;
    while (run.kind === 'file') run = run.parent;
    assert.equal(run.kind, 'exec');
    const args = (run as { args: string[] }).args;
    assert.equal(args[args.length - 1], 'echo "hello world" >> /dest\n');
  });
});

describe('--platform', () => {
  it('is checked against the known operating systems, architectures and variants', () => {
    for (const bad of ['!!/??', 'linux/', '/amd64', 'linux/amd65', 'linus/amd64', 'linux/arm/v9', 'a/b/c/d']) {
      const r = tryParsePlatform(bad);
      assert.ok('problem' in r, `${bad} was accepted`);
      assert.throws(() => parsePlatform(bad), (e: unknown) => e instanceof KilnError && e.message.startsWith(`invalid platform "${bad}"`) && !!e.hint);
    }
    assert.match((tryParsePlatform('linux/amd65') as { problem: string }).problem, /did you mean amd64\?/);
    assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(parsePlatform('s390x'), { os: 'linux', architecture: 's390x' });
  });

  it('the image config carries the requested platform, not the base image\'s', async () => {
    const p = await plan('FROM base\nCOPY a /\n', { platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(p.target.config.architecture, 'arm64');
    assert.equal(p.target.config.os, 'linux');
    const v = await plan('FROM base\n', { platform: { os: 'linux', architecture: 'arm', variant: 'v6' } });
    assert.deepEqual([v.target.config.architecture, v.target.config.variant], ['arm', 'v6']);
  });

  it('a RUN that cannot execute for the target platform is an error at the RUN, naming what to install', async () => {
    const e = await planError('FROM base\nCOPY a /\nRUN echo hi\n', {
      platform: { os: 'linux', architecture: 's390x' },
      executionProblem: (pl) => executionProblem(pl, AMD64, '/nonexistent-binfmt'),
    });
    assert.match(e.message, /^RUN for linux\/s390x cannot execute: no binfmt_misc handler for s390x/);
    assert.equal(e.location?.line, 3);
    assert.match(e.hint ?? '', /as root: kiln setup binfmt --platform linux\/s390x \(needs Debian's qemu-user-static\)/);
    const win = await planError('FROM base\nRUN echo hi\n', { platform: { os: 'windows', architecture: 'amd64' }, executionProblem: (pl) => executionProblem(pl, AMD64) });
    assert.match(win.message, /kiln runs Linux containers only, not windows/);
    assert.match(win.hint ?? '', /--platform linux\/ARCH/);
    // a stage on the build platform runs natively
    await plan('FROM --platform=$BUILDPLATFORM base\nRUN echo hi\n', {
      platform: { os: 'linux', architecture: 's390x' },
      executionProblem: (pl) => executionProblem(pl, AMD64, '/nonexistent-binfmt'),
    });
  });

  it('an enabled binfmt_misc handler makes a foreign platform runnable', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-binfmt-'));
    try {
      const s390x: Platform = { os: 'linux', architecture: 's390x' };
      assert.match(executionProblem(s390x, AMD64, dir) ?? '', /no binfmt_misc handler for s390x .*not even mounted/);
      writeFileSync(path.join(dir, 'register'), '');
      assert.match(executionProblem(s390x, AMD64, dir) ?? '', /no binfmt_misc handler for s390x is registered \(.*qemu-s390x\)/);
      writeFileSync(path.join(dir, 'qemu-s390x'), 'disabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: F\n');
      assert.match(executionProblem(s390x, AMD64, dir) ?? '', /qemu-s390x is disabled/);
      // without F the interpreter is looked up inside the container: not enough
      writeFileSync(path.join(dir, 'qemu-s390x'), 'enabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: P\n');
      assert.match(executionProblem(s390x, AMD64, dir) ?? '', /without the F \(fix-binary\) flag.*\/usr\/bin\/qemu-s390x-static inside the container/);
      writeFileSync(path.join(dir, 'qemu-s390x'), 'enabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: PF\noffset 0\n');
      assert.equal(executionProblem(s390x, AMD64, dir), undefined);
      mkdirSync(path.join(dir, 'sub'));
      assert.equal(executionProblem({ os: 'linux', architecture: '386' }, AMD64, dir), undefined);
      assert.equal(executionProblem(AMD64, AMD64, dir), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
