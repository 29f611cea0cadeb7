import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShellLexer, expandWord, expandWords } from '../../src/dockerfile/index.js';
import { KilnError } from '../../src/errors.js';
import { conformanceDir } from './conformance-dir.js';

const shellDir = join(conformanceDir(), 'buildkit-shell');

test('envVarTest: every A and U line (ProcessWord)', () => {
  const env = { PWD: '/home', SHELL: 'bash', KOREAN: '한국어', NULL: '' };
  const lines = readFileSync(join(shellDir, 'envVarTest'), 'utf8').split('\n');
  let checked = 0;
  for (const line of lines) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const parts = line.split('|');
    assert.equal(parts.length, 3, `bad line ${line}`);
    const [platform, word, expected] = parts.map((p) => p.trim()) as [string, string, string];
    if (platform === 'W') continue;
    assert.ok(platform === 'A' || platform === 'U', `platform ${platform}`);
    if (expected === 'error') {
      assert.throws(() => expandWord(word, env), KilnError, `expected error for ${word}`);
    } else {
      assert.equal(expandWord(word, env), expected, `word ${word}`);
    }
    checked++;
  }
  assert.ok(checked > 200, `only ${checked} cases`);
});

test('wordsTest: every line (ProcessWords)', () => {
  const env: Record<string, string> = {};
  const lines = readFileSync(join(shellDir, 'wordsTest'), 'utf8').split('\n');
  let checked = 0;
  for (const line of lines) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (line.startsWith('ENV ')) {
      const kv = line.slice(4).trimStart();
      const eq = kv.indexOf('=');
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
      continue;
    }
    const bar = line.indexOf('|');
    const word = line.slice(0, bar).trim();
    const expected = line.slice(bar + 1).trimStart();
    if (expected === 'error') {
      assert.throws(() => expandWords(word, env), KilnError, `expected error for ${word}`);
    } else {
      assert.deepEqual(expandWords(word, env), expected.split(','), `word ${word}`);
    }
    checked++;
  }
  assert.ok(checked >= 20, `only ${checked} cases`);
});

test('ShellLexer class matches the functions', () => {
  const lex = new ShellLexer();
  assert.equal(lex.processWord('a${B}c', { B: 'x' }), 'axc');
  assert.deepEqual(lex.processWords('a ${B}', { B: 'x y' }), ['a', 'x', 'y']);
});
