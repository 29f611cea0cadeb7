// Runs the port of BuildKit's Dockerfile tests (dist/test/buildkit) and prints the counts
// test/buildkit/README.md quotes: ported, passing, todo (with their reasons, grouped), and
// any todo that passes now (its `todo` mark can go).
// Usage: npm run build && node scripts/bkport-summary.mjs [--todos] [file-filter...]
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const showTodos = args.includes('--todos');
const filters = args.filter((a) => !a.startsWith('--'));
const dir = 'dist/test/buildkit';
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js') && (filters.length === 0 || filters.some((s) => f.includes(s))))
  .sort()
  .map((f) => join(dir, f));
if (files.length === 0) {
  console.error(`no test files under ${dir} (npm run build first)`);
  process.exit(1);
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', ...files], { encoding: 'utf8', maxBuffer: 256 << 20 });
const results = [];
for (const line of res.stdout.split('\n')) {
  // top-level results only (subtests are indented)
  const m = /^(ok|not ok) \d+ - (\S+)(?: # (TODO|SKIP)\b ?(.*))?$/.exec(line);
  // only the ported Go tests (named after them); the harness's own checks are not counted
  if (m && /^test[A-Z]/.test(m[2])) results.push({ ok: m[1] === 'ok', name: m[2], directive: m[3], reason: (m[4] ?? '').replace(/\\#/g, '#') });
}
let compared = 0;
let kilnOnly = 0;
for (const m of res.stdout.matchAll(/bkport-oracle: (\d+) compared, (\d+) kiln-only/g)) {
  compared += Number(m[1]);
  kilnOnly += Number(m[2]);
}
const passed = results.filter((r) => r.ok && !r.directive);
const todo = results.filter((r) => r.directive === 'TODO' && !r.ok);
const fixed = results.filter((r) => r.directive === 'TODO' && r.ok);
const skipped = results.filter((r) => r.directive === 'SKIP');
const failed = results.filter((r) => !r.ok && !r.directive);

console.log(`${results.length} ported: ${passed.length} passed, ${todo.length} todo, ${failed.length} failed, ${skipped.length} skipped, ${fixed.length} todo now passing`);
console.log(`docker 20.10 oracle: ${compared} differential builds compared, ${kilnOnly} run kiln-only (no daemon)`);
for (const r of failed) console.log(`FAILED ${r.name}`);
for (const r of fixed) console.log(`PASSES (remove its todo) ${r.name}: ${r.reason}`);
if (showTodos) {
  const byReason = new Map();
  for (const r of todo) byReason.set(r.reason, [...(byReason.get(r.reason) ?? []), r.name]);
  for (const [reason, names] of [...byReason].sort((a, b) => b[1].length - a[1].length)) console.log(`- ${reason}: ${names.join(', ')}`);
}
process.exit(failed.length > 0 || res.status === null ? 1 : 0);
