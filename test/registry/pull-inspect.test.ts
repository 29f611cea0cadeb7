/** kiln inspect docker:// prints times as skopeo (Go's encoding/json) does. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goTime } from '../../src/cli/inspect.js';

test('created times lose trailing zeros of their fraction, and keep their zone', () => {
  assert.equal(goTime('2026-12-01T14:44:20.230Z'), '2026-12-01T14:44:20.23Z');
  assert.equal(goTime('2026-12-01T14:44:20.000Z'), '2026-12-01T14:44:20Z');
  assert.equal(goTime('2026-12-01T14:44:20Z'), '2026-12-01T14:44:20Z');
  assert.equal(goTime('2024-01-02T03:04:05.123456789+02:00'), '2024-01-02T03:04:05.123456789+02:00');
  assert.equal(goTime('not a time'), 'not a time');
  assert.equal(goTime(undefined), undefined);
});
