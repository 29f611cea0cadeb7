/** The library's checkContext (src/check.ts), called directly on build contexts. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { checkContext } from '../src/check.js';
import { KilnError } from '../src/errors.js';
import { tempDir, writeTree } from './helpers.js';

let work: { dir: string; cleanup: () => Promise<void> };
let root: string;
before(async () => {
  work = await tempDir('kiln-check-');
  root = path.join(work.dir, 'root');
});
after(async () => {
  await work?.cleanup();
});

async function context(name: string, files: Record<string, string>): Promise<string> {
  const dir = path.join(work.dir, name);
  await fs.mkdir(dir);
  await writeTree(dir, files);
  return dir;
}

test('checkContext finds the Dockerfile and reports findings in the format asked', async () => {
  const dir = await context('casing', { Dockerfile: 'FROM busybox:1 AS Build\nRUN true\n' });
  const text = await checkContext({ root, contextDir: dir });
  assert.ok(text.findings.some((f) => f.rule === 'StageNameCasing'));
  assert.equal(text.failed, false);
  assert.equal(text.error, undefined);
  assert.match(text.output, /StageNameCasing/);
  const json = await checkContext({ root, contextDir: dir, format: 'json', skip: ['StageNameCasing'], error: true });
  assert.ok(!json.findings.some((f) => f.rule === 'StageNameCasing'));
  assert.doesNotThrow(() => JSON.parse(json.output));
  // a lowercase dockerfile is found where Dockerfile is expected, as docker does
  const lower = await context('lower', { dockerfile: 'from busybox:1\n' });
  assert.ok((await checkContext({ root, contextDir: lower, error: true })).failed, 'findings fail the check with error: true');
});

test('checkContext takes the Dockerfile as text, and gives the build error with the findings so far', async () => {
  const dir = await context('text', {});
  const r = await checkContext({ root, contextDir: dir, dockerfileText: 'FROM busybox:1 AS Build\nFRMO x\n' });
  assert.ok(r.error instanceof KilnError, 'the parse error is the result error, not thrown');
  assert.match(r.error.message, /unknown instruction: FRMO/);
  assert.ok(r.findings.some((f) => f.rule === 'StageNameCasing'), 'findings up to the error are kept');
});

test('checkContext refuses bad options with clear errors', async () => {
  const dir = await context('bad', { Dockerfile: 'FROM busybox:1\n' });
  const kiln = (re: RegExp) => (e: unknown) => e instanceof KilnError && re.test(e.message);
  await assert.rejects(checkContext({ root, contextDir: dir, format: 'yaml' as 'text' }), kiln(/unknown --format "yaml"/));
  await assert.rejects(checkContext({ root, contextDir: dir, platform: 'linux/amd65' }), kiln(/invalid --platform "linux\/amd65".*did you mean amd64/));
  await assert.rejects(checkContext({ root, contextDir: path.join(dir, 'nope') }), kiln(/build context .* is not a directory/));
  await assert.rejects(checkContext({ root, contextDir: dir, dockerfile: path.join(dir, 'Other') }), kiln(/Dockerfile not found/));
});
