/**
 * scripts/run-tests.mjs stops the daemons the tests started (test/helpers.ts
 * keepDaemonForSuite, as ensureDockerd uses it) when the suite passes, fails or is
 * interrupted, and never a process it did not start: a daemon recorded with another start
 * time (its pid reused) is left alone, as is one that ran before the tests.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot, tempDir } from '../helpers.js';
import { processesWith, sleep } from './util.js';

const helpersUrl = pathToFileURL(path.join(repoRoot, 'dist', 'test', 'helpers.js')).href;

/** A test file that starts a daemon ("sleep 300.<mark>") for the suite, then passes, fails or hangs. */
function fakeTest(mark: string, mode: 'pass' | 'fail' | 'hang', decoyPid: number): string {
  return `
import test from 'node:test';
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { keepDaemonForSuite } from ${JSON.stringify(helpersUrl)};
test('starts a daemon', async () => {
  const d = spawn('sleep', ['300.${mark}'], { detached: true, stdio: 'ignore' });
  d.unref();
  await new Promise((r) => d.once('spawn', r));
  keepDaemonForSuite(d.pid, 'fake-daemon');
  // a pid recorded with a start time that is not its own: not a process the tests started
  appendFileSync(process.env.KILN_TEST_DAEMONS, '${decoyPid} 1 decoy\\n');
  console.log('daemon-ready');
  if (${JSON.stringify(mode)} === 'fail') throw new Error('failing on purpose');
  if (${JSON.stringify(mode)} === 'hang') await new Promise((r) => setTimeout(r, 300000));
});
`;
}

describe('scripts/run-tests.mjs stops the daemons tests started', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let decoy: ChildProcess;
  const mark = String(process.pid);
  before(async () => {
    ({ dir, cleanup } = await tempDir('kiln-daemons-'));
    await fs.mkdir(path.join(dir, 'dist', 'test'), { recursive: true });
    decoy = spawn('sleep', [`301.${mark}`], { stdio: 'ignore' });
    await new Promise((r) => decoy.once('spawn', r));
  });
  after(async () => {
    decoy.kill('SIGKILL');
    for (const pid of processesWith(`sleep 300.${mark}`)) process.kill(pid, 'SIGKILL');
    await cleanup();
  });

  async function runSuite(mode: 'pass' | 'fail' | 'hang', m: string): Promise<{ code: number | null; output: string }> {
    await fs.writeFile(path.join(dir, 'dist', 'test', 'fake.test.js'), fakeTest(m, mode, decoy.pid!));
    // a test runner of its own, not a subtest of this one
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [path.join(repoRoot, 'scripts', 'run-tests.mjs')], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => (output += String(c)));
    child.stderr.on('data', (c) => (output += String(c)));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    if (mode === 'hang') {
      for (let i = 0; i < 300 && !output.includes('daemon-ready'); i++) await sleep(100);
      assert.equal(processesWith(`sleep 300.${m}`).length, 1, `the daemon runs: ${output}`);
      child.kill('SIGTERM');
    }
    return { code: await exited, output };
  }

  for (const [mode, expected] of [
    ['pass', 0],
    ['fail', 1],
    ['hang', 143],
  ] as const) {
    it(`a suite that ${mode === 'hang' ? 'is interrupted (SIGTERM)' : mode === 'pass' ? 'passes' : 'fails'}: its daemon is stopped, the decoy is not`, async () => {
      const m = `${mark}${expected}`;
      const r = await runSuite(mode, m);
      assert.equal(r.code, expected, r.output);
      assert.match(r.output, /run-tests: stopped fake-daemon started by the tests/);
      assert.deepEqual(processesWith(`sleep 300.${m}`), []);
      assert.equal(decoy.exitCode, null, 'the decoy still runs');
      assert.ok(processesWith(`sleep 301.${mark}`).length === 1);
    });
  }
});
