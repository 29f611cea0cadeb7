/** The byte-progress renderer of pulls and pushes (src/cli/transfer.ts): bars in a terminal, lines in plain mode. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { humanBytes, shortDigest, transferRenderer } from '../../src/cli/transfer.js';

const a = `sha256:${'a'.repeat(64)}`;
const b = `sha256:${'b'.repeat(64)}`;

function sink(tty: boolean): { out: NodeJS.WritableStream; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c) => (text += String(c)));
  Object.assign(out, { isTTY: tty, columns: 120 });
  return { out, text: () => text };
}

test('sizes and digests as docker shows them', () => {
  assert.equal(shortDigest(a), 'aaaaaaaaaaaa');
  assert.equal(humanBytes(999), '999B');
  assert.equal(humanBytes(1_500), '1.50kB');
  assert.equal(humanBytes(12_345_678), '12.3MB');
  assert.equal(humanBytes(2_000_000_000), '2.00GB');
});

test('plain mode: a line when a blob starts moving and one when it is done; one line for a blob already there', () => {
  const s = sink(false);
  const r = transferRenderer('auto', s.out);
  r.onEvent({ type: 'transfer-start', id: a, action: 'pull', total: 2_000_000 });
  r.onEvent({ type: 'transfer-start', id: b, action: 'pull', total: 10 });
  r.onEvent({ type: 'transfer-progress', id: a, current: 1_000_000, total: 2_000_000 });
  r.onEvent({ type: 'transfer-progress', id: a, current: 1_500_000, total: 2_000_000 });
  r.onEvent({ type: 'transfer-done', id: b, how: 'exists' });
  r.onEvent({ type: 'transfer-done', id: a, how: 'done' });
  r.finish();
  const lines = s.text().trimEnd().split('\n');
  assert.equal(lines.length, 3, s.text());
  assert.equal(lines[0], 'aaaaaaaaaaaa: Downloading 2.00MB');
  assert.equal(lines[1], 'bbbbbbbbbbbb: Already exists');
  assert.match(lines[2], /^aaaaaaaaaaaa: Pull complete 2\.00MB in \d+\.\ds( \(\d.*B\/s\))?$/);
  assert.doesNotMatch(s.text(), /\x1b\[/);
});

test('a terminal gets bars with bytes and rate, redrawn in place, and the error of a failed blob', () => {
  const s = sink(true);
  const r = transferRenderer('auto', s.out);
  r.onEvent({ type: 'transfer-start', id: a, action: 'push', total: 4_000_000 });
  r.onEvent({ type: 'transfer-start', id: b, action: 'push', total: 1_000 });
  r.onEvent({ type: 'transfer-progress', id: a, current: 2_000_000, total: 4_000_000 });
  r.onEvent({ type: 'transfer-done', id: b, how: 'mounted' });
  r.onEvent({ type: 'transfer-error', id: a, message: 'localhost:5000 failed (500) for the blob\nmore' });
  r.finish();
  const text = s.text();
  assert.match(text, /aaaaaaaaaaaa: Pushing \[=+> +\] 2\.00MB\/4\.00MB/);
  assert.match(text, /\x1b\[2A\x1b\[0J/, 'the block is redrawn in place');
  const last = text.slice(text.lastIndexOf('\x1b[0J') + 4).trimEnd().split('\n');
  assert.deepEqual(last, ['aaaaaaaaaaaa: Error: localhost:5000 failed (500) for the blob', 'bbbbbbbbbbbb: Mounted from another repository']);
});

test('quiet mode prints nothing', () => {
  const s = sink(true);
  const r = transferRenderer('quiet', s.out);
  r.onEvent({ type: 'transfer-start', id: a, action: 'pull', total: 1 });
  r.onEvent({ type: 'transfer-done', id: a, how: 'done' });
  r.finish();
  assert.equal(s.text(), '');
});
