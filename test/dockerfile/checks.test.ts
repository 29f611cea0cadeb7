import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile, parseDockerfileUntilError } from '../../src/dockerfile/parser.js';
import { formatFindings, parseCheckConfig, runChecks, RULES, type CheckFinding, type CheckOptions, type SarifLog } from '../../src/dockerfile/checks.js';
import { KilnError } from '../../src/errors.js';

function check(text: string, options: CheckOptions = {}): { findings: CheckFinding[]; failed: boolean } {
  return runChecks(parseDockerfile(text, 'Dockerfile'), options);
}

/** Rules whose trigger tests would otherwise also trip kiln's practice rules about the final stage. */
const QUIET: CheckOptions = { skip: ['FinalStageRunsAsRoot', 'BaseImageUnpinned'] };

function only(findings: CheckFinding[], rule: string): CheckFinding[] {
  return findings.filter((f) => f.rule === rule);
}

interface Case {
  rule: string;
  dockerfile: string;
  line: number;
  message?: string;
  options?: CheckOptions;
}

// one small Dockerfile per rule, each triggering it at a known line
const cases: Case[] = [
  { rule: 'StageNameCasing', dockerfile: 'FROM alpine:3 AS Builder\n', line: 1, message: "Stage name 'Builder' should be lowercase" },
  { rule: 'FromAsCasing', dockerfile: 'FROM alpine:3 as builder\n', line: 1, message: "'as' and 'FROM' keywords' casing do not match" },
  { rule: 'FromAsCasing', dockerfile: 'from alpine:3 AS builder\n', line: 1, message: "'AS' and 'from' keywords' casing do not match" },
  // BuildKit reports it at the line that ends the continued instruction
  { rule: 'NoEmptyContinuation', dockerfile: 'FROM alpine:3\nRUN echo a \\\n\n  && echo b\n', line: 4, message: 'Empty continuation line' },
  {
    rule: 'ConsistentInstructionCasing',
    dockerfile: 'FROM alpine:3\nRUN echo a\nrun echo b\nCOPY a /a\n',
    line: 3,
    message: "Command 'run' should match the case of the command majority (uppercase)",
  },
  {
    rule: 'ConsistentInstructionCasing',
    dockerfile: 'from alpine:3\nrun echo a\nRUN echo b\ncopy a /a\n',
    line: 3,
    message: "Command 'RUN' should match the case of the command majority (lowercase)",
  },
  {
    rule: 'DuplicateStageName',
    dockerfile: 'FROM alpine:3 AS base\nRUN true\nFROM alpine:3 AS base\n',
    line: 3,
    message: 'Duplicate stage name "base", stage names should be unique',
  },
  {
    rule: 'ReservedStageName',
    dockerfile: 'FROM alpine:3 AS scratch\n',
    line: 1,
    message: 'Stage name should not use the same name as reserved stage "scratch"',
  },
  {
    rule: 'JSONArgsRecommended',
    dockerfile: 'FROM alpine:3\nENTRYPOINT my-program start\n',
    line: 2,
    message: 'JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals',
  },
  { rule: 'JSONArgsRecommended', dockerfile: 'FROM alpine:3\nCMD echo hi\n', line: 2 },
  {
    rule: 'MaintainerDeprecated',
    dockerfile: 'FROM alpine:3\nMAINTAINER me <me@example.com>\n',
    line: 2,
    message: 'Maintainer instruction is deprecated in favor of using label',
  },
  {
    rule: 'UndefinedArgInFrom',
    dockerfile: 'ARG VERSION=3\nFROM alpine:${VERSIN}\n',
    line: 2,
    message: "FROM argument 'VERSIN' is not declared (did you mean VERSION?)",
  },
  {
    rule: 'WorkdirRelativePath',
    dockerfile: 'FROM nginx:1.25 AS web\nWORKDIR usr/share/nginx/html\n',
    line: 2,
    message: 'Relative workdir "usr/share/nginx/html" can have unexpected results if the base image changes',
  },
  { rule: 'UndefinedVar', dockerfile: 'FROM alpine:3 AS base\nCOPY $foo .\n', line: 2, message: "Usage of undefined variable '$foo'" },
  {
    rule: 'UndefinedVar',
    dockerfile: 'FROM alpine:3\nENV PATH=$PAHT:/app/bin\n',
    line: 2,
    message: "Usage of undefined variable '$PAHT' (did you mean $PATH?)",
  },
  {
    rule: 'MultipleInstructionsDisallowed',
    dockerfile: 'FROM alpine:3\nCMD ["a"]\nRUN true\nCMD ["b"]\n',
    line: 2,
    message: 'Multiple CMD instructions should not be used in the same stage because only the last one will be used',
  },
  {
    rule: 'LegacyKeyValueFormat',
    dockerfile: 'FROM alpine:3\nENV foo bar\n',
    line: 2,
    message: '"ENV key=value" should be used instead of legacy "ENV key value" format',
  },
  { rule: 'LegacyKeyValueFormat', dockerfile: 'FROM alpine:3\nLABEL maintainer me\n', line: 2 },
  {
    rule: 'RedundantTargetPlatform',
    dockerfile: 'FROM --platform=$TARGETPLATFORM alpine:3 AS builder\n',
    line: 1,
    message: 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
  },
  {
    rule: 'SecretsUsedInArgOrEnv',
    dockerfile: 'FROM scratch\nARG AWS_SECRET_ACCESS_KEY\n',
    line: 2,
    message: 'Do not use ARG or ENV instructions for sensitive data (ARG "AWS_SECRET_ACCESS_KEY")',
  },
  { rule: 'SecretsUsedInArgOrEnv', dockerfile: 'FROM alpine:3\nENV DB_PASSWORD=hunter2\n', line: 2 },
  {
    rule: 'InvalidDefaultArgInFrom',
    dockerfile: 'ARG TAG\nFROM busybox:${TAG}\n',
    line: 2,
    message: 'Default value for ARG busybox:${TAG} results in empty or invalid base image name',
  },
  {
    rule: 'FromPlatformFlagConstDisallowed',
    dockerfile: 'FROM --platform=linux/amd64 alpine:3 AS base\n',
    line: 1,
    message: 'FROM --platform flag should not use constant value "linux/amd64"',
  },
  {
    rule: 'CopyIgnoredFile',
    dockerfile: 'FROM scratch\nCOPY ./tmp/helloworld.txt /helloworld.txt\n',
    line: 2,
    message: 'Attempting to Copy file "tmp/helloworld.txt" that is excluded by .dockerignore',
    options: { dockerignorePatterns: ['tmp'] },
  },
  {
    rule: 'CopyIgnoredFile',
    dockerfile: 'FROM scratch\nCOPY . /app\n',
    line: 2,
    message: 'Attempting to Copy file "." that is excluded by .dockerignore',
    options: { dockerignorePatterns: ['*'] },
  },
  {
    rule: 'InvalidDefinitionDescription',
    dockerfile: '# check=experimental=InvalidDefinitionDescription\n# the version to build\nARG VERSION=1\nFROM scratch\n',
    line: 3,
    message: 'Comment for ARG should follow the format: `# VERSION <description>`',
  },
  {
    rule: 'InvalidDefinitionDescription',
    dockerfile: '# check=experimental=InvalidDefinitionDescription\nFROM scratch\n# builds things\nFROM scratch AS Build\n',
    line: 4,
    message: 'Comment for FROM should follow the format: `# build <description>`',
  },
  {
    rule: 'ExposeProtoCasing',
    dockerfile: 'FROM alpine:3\nEXPOSE 80/TcP\n',
    line: 2,
    message: "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
  },
  {
    rule: 'ExposeInvalidFormat',
    dockerfile: 'FROM alpine:3\nEXPOSE 127.0.0.1:80:80\n',
    line: 2,
    message: "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
  },
  { rule: 'ExposeInvalidFormat', dockerfile: 'FROM alpine:3\nEXPOSE 80:80\n', line: 2 },
  // kiln's rules
  {
    rule: 'DependencyInstallAfterCopyAll',
    dockerfile: 'FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\n',
    line: 4,
    message: "'npm ci' runs after 'COPY . .' (line 3): any source change re-runs the install",
  },
  { rule: 'DependencyInstallAfterCopyAll', dockerfile: 'FROM python:3.12\nWORKDIR /app\nCOPY . /app\nRUN pip install -r requirements.txt\n', line: 4 },
  { rule: 'DependencyInstallAfterCopyAll', dockerfile: 'FROM golang:1.22\nWORKDIR /src\nCOPY . .\nRUN go mod download && go build ./...\n', line: 4 },
  { rule: 'DependencyInstallAfterCopyAll', dockerfile: 'FROM node:20\nCOPY . .\nRUN yarn --frozen-lockfile && yarn build\n', line: 3 },
  { rule: 'AptListsNotCleaned', dockerfile: 'FROM debian:12\nRUN apt-get update && apt-get install -y curl\n', line: 2 },
  { rule: 'BaseImageUnpinned', dockerfile: 'FROM node\n', line: 1, message: 'Base image "node" is not pinned to a tag or digest' },
  { rule: 'BaseImageUnpinned', dockerfile: 'FROM alpine:3\nFROM node:latest\n', line: 2, message: `Base image "node:latest" uses the mutable 'latest' tag` },
  { rule: 'BaseImageUnpinned', dockerfile: 'ARG IMAGE=alpine\nFROM ${IMAGE}\n', line: 2 },
  { rule: 'FinalStageRunsAsRoot', dockerfile: 'FROM alpine:3\nRUN true\n', line: 1, message: 'Final stage sets no USER: the image runs as root' },
  {
    rule: 'FinalStageRunsAsRoot',
    dockerfile: 'FROM alpine:3 AS app\nUSER 1000\nRUN true\nUSER root\n',
    line: 4,
    message: "Final stage 'app' switches to USER root: the image runs as root",
  },
  { rule: 'FinalStageRunsAsRoot', dockerfile: 'FROM alpine:3 AS app\nUSER 0:0\n', line: 2 },
  { rule: 'AddInsteadOfCopy', dockerfile: 'FROM alpine:3\nADD src/ /app/\n', line: 2 },
  {
    rule: 'CopyAllWithoutDockerignore',
    dockerfile: 'FROM alpine:3\nCOPY . /app\n',
    line: 2,
    message: 'COPY copies the whole build context, but the context has no .dockerignore',
    options: { hasDockerignore: false },
  },
];

describe('build checks: each rule triggers', () => {
  for (const c of cases) {
    it(`${c.rule} at line ${c.line}: ${c.dockerfile.trim().split('\n').slice(-2).join(' | ').slice(0, 70)}`, () => {
      const keepKiln = ['FinalStageRunsAsRoot', 'BaseImageUnpinned'].includes(c.rule);
      const { findings } = check(c.dockerfile, { ...(keepKiln ? {} : QUIET), ...c.options });
      const hits = only(findings, c.rule);
      assert.ok(hits.length > 0, `expected ${c.rule}, got ${JSON.stringify(findings.map((f) => `${f.rule}@${f.line}`))}`);
      assert.ok(hits.some((f) => f.line === c.line), `expected ${c.rule} at line ${c.line}, got lines ${hits.map((f) => f.line).join(',')}`);
      const hit = hits.find((f) => f.line === c.line)!;
      if (c.message !== undefined) assert.equal(hit.message, c.message);
      assert.equal(hit.severity, 'warning');
      assert.ok(hit.description.length > 20, 'a finding explains itself');
    });
  }

  it('covers every rule in the catalogue', () => {
    const tested = new Set(cases.map((c) => c.rule));
    assert.deepEqual(RULES.map((r) => r.name).filter((n) => !tested.has(n)), []);
  });
});

describe('build checks: what must not trigger', () => {
  const clean = (text: string, rule: string, options: CheckOptions = {}): void => {
    const { findings } = check(text, { ...QUIET, ...options });
    assert.deepEqual(only(findings, rule).map((f) => f.message), [], `${rule} should not trigger`);
  };

  it('JSONArgsRecommended: not for exec form, nor after an explicit SHELL (also from a base stage)', () => {
    clean('FROM alpine:3\nENTRYPOINT ["my-program", "start"]\n', 'JSONArgsRecommended');
    clean('FROM alpine:3\nSHELL ["/bin/bash", "-c"]\nENTRYPOINT echo hello\n', 'JSONArgsRecommended');
    clean('FROM alpine:3 AS base\nSHELL ["/bin/sh", "-c"]\nFROM base\nCMD echo hi\n', 'JSONArgsRecommended');
  });

  it('UndefinedVar: not for ARGs declared without a value, ENV set earlier, base-stage vars, or PATH', () => {
    clean('FROM alpine:3 AS base\nARG foo\nCOPY $foo .\n', 'UndefinedVar');
    clean('FROM alpine:3\nENV APP=/app\nWORKDIR $APP\nENV PATH=$PATH:/app/bin\n', 'UndefinedVar');
    clean('FROM alpine:3 AS base\nENV X=1\nFROM base\nCOPY $X /x\n', 'UndefinedVar');
    clean("FROM alpine:3\nRUN echo $NOT_CHECKED_IN_RUN\nCOPY '$literal' /x\n", 'UndefinedVar');
  });

  it('UndefinedVar: base image env from the imageConfig option counts as defined', () => {
    clean('FROM node:20\nWORKDIR /app/$NODE_VERSION\n', 'UndefinedVar', {
      imageConfig: (ref) => (ref === 'node:20' ? { env: ['NODE_VERSION=20.11.1'] } : undefined),
    });
  });

  it('UndefinedVar: a stage does not see ENV of an unrelated stage', () => {
    const { findings } = check('FROM alpine:3 AS a\nENV X=1\nFROM alpine:3 AS b\nCOPY $X /x\n', QUIET);
    assert.deepEqual(only(findings, 'UndefinedVar').map((f) => f.line), [4]);
  });

  it('UndefinedArgInFrom / InvalidDefaultArgInFrom: not with declared ARGs, defaults or ${X:-default}', () => {
    clean('ARG TAG=latest\nFROM busybox:${TAG}\n', 'InvalidDefaultArgInFrom');
    clean('ARG VARIANT\nFROM busybox:stable${VARIANT}\n', 'InvalidDefaultArgInFrom');
    clean('ARG TAG\nFROM alpine:${TAG:-3.14}\n', 'InvalidDefaultArgInFrom');
    clean('ARG TAG\nFROM alpine:${TAG:-3.14}\n', 'UndefinedArgInFrom');
    clean('FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n', 'UndefinedArgInFrom');
  });

  it('FromPlatformFlagConstDisallowed: not with variables or a stage named after the platform', () => {
    clean('FROM --platform=${BUILDPLATFORM} alpine:3 AS base\n', 'FromPlatformFlagConstDisallowed');
    clean('FROM --platform=linux/amd64 alpine:3 AS build_amd64\n', 'FromPlatformFlagConstDisallowed');
  });

  it('WorkdirRelativePath: only the first WORKDIR of a stage chain matters', () => {
    clean('FROM alpine:3\nWORKDIR /app\nWORKDIR src\n', 'WorkdirRelativePath');
    clean('FROM alpine:3 AS base\nWORKDIR /app\nFROM base\nWORKDIR src\n', 'WorkdirRelativePath');
  });

  it('SecretsUsedInArgOrEnv: token must be a whole _-separated word; public/file/version are allowed', () => {
    for (const name of ['PUBLIC_KEY', 'SECRET_FILE', 'TOKEN_VERSION', 'KEYBOARD', 'MONKEY', 'AUTHOR']) {
      clean(`FROM alpine:3\nARG ${name}=x\n`, 'SecretsUsedInArgOrEnv');
    }
  });

  it('MultipleInstructionsDisallowed: one per stage is fine, also across stages', () => {
    clean('FROM alpine:3 AS a\nCMD ["a"]\nFROM a\nCMD ["b"]\n', 'MultipleInstructionsDisallowed');
  });

  it('ConsistentInstructionCasing and FromAsCasing: consistent files are quiet', () => {
    clean('from alpine:3 as base\nrun true\n', 'ConsistentInstructionCasing');
    clean('from alpine:3 as base\nrun true\n', 'FromAsCasing');
  });

  it('CopyIgnoredFile: not with ! exceptions, other paths, --from, or the context root unless every entry is ignored', () => {
    clean('FROM scratch\nCOPY tmp/a /a\n', 'CopyIgnoredFile', { dockerignorePatterns: ['tmp', '!tmp/a'] });
    clean('FROM scratch\nCOPY src/a /a\n', 'CopyIgnoredFile', { dockerignorePatterns: ['tmp'] });
    clean('FROM scratch AS b\nFROM scratch\nCOPY --from=b tmp/a /a\n', 'CopyIgnoredFile', { dockerignorePatterns: ['tmp'] });
    clean('FROM scratch\nCOPY . /app\nCOPY ./ /app\n', 'CopyIgnoredFile', { dockerignorePatterns: ['.*', 'tmp'] });
  });

  it('InvalidDefinitionDescription: experimental; a comment naming the ARG or stage, or none, is fine', () => {
    const on = '# check=experimental=InvalidDefinitionDescription\n';
    clean('# the version\nARG VERSION=1\nFROM scratch\n', 'InvalidDefinitionDescription');
    clean(`${on}# VERSION the version\nARG VERSION=1\nFROM scratch\n`, 'InvalidDefinitionDescription');
    clean(`${on}# B the b\nARG A=1 B=2\nFROM scratch\n`, 'InvalidDefinitionDescription');
    clean(`${on}# not a description\n#\nARG VERSION=1\nFROM scratch\n# unnamed stage\nFROM scratch\n`, 'InvalidDefinitionDescription');
  });

  it('AptListsNotCleaned: not when lists are removed or on a cache mount', () => {
    clean('FROM debian:12\nRUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n', 'AptListsNotCleaned');
    clean('FROM debian:12\nRUN --mount=type=cache,target=/var/lib/apt apt-get update && apt-get install -y curl\n', 'AptListsNotCleaned');
  });

  it('DependencyInstallAfterCopyAll: not when manifests are copied and installed first', () => {
    clean('FROM node:20\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\n', 'DependencyInstallAfterCopyAll');
    clean('FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm install -g pnpm\n', 'DependencyInstallAfterCopyAll');
    clean('FROM node:20 AS deps\nCOPY . .\nFROM node:20\nRUN npm ci\n', 'DependencyInstallAfterCopyAll');
  });

  it('BaseImageUnpinned: not for scratch, earlier stages, digests or ARGs that resolve to a tag', () => {
    clean('FROM scratch\n', 'BaseImageUnpinned');
    clean('FROM alpine:3 AS base\nFROM base\n', 'BaseImageUnpinned');
    clean(`FROM alpine@sha256:${'a'.repeat(64)}\n`, 'BaseImageUnpinned');
    clean('ARG V=3.19\nFROM alpine:${V}\n', 'BaseImageUnpinned');
    clean('ARG IMAGE=alpine\nFROM ${IMAGE}\n', 'BaseImageUnpinned', { buildArgs: { IMAGE: 'alpine:3.19' } });
  });

  it('FinalStageRunsAsRoot: USER in a base stage counts, and the target decides the final stage', () => {
    clean('FROM alpine:3 AS base\nUSER app\nFROM base\nRUN true\n', 'FinalStageRunsAsRoot');
    clean('FROM alpine:3 AS app\nUSER 1000\nFROM alpine:3 AS debug\n', 'FinalStageRunsAsRoot', { target: 'app' });
    clean('FROM gcr.io/distroless/static:nonroot\n', 'FinalStageRunsAsRoot', { imageConfig: () => ({ user: '65532' }) });
  });

  it('AddInsteadOfCopy: not for URLs, git sources or local archives', () => {
    clean('FROM alpine:3\nADD https://example.com/a.txt /a\n', 'AddInsteadOfCopy');
    clean('FROM alpine:3\nADD git@github.com:moby/buildkit.git /src\n', 'AddInsteadOfCopy');
    clean('FROM alpine:3\nADD rootfs.tar.gz /\n', 'AddInsteadOfCopy');
  });

  it('CopyAllWithoutDockerignore: quiet when a .dockerignore exists or when unknown', () => {
    clean('FROM alpine:3\nCOPY . /app\n', 'CopyAllWithoutDockerignore', { hasDockerignore: true });
    clean('FROM alpine:3\nCOPY . /app\n', 'CopyAllWithoutDockerignore');
    clean('FROM alpine:3 AS a\nFROM alpine:3\nCOPY --from=a . /app\n', 'CopyAllWithoutDockerignore', { hasDockerignore: false });
  });
});

describe('build checks: configuration', () => {
  const bad = 'FROM alpine:3 as Builder\nCMD echo hi\n';

  it('parses the check directive like BuildKit', () => {
    const c = parseCheckConfig('skip=JSONArgsRecommended, StageNameCasing;error=true');
    assert.deepEqual([...c.skip], ['JSONArgsRecommended', 'StageNameCasing']);
    assert.equal(c.error, true);
    assert.equal(parseCheckConfig('skip=all').skipAll, true);
    assert.equal(parseCheckConfig('experimental=all').experimentalAll, true);
    assert.throws(() => parseCheckConfig('bogus=1'), /invalid check option "bogus"/);
    assert.throws(() => parseCheckConfig('error=maybe'), /failed to parse check option/);
    assert.throws(() => parseCheckConfig('skip'), /invalid check option/);
  });

  it('an invalid directive is a KilnError pointing at its line', () => {
    assert.throws(
      () => check('# check=frobnicate\nFROM alpine:3\n'),
      (e: unknown) => e instanceof KilnError && e.location?.line === 1 && /failed to parse check options/.test(e.message),
    );
  });

  it('# check=skip= skips the listed rules', () => {
    const { findings } = check(`# check=skip=JSONArgsRecommended,FromAsCasing\n${bad}`, QUIET);
    assert.deepEqual(findings.map((f) => f.rule), ['StageNameCasing']);
  });

  it('# check=skip=all skips everything', () => {
    const r = check(`# check=skip=all;error=true\n${bad}`);
    assert.deepEqual(r.findings, []);
    assert.equal(r.failed, false);
  });

  it('# check=error=true makes findings errors and the check fail', () => {
    const r = check(`# check=error=true\n${bad}`, QUIET);
    assert.equal(r.failed, true);
    assert.ok(r.findings.length > 0);
    assert.ok(r.findings.every((f) => f.severity === 'error'));
    assert.equal(check('# check=error=true\nFROM alpine:3\nUSER 1\n').failed, false, 'no findings, no failure');
  });

  it('options combine with the directive: skip adds, errorOnWarnings overrides', () => {
    const r = check(`# check=skip=JSONArgsRecommended\n${bad}`, { skip: ['StageNameCasing', ...QUIET.skip!] });
    assert.deepEqual(r.findings.map((f) => f.rule), ['FromAsCasing']);
    assert.equal(r.failed, false);
    assert.equal(check(`# check=error=true\n${bad}`, { ...QUIET, errorOnWarnings: false }).failed, false);
    assert.equal(check(bad, { ...QUIET, errorOnWarnings: true }).failed, true);
  });

  it('BUILDKIT_DOCKERFILE_CHECK build arg replaces the directive', () => {
    const r = check(`# check=skip=all\n${bad}`, { ...QUIET, buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=StageNameCasing;error=true' } });
    assert.deepEqual(r.findings.map((f) => f.rule).sort(), ['FromAsCasing', 'JSONArgsRecommended']);
    assert.equal(r.failed, true);
  });

  it('experimental rules run when enabled even if skip=all', () => {
    const r = check('# check=skip=all;experimental=InvalidDefinitionDescription\n# a comment\nARG A\nFROM scratch\nCOPY tmp/a /a\n', { dockerignorePatterns: ['tmp/'] });
    assert.deepEqual(r.findings.map((f) => f.rule), ['InvalidDefinitionDescription']);
  });

  it('a # check= comment above an instruction configures the rules reported at it, as in BuildKit', () => {
    const text = [
      'FROM scratch',
      '# check=skip=JSONArgsRecommended // shell form on purpose',
      'CMD run-a',
      'ENTRYPOINT run-b',
      '# check=skip=all',
      'MAINTAINER me',
      '# check=skip=WorkdirRelativePath',
      '',
      'WORKDIR app',
      '# check=bogus',
      'ENV a b',
      '# check=skip=LegacyKeyValueFormat',
      '#',
      'LABEL a b',
    ].join('\n');
    const got = check(text, QUIET).findings.map((f) => `${f.line} ${f.rule}`);
    // an empty line keeps the comment, an empty # drops it, a malformed one is ignored
    assert.deepEqual(got, ['4 JSONArgsRecommended', '11 LegacyKeyValueFormat', '14 LegacyKeyValueFormat']);
    // the rules BuildKit runs over the whole file are configured by the directive only
    const casing = check('FROM scratch\n# check=skip=ConsistentInstructionCasing\nrun true\nRUN true\nRUN true\n', QUIET).findings;
    assert.deepEqual(only(casing, 'ConsistentInstructionCasing').map((f) => f.line), [3]);
    // a comment above FROM covers the stage's FROM rules, not its commands
    const stage = 'FROM ${Y:-busybox:1} AS Base\nCMD run\n';
    const plain = check(`FROM scratch\n${stage}`, QUIET).findings.map((f) => f.rule);
    assert.deepEqual(plain.sort(), ['JSONArgsRecommended', 'StageNameCasing', 'UndefinedArgInFrom']);
    const from = check(`FROM scratch\n# check=skip=StageNameCasing,UndefinedArgInFrom\n${stage}`, QUIET).findings.map((f) => f.rule);
    assert.deepEqual(from, ['JSONArgsRecommended']);
  });

  it('a FROM whose platform or base name expands to nothing (or to no platform) stops the checks with the build\'s error', () => {
    const r = runChecks(parseDockerfile('FROM --platform=$BULIDPLATFORM scratch AS Base\nCMD x\n'), QUIET);
    assert.deepEqual(r.findings.map((f) => f.rule).sort(), ['StageNameCasing', 'UndefinedArgInFrom']);
    assert.equal(r.failed, true);
    assert.ok(r.error instanceof KilnError);
    assert.equal(r.error.message, 'empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)');
    assert.equal(r.error.location?.line, 1);
    const bad = runChecks(parseDockerfile('ARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox:1\n'), QUIET);
    assert.match(bad.error?.message ?? '', /^failed to parse platform linux\/\$\{MYARCH\}: .* \(did you mean MY_ARCH\?\)$/);
    const blank = runChecks(parseDockerfile('ARG IMAGE\nFROM $IMAGE\n'), QUIET);
    assert.match(blank.error?.message ?? '', /^base name \(\$IMAGE\) should not be blank/);
    assert.equal(runChecks(parseDockerfile('ARG IMAGE\nFROM $IMAGE\n'), { ...QUIET, buildArgs: { IMAGE: 'busybox:1' } }).error, undefined);
  });

  it('before an unknown instruction: the parse-time rules of the lines above it and every empty continuation', () => {
    const { dockerfile, error } = parseDockerfileUntilError('FROM scratch AS Bad\nMAINTAINER me\nCMD x\nBADCMD\nRUN a \\\n\n b\n');
    assert.match(error?.message ?? '', /^unknown instruction: BADCMD/);
    assert.equal(error?.location?.line, 4);
    const r = runChecks(dockerfile, { ...QUIET, parseTimeOnly: true });
    assert.deepEqual(r.findings.map((f) => `${f.line} ${f.rule}`), ['1 StageNameCasing', '2 MaintainerDeprecated', '7 NoEmptyContinuation']);
  });

  it('with a target, dispatch-time rules only see reachable stages; parse-time rules see all', () => {
    const text = 'FROM alpine:3 AS Unused\nCMD echo unused\nFROM alpine:3 AS deps\nENV A=1\nFROM alpine:3 AS app\nCOPY --from=deps /a /a\nCMD echo app\n';
    const all = check(text, QUIET).findings;
    assert.deepEqual(only(all, 'JSONArgsRecommended').map((f) => f.line), [2, 7]);
    const targeted = check(text, { ...QUIET, target: 'app' }).findings;
    assert.deepEqual(only(targeted, 'JSONArgsRecommended').map((f) => f.line), [7]);
    assert.deepEqual(only(targeted, 'StageNameCasing').map((f) => f.line), [1]);
    assert.throws(() => check(text, { target: 'nope' }), /target stage "nope" could not be found/);
  });

  it('build args feed ARG values', () => {
    const text = 'ARG BASE\nFROM ${BASE}\n';
    assert.equal(only(check(text).findings, 'InvalidDefaultArgInFrom').length, 1, 'defaults alone are checked');
    assert.deepEqual(only(check(text, { buildArgs: { BASE: 'node' } }).findings, 'BaseImageUnpinned').map((f) => f.message), [
      'Base image "node" is not pinned to a tag or digest',
    ]);
  });
});

describe('build checks: output formats', () => {
  const text = 'FROM alpine:3\n\nENTRYPOINT my-program start\n';
  const df = parseDockerfile(text, 'Dockerfile');
  const { findings } = runChecks(df, QUIET);

  it('text: file:line rule: message, the source line and the explanation', () => {
    const out = formatFindings(findings, df, 'text');
    assert.match(out, /^Dockerfile:3 JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals\n/);
    assert.match(out, /\n 3 \| ENTRYPOINT my-program start\n/);
    assert.match(out, /exec form/);
    assert.match(out, /https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/json-args-recommended\//);
    assert.match(out, /Check complete, 1 warning found\.\n$/);
    assert.equal(formatFindings([], df, 'text'), 'Check complete, no warnings found.\n');
  });

  it('json: the findings array', () => {
    const parsed = JSON.parse(formatFindings(findings, df, 'json')) as CheckFinding[];
    assert.deepEqual(parsed, findings);
    assert.equal(parsed[0].rule, 'JSONArgsRecommended');
    assert.equal(parsed[0].line, 3);
    assert.equal(parsed[0].column, 1);
  });

  it('sarif: a SARIF 2.1.0 log with rules and located results', () => {
    const log = JSON.parse(formatFindings(findings, df, 'sarif')) as SarifLog;
    assert.equal(log.version, '2.1.0');
    assert.match(log.$schema, /sarif-2\.1\.0/);
    assert.equal(log.runs.length, 1);
    const driver = log.runs[0].tool.driver;
    assert.equal(driver.name, 'kiln');
    assert.equal(driver.rules.length, RULES.length);
    for (const r of driver.rules) {
      assert.equal(typeof r.id, 'string');
      assert.ok(r.shortDescription.text.length > 0);
      assert.ok(r.fullDescription.text.length > 0);
      if (r.helpUri !== undefined) assert.match(r.helpUri, /^https:\/\//);
      assert.ok(['warning', 'error', 'note', 'none'].includes(r.defaultConfiguration.level));
    }
    const results = log.runs[0].results;
    assert.equal(results.length, 1);
    const res = results[0];
    assert.equal(res.ruleId, 'JSONArgsRecommended');
    assert.equal(driver.rules[res.ruleIndex].id, res.ruleId);
    assert.equal(res.level, 'warning');
    assert.equal(res.message.text, findings[0].message);
    const loc = res.locations[0].physicalLocation;
    assert.equal(loc.artifactLocation.uri, 'Dockerfile');
    assert.deepEqual(loc.region, { startLine: 3, endLine: 3, startColumn: 1 });
  });

  it('sarif: error severity maps to level error', () => {
    const strict = parseDockerfile(`# check=error=true\n${text}`, 'app/Dockerfile');
    const r = runChecks(strict, QUIET);
    const log = JSON.parse(formatFindings(r.findings, strict, 'sarif')) as SarifLog;
    assert.equal(log.runs[0].results[0].level, 'error');
    assert.equal(log.runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri, 'app/Dockerfile');
  });
});
