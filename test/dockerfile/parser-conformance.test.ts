import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDockerfile, dumpParseTree } from '../../src/dockerfile/index.js';
import { KilnError } from '../../src/errors.js';
import { conformanceDir } from './conformance-dir.js';

const base = join(conformanceDir(), 'buildkit-parser');
const positive = readdirSync(join(base, 'testfiles')).sort();
const negative = readdirSync(join(base, 'testfiles-negative')).sort();

test('conformance data is present', () => {
  assert.ok(positive.length >= 30, `only ${positive.length} positive cases`);
  assert.ok(negative.length >= 4, `only ${negative.length} negative cases`);
});

for (const name of positive) {
  test(`positive: ${name}`, () => {
    const dir = join(base, 'testfiles', name);
    const text = readFileSync(join(dir, 'Dockerfile'), 'utf8');
    const expected = readFileSync(join(dir, 'result'), 'utf8');
    const df = parseDockerfile(text, `${name}/Dockerfile`);
    assert.equal(dumpParseTree(df), expected);
  });
}

for (const name of negative) {
  test(`negative: ${name}`, () => {
    const text = readFileSync(join(base, 'testfiles-negative', name, 'Dockerfile'), 'utf8');
    assert.throws(() => parseDockerfile(text), (e: unknown) => {
      assert.ok(e instanceof KilnError, `expected KilnError, got ${String(e)}`);
      assert.ok(e.location, 'error has a location');
      assert.equal(e.location.file, 'Dockerfile');
      return true;
    });
  });
}
