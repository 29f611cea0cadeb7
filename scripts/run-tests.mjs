// Runs every compiled test file under dist/test with node's test runner.
// Usage: node scripts/run-tests.mjs [filter-substring...]
//
// Daemons the tests start (see scripts/test-daemons.mjs) are stopped when the run ends,
// whether it passes, fails, or this script is interrupted (SIGINT, SIGTERM, SIGHUP: the
// test runner is stopped first). A daemon that was running before the tests is left alone.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { stopRecordedDaemons } from './test-daemons.mjs';

function walk(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk('dist/test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files found under dist/test');
  process.exit(1);
}

const stateDir = mkdtempSync(join(tmpdir(), 'kiln-test-run-'));
const daemons = join(stateDir, 'daemons');
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  const stopped = stopRecordedDaemons(daemons);
  if (stopped.length) console.error(`run-tests: stopped ${stopped.join(', ')} started by the tests`);
  rmSync(stateDir, { recursive: true, force: true });
}

const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
  env: { ...process.env, KILN_TEST_DAEMONS: daemons },
});

let interrupted;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) {
      // a second signal: do not wait for the tests any longer
      child.kill('SIGKILL');
      cleanup();
      process.exit(128 + constants.signals[sig]);
    }
    interrupted = sig;
    // the runner stops its test files (and their t.after hooks run) on SIGTERM or SIGINT
    child.kill(sig === 'SIGHUP' ? 'SIGTERM' : sig);
  });
}

child.on('exit', (code, signal) => {
  cleanup();
  if (interrupted) process.exit(128 + constants.signals[interrupted]);
  process.exit(code ?? (signal ? 128 + constants.signals[signal] : 1));
});
child.on('error', (e) => {
  console.error(`run-tests: cannot start the test runner: ${e.message}`);
  cleanup();
  process.exit(1);
});
