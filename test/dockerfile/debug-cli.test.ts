import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir } from './conformance-dir.js';

const cases = join(conformanceDir(), 'buildkit-parser', 'testfiles');

function kiln(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/kiln.js', ...args], { input, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const name of ['flags', 'env', 'lk4d4-the-edge-case-generator', 'escape']) {
  test(`kiln debug parse -f ${name}/Dockerfile prints BuildKit's dump`, () => {
    const r = kiln(['debug', 'parse', '-f', join(cases, name, 'Dockerfile')]);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    assert.equal(r.stdout, readFileSync(join(cases, name, 'result'), 'utf8'));
  });
}

test('kiln debug parse -f - reads stdin', () => {
  const r = kiln(['debug', 'parse', '-f', '-'], 'FROM a\nRUN ["x"]\n');
  assert.equal(r.status, 0);
  assert.equal(r.stdout, '(from "a")\n(run "x")\n');
});

test('kiln debug parse reports syntax errors with file:line:col and no stack', () => {
  const r = kiln(['debug', 'parse', '-f', '-'], 'FROM a\n\nRUNN x\n');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^error: Dockerfile:3:1: unknown instruction: RUNN \(did you mean RUN\?\)\n/);
  assert.match(r.stderr, /hint: replace RUNN with RUN/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
});

test('kiln debug parse with a missing file fails cleanly', () => {
  const r = kiln(['debug', 'parse', '-f', '/nonexistent/Dockerfile']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^error: cannot read \/nonexistent\/Dockerfile/);
});
