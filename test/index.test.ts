/** The library API exposes what the CLI uses, and its expansion follows BuildKit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../src/index.js';

test('expandWord and expandWords follow BuildKit, with a plain object env', () => {
  assert.equal(kiln.expandWord('${A:-default}/$B', { B: 'b' }), 'default/b');
  assert.equal(kiln.expandWord('`$A', { A: 'x' }, { escapeToken: '`' }), '$A');
  assert.deepEqual(kiln.expandWords('a $S c', { S: 'one two' }), ['a', 'one', 'two', 'c']);
  assert.throws(() => kiln.expandWord('${A:?must be set}', {}), (e: unknown) => kiln.isKilnError(e) && /must be set/.test((e as Error).message));
});

test('parse, dump and check are reachable from the library', () => {
  const df = kiln.parseDockerfile('FROM scratch\nCOPY a /b\n');
  assert.equal(kiln.dumpParseTree(df), '(from "scratch")\n(copy "a" "/b")\n');
  const { findings } = kiln.runChecks(kiln.parseDockerfile('from scratch AS Build\n'));
  assert.ok(findings.some((f) => f.rule === 'StageNameCasing'));
  assert.equal(typeof kiln.build, 'function');
  assert.equal(typeof kiln.planBuild, 'function');
  assert.equal(kiln.MediaType.ociManifest, 'application/vnd.oci.image.manifest.v1+json');
});
