/**
 * The deterministic parts of the bench's network scenario (scripts/bench-network.ts): the
 * transfer time read from the step's own `time` output, the address it serves from, and its
 * name on the command line. No timing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { hostAddress, transferSeconds } from '../../scripts/bench-network.js';
import { parseArgs } from '../../scripts/bench.js';

describe('bench network', () => {
  it('reads busybox time\'s real seconds from a step\'s plain progress output', () => {
    assert.equal(transferSeconds('#1 2.301 real\t0m 2.30s\n#1 2.301 user\t0m 0.21s\n'), 2.3);
    assert.equal(transferSeconds('#5 71.0 real\t1m 10.52s\n'), 70.52);
    assert.equal(transferSeconds('#1 DONE 0.1s\n'), undefined);
  });

  it('serves from a non-loopback address of this machine, never the loopback', () => {
    const a = hostAddress();
    if (a === undefined) return;
    const mine = Object.values(os.networkInterfaces()).flatMap((l) => l ?? []);
    assert.ok(mine.some((x) => x.address === a && !x.internal), a);
    assert.ok(!a.startsWith('127.'));
  });

  it('is a scenario --only takes', () => {
    assert.deepEqual(parseArgs(['--only', 'network']).only, ['network']);
  });
});
