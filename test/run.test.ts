/** The library's runImage (src/run.ts): an image of the store run in the OCI runtime. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runImage, processArgs } from '../src/run.js';
import { mountsUnder } from '../src/lifecycle.js';
import { KilnError } from '../src/errors.js';
import { isRoot, rootWithBusybox } from './helpers.js';

const skip = isRoot() ? false : 'needs root (runc over overlayfs)';
let ws: { root: string; cleanup: () => Promise<void> } | undefined;
before(async () => {
  if (!skip) ws = await rootWithBusybox();
});
after(async () => {
  await ws?.cleanup();
});

test('processArgs combines ENTRYPOINT and CMD with overrides as docker does', () => {
  assert.deepEqual(processArgs(['ep'], ['cmd'], { args: [] }), ['ep', 'cmd']);
  assert.deepEqual(processArgs(['ep'], ['cmd'], { args: ['x'] }), ['ep', 'x']);
  assert.deepEqual(processArgs(['ep'], ['cmd'], { entrypoint: 'sh', args: [] }), ['sh']);
  assert.deepEqual(processArgs(['ep'], ['cmd'], { entrypoint: '', args: ['ls'] }), ['ls']);
});

test('runImage runs a command with the env, user and workdir asked, and leaves no mount', { skip }, async () => {
  const root = ws!.root;
  const out: string[] = [];
  const r = await runImage({
    root,
    image: 'busybox',
    args: ['sh', '-c', 'echo "$FOO:$PATH"; id -u; pwd; exit 3'],
    env: ['FOO=bar'],
    user: '65534',
    workdir: '/tmp',
    network: 'none',
    onOutput: (chunk) => out.push(chunk.toString()),
  });
  assert.equal(r.exitCode, 3, r.outputTail);
  const lines = out.join('').trim().split('\n');
  assert.equal(lines[0]?.split(':')[0], 'bar');
  assert.ok(lines[0]?.includes('/bin'), `PATH defaulted: ${lines[0]}`);
  assert.deepEqual(lines.slice(1), ['65534', '/tmp']);
  assert.deepEqual(mountsUnder(root), [], 'the container mount is released');
});

test('runImage refuses what it cannot run with clear errors', { skip }, async () => {
  const root = ws!.root;
  const kiln = (re: RegExp) => (e: unknown) => e instanceof KilnError && re.test(e.message);
  await assert.rejects(runImage({ root, image: 'nothere:1', args: ['true'] }), kiln(/image nothere:1 not found/));
  await assert.rejects(runImage({ root, image: 'busybox', args: ['true'], network: 'bridge' }), kiln(/unsupported --network "bridge"/));
  await assert.rejects(runImage({ root, image: 'busybox', args: ['true'], env: ['=x'] }), kiln(/invalid environment entry/));
  assert.deepEqual(mountsUnder(root), []);
});
