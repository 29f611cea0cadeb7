import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { repoRoot, runKiln, tempDir } from '../helpers.js';
import type { SarifLog } from '../../src/dockerfile/checks.js';

const fixtures = path.join(repoRoot, 'test', 'fixtures', 'checks');

describe('kiln check (CLI)', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir: root, cleanup } = await tempDir('kiln-check-root-'));
  });
  after(async () => cleanup());

  const kiln = (args: string[], input?: string) => runKiln(['check', ...args], { root, cwd: repoRoot, input });

  it('a clean, well-ordered multi-stage Dockerfile with a .dockerignore has no findings (exit 0)', async () => {
    const r = await kiln([path.join(fixtures, 'clean')]);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, 'Check complete, no warnings found.\n');
    assert.equal(r.code, 0);
  });

  it('warnings only: exit 0, text output names file:line, rule, source line and explanation', async () => {
    const r = await kiln([path.join(fixtures, 'bad')]);
    assert.equal(r.code, 0, r.stderr);
    const file = path.join('test', 'fixtures', 'checks', 'bad', 'Dockerfile');
    assert.ok(
      r.stdout.includes(`${file}:8 JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals\n 8 | CMD node server.js\n`),
      r.stdout,
    );
    for (const rule of [
      'BaseImageUnpinned', 'MaintainerDeprecated', 'WorkdirRelativePath', 'CopyAllWithoutDockerignore',
      'DependencyInstallAfterCopyAll', 'LegacyKeyValueFormat', 'SecretsUsedInArgOrEnv', 'ExposeProtoCasing', 'FinalStageRunsAsRoot',
    ]) {
      assert.match(r.stdout, new RegExp(`Dockerfile:\\d+ ${rule}: `), rule);
    }
    assert.match(r.stdout, /Check complete, 10 warnings found\.\n$/);
  });

  it('--error turns findings into a failure (exit 1)', async () => {
    const r = await kiln(['--error', path.join(fixtures, 'bad')]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Check complete, 10 errors found\./);
  });

  it('# check=error=true in the Dockerfile fails the check (exit 1); --skip of the rule makes it pass', async () => {
    const dir = path.join(fixtures, 'strict');
    const r = await kiln([dir]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Dockerfile:5 MultipleInstructionsDisallowed: Multiple ENTRYPOINT instructions/);
    const skipped = await kiln(['--skip', 'MultipleInstructionsDisallowed', dir]);
    assert.equal(skipped.code, 0, skipped.stdout);
  });

  it('--format json prints the findings array', async () => {
    const r = await kiln(['--format', 'json', path.join(fixtures, 'bad')]);
    assert.equal(r.code, 0);
    const findings = JSON.parse(r.stdout) as { rule: string; line: number }[];
    assert.equal(findings.length, 10);
    assert.ok(findings.some((f) => f.rule === 'JSONArgsRecommended' && f.line === 8));
  });

  it('--format sarif prints a SARIF 2.1.0 log', async () => {
    const r = await kiln(['--format', 'sarif', '-f', path.join(fixtures, 'strict', 'Dockerfile'), fixtures]);
    assert.equal(r.code, 1);
    const log = JSON.parse(r.stdout) as SarifLog;
    assert.equal(log.version, '2.1.0');
    const res = log.runs[0].results;
    assert.equal(res.length, 1);
    assert.equal(res[0].ruleId, 'MultipleInstructionsDisallowed');
    assert.equal(res[0].level, 'error');
    assert.equal(res[0].locations[0].physicalLocation.region.startLine, 5);
  });

  it('-f - reads the Dockerfile from stdin; --target and --build-arg reach the rules', async () => {
    const text = 'ARG BASE=alpine:3.19\nFROM ${BASE} AS app\nUSER 1000\nFROM alpine:3.19 AS debug\nCMD sh\n';
    const all = await kiln(['--format', 'json', '-f', '-', fixtures], text);
    assert.deepEqual((JSON.parse(all.stdout) as { rule: string }[]).map((f) => f.rule), ['FinalStageRunsAsRoot', 'JSONArgsRecommended']);
    const app = await kiln(['--format', 'json', '--target', 'app', '--build-arg', 'BASE=node', '-f', '-', fixtures], text);
    assert.deepEqual((JSON.parse(app.stdout) as { rule: string }[]).map((f) => f.rule), ['BaseImageUnpinned']);
  });

  it('a Dockerfile the build rejects: the findings before the error on stdout, the error on stderr, exit 1', async () => {
    const text = 'FROM alpine:3 AS Bad\nMAINTAINER me\nBADCMD\n';
    const r = await kiln(['--format', 'json', '--skip', 'BaseImageUnpinned,FinalStageRunsAsRoot', '-f', '-', fixtures], text);
    assert.equal(r.code, 1);
    assert.deepEqual((JSON.parse(r.stdout) as { rule: string; line: number }[]).map((f) => `${f.line} ${f.rule}`), ['1 StageNameCasing', '2 MaintainerDeprecated']);
    assert.match(r.stderr, /^error: Dockerfile:3:1: unknown instruction: BADCMD/);
    const platform = await kiln(['--format', 'json', '-f', '-', fixtures], 'FROM --platform=$BULIDPLATFORM scratch\n');
    assert.equal(platform.code, 1);
    assert.deepEqual((JSON.parse(platform.stdout) as { rule: string }[]).map((f) => f.rule), ['UndefinedArgInFrom']);
    assert.match(platform.stderr, /empty platform value from expression \$BULIDPLATFORM \(did you mean BUILDPLATFORM\?\)/);
  });

  it('user errors are one-line KilnErrors, never stack traces', async () => {
    const { dir, cleanup: rm } = await tempDir('kiln-check-ctx-');
    try {
      const missing = await kiln([dir]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^error: Dockerfile not found: /);
      await fs.writeFile(path.join(dir, 'Dockerfile'), 'FROM alpine:3\nFROBNICATE x\n');
      const bad = await kiln([dir]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /unknown instruction: FROBNICATE/);
      assert.doesNotMatch(bad.stderr, /\n\s+at /);
      const badTarget = await kiln(['--target', 'nope', path.join(fixtures, 'clean')]);
      assert.equal(badTarget.code, 1);
      assert.match(badTarget.stderr, /target stage "nope" could not be found/);
      const badFormat = await kiln(['--format', 'xml', path.join(fixtures, 'clean')]);
      assert.equal(badFormat.code, 1);
      assert.match(badFormat.stderr, /unknown --format "xml"/);
    } finally {
      await rm();
    }
  });
});
