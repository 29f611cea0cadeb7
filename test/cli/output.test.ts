/** What kiln writes to stdout reaches a slow reader whole: the process does not exit before it is flushed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { kilnBin, runKiln, workspace } from '../helpers.js';

/** Runs kiln with a reader that pauses after every chunk, so the pipe stays full. */
function slowlyRead(args: string[]): Promise<{ code: number | null; out: Buffer }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [kilnBin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => {
      chunks.push(c);
      p.stdout.pause();
      setTimeout(() => p.stdout.resume(), 2);
    });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out: Buffer.concat(chunks) }));
  });
}

test('kiln save to a slow pipe writes the whole archive before exiting', async (t) => {
  const ws = await workspace();
  t.after(() => ws.cleanup());
  const file = path.join(ws.root, 'saved.tar');
  const r = await runKiln(['save', '-o', file, 'busybox:latest'], { root: ws.root });
  assert.equal(r.code, 0, r.stderr);
  const whole = await fs.readFile(file);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  for (let i = 0; i < 3; i++) {
    const { code, out } = await slowlyRead(['--root', ws.root, 'save', 'busybox:latest']);
    assert.equal(code, 0);
    assert.equal(out.length, whole.length, `run ${i}: ${out.length} of ${whole.length} bytes`);
    assert.equal(sha(out), sha(whole));
  }
});
