import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShellLexer, expandWord, expandWords } from '../../src/dockerfile/index.js';
import { KilnError } from '../../src/errors.js';

const env = { V: 'foo.tar.gz', P: '/usr/local/bin', E: '' };

test('pattern modifiers: # ## % %% with globs', () => {
  assert.equal(expandWord('${V#*.}', env), 'tar.gz');
  assert.equal(expandWord('${V##*.}', env), 'gz');
  assert.equal(expandWord('${V%.*}', env), 'foo.tar');
  assert.equal(expandWord('${V%%.*}', env), 'foo');
  assert.equal(expandWord('${V#f?o}', env), '.tar.gz');
  assert.equal(expandWord('${V#[a-f]}', env), 'oo.tar.gz');
  assert.equal(expandWord('${V#[!f]}', env), 'foo.tar.gz');
  assert.equal(expandWord('${V%\\.gz}', env), 'foo.tar');
  assert.equal(expandWord('${V#nomatch}', env), 'foo.tar.gz');
  assert.equal(expandWord('${P##*/}', env), 'bin');
  assert.equal(expandWord('${UNSET#x}', env), '');
});

test('replacement modifiers: / and //', () => {
  assert.equal(expandWord('${V/o/0}', env), 'f0o.tar.gz');
  assert.equal(expandWord('${V//o/0}', env), 'f00.tar.gz');
  assert.equal(expandWord('${V//[ao]/_}', env), 'f__.t_r.gz');
  assert.equal(expandWord('${V/*./X}', env), 'Xgz');
  assert.equal(expandWord('${P//\\//:}', env), ':usr:local:bin');
  assert.equal(expandWord('${V/tar/$E}', env), 'foo..gz');
  assert.equal(expandWord('${V/a/$}', env), 'foo.t$r.gz');
});

test('default, alternative and error modifiers, with and without colon', () => {
  assert.equal(expandWord('${E-d}', env), '');
  assert.equal(expandWord('${E:-d}', env), 'd');
  assert.equal(expandWord('${E+a}', env), 'a');
  assert.equal(expandWord('${E:+a}', env), '');
  assert.throws(() => expandWord('${X?need X}', env), (e: unknown) => e instanceof KilnError && /X: need X/.test(e.message));
  assert.throws(() => expandWord('${E:?}', env), /E: is not allowed to be empty/);
  assert.throws(() => expandWord('${V:#x}', env), /unsupported modifier/);
  assert.throws(() => expandWord('${V/x', env), KilnError);
});

test('escape token backtick', () => {
  assert.equal(expandWord('a`$V', env, { escapeToken: '`' }), 'a$V');
  assert.equal(expandWord('c:\\dir\\$V', env, { escapeToken: '`' }), 'c:\\dir\\foo.tar.gz');
  assert.equal(expandWord('"a`"b"', env, { escapeToken: '`' }), 'a"b');
  assert.deepEqual(expandWords('a` b c', env, { escapeToken: '`' }), ['a b', 'c']);
});

test('processWordWithMatches reports referenced variables', () => {
  const r = new ShellLexer().processWordWithMatches('$A ${B:-x} ${C} "$A" \\$D', { A: '1', C: '' });
  assert.equal(r.result, '1 x  1 $D');
  assert.deepEqual([...r.matched].sort(), ['A', 'C']);
  assert.deepEqual([...r.unmatched], ['B']);
});

test('lexer options: skipUnsetEnv, rawQuotes, rawEscapes', () => {
  const l = new ShellLexer();
  l.skipUnsetEnv = true;
  assert.equal(l.processWord('$X ${Y} ${Z:-d} ${V}', env), '$X ${Y} ${Z:-d} foo.tar.gz');
  assert.equal(expandWord(`'a'"b"\\c`, {}, { rawQuotes: true, rawEscapes: true }), `'a'"b"\\c`);
});
