/**
 * Port of BuildKit's frontend/dockerfile/dockerfile_check_test.go (see test/buildkit/README.md):
 * each case's Dockerfile through `kiln check --format json`, BuildKit's own rules compared
 * with what the Go test expects (rule, detail, line). kiln's extra practice rules are left
 * out of the comparison. The cases are data (fixtures/checks.json).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RULES } from '../../src/dockerfile/checks/rules.js';
import { formatPlatform, hostPlatform } from '../../src/oci/platform.js';
import { repoRoot, runKiln } from '../helpers.js';
import { newRegistry, port, useHarness } from './harness.js';

interface CheckCase {
  dockerfile: string;
  dockerignore?: string;
  warnings: Array<{ rule: string; detail: string; line: number }>;
  /** what the check subrequest reports (all stages) where it differs from the build's warnings */
  unmarshalWarnings?: Array<{ rule: string; detail: string; line: number }>;
  buildErr?: string;
  attrs?: Record<string, string>;
}

const fixture = JSON.parse(await fs.readFile(path.join(repoRoot, 'test', 'buildkit', 'fixtures', 'checks.json'), 'utf8')) as { tests: Record<string, { cases: CheckCase[] }> };

/** BuildKit's build-check rules (kiln check also runs rules of its own). */
const buildkitRules = new Set([
  'StageNameCasing', 'FromAsCasing', 'NoEmptyContinuation', 'ConsistentInstructionCasing', 'DuplicateStageName', 'ReservedStageName',
  'JSONArgsRecommended', 'MaintainerDeprecated', 'UndefinedArgInFrom', 'WorkdirRelativePath', 'UndefinedVar', 'MultipleInstructionsDisallowed',
  'LegacyKeyValueFormat', 'RedundantTargetPlatform', 'SecretsUsedInArgOrEnv', 'InvalidDefaultArgInFrom', 'FromPlatformFlagConstDisallowed',
  'CopyIgnoredFile', 'InvalidBaseImagePlatform', 'ExposeProtoCasing', 'ExposeInvalidFormat', 'InvalidDefinitionDescription',
]);

/** kiln's own practice rules: skipped, so that `check=error=true` cases fail only on BuildKit's */
const kilnOnlyRules = RULES.filter((r) => r.origin === 'kiln').map((r) => r.name);

const h = useHarness();

const todos: Record<string, string> = {};

for (const [name, { cases }] of Object.entries(fixture.tests)) {
  port(name, async () => {
    const problems: string[] = [];
    for (const [i, c] of cases.entries()) {
      const files: Record<string, string> = {};
      if (c.dockerignore !== undefined) files['.dockerignore'] = c.dockerignore;
      const ctx = await h.context({ dockerfile: c.dockerfile, files });
      const args = ['check', '--format', 'json', '--skip', kilnOnlyRules.join(','), '-f', ctx.dockerfile];
      for (const [k, v] of Object.entries(c.attrs ?? {})) if (k.startsWith('build-arg:')) args.push('--build-arg', `${k.slice('build-arg:'.length)}=${v}`);
      const r = await h.kilnCommand([...args, ctx.dir]);
      const expectFailure = c.buildErr !== undefined;
      if (expectFailure !== (r.code !== 0)) problems.push(`case ${i}: exit ${r.code}${expectFailure ? `, BuildKit fails with "${c.buildErr}"` : ''}\n${r.stderr}`);
      let found: Array<{ rule: string; message: string; line: number }> = [];
      try {
        found = JSON.parse(r.stdout || '[]') as typeof found;
      } catch {
        if (!expectFailure) problems.push(`case ${i}: no JSON findings:\n${r.stdout}${r.stderr}`);
      }
      // the build's warnings are compared with their line (BuildKit's short form has it); the
      // check subrequest's only by rule and detail, as the Go test does
      const withLine = c.unmarshalWarnings === undefined;
      const show = (line: number, rule: string, text: string) => (withLine ? `${line} ` : '') + `${rule}: ${text}`;
      const got = found.filter((f) => buildkitRules.has(f.rule)).map((f) => show(f.line, f.rule, f.message)).sort();
      const want = (c.unmarshalWarnings ?? c.warnings).map((w) => show(w.line, w.rule, w.detail)).sort();
      if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`case ${i}:\n  kiln:     ${JSON.stringify(got)}\n  BuildKit: ${JSON.stringify(want)}`);
    }
    assert.deepEqual(problems, []);
  }, { todo: todos[name] });
}

// A base of another platform, pushed to a registry and pulled on a fresh root: the build warns.
// (The Go test's check subrequest sees it too; kiln check pulls nothing, so only the build's
// warning is compared.)
port('testBaseImagePlatformMismatch', async (t) => {
  const reg = await newRegistry(t);
  if (!reg) return;
  const expected = formatPlatform(hostPlatform());
  const other = hostPlatform().architecture === 'arm64' ? 'linux/amd64' : 'linux/arm64';
  const target = `${reg.host}/buildkit/testbaseimageplatform:latest`;
  const base = await h.context({ dockerfile: 'FROM scratch\nCOPY foo /foo\n', files: { foo: 'test' } });
  const pushed = await runKiln(['build', '--progress', 'plain', '--platform', other, '--push', '-t', target, base.dir], { root: h.root });
  assert.equal(pushed.code, 0, pushed.stderr);

  const r = await h.kilnBuild({ dockerfile: `\nFROM ${target}\nENV foo=bar\n\t`, root: await h.freshRoot(t), kilnArgs: ['--platform', expected] });
  assert.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.includes('InvalidBaseImagePlatform'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0], /Dockerfile:2:\d+: /, 'reported at line 2');
  assert.ok(warnings[0].endsWith(`InvalidBaseImagePlatform: Base image ${target} was pulled with platform "${other}", expected "${expected}" for current build`), warnings[0]);
  // built for the base's own platform: no warning
  const same = await h.kilnBuild({ dockerfile: `FROM ${target}\nENV foo=bar\n`, kilnArgs: ['--platform', other] });
  assert.equal(same.code, 0, same.stderr);
  assert.doesNotMatch(same.stderr, /InvalidBaseImagePlatform/);
});
