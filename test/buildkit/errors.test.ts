/** Port of BuildKit's frontend/dockerfile/errors_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, useHarness } from './harness.js';

const h = useHarness();

port('testErrorsSourceMap', async () => {
  // the "#syntax=foobar" case needs an external frontend image: left out
  const cases: Array<[string, string, number[]]> = [
    ['invalidenv', 'from busybox\nenv', [2]],
    ['invalidrun', 'from scratch\nenv foo=bar\nrun what', [3]],
    ['invalidcopy', 'from scratch\nenv foo=bar\ncopy foo bar\nenv bar=baz', [3]],
    ['invalidflag', 'from scratch\nenv foo=bar\ncopy --foo=bar / /\nenv bar=baz', [3]],
    ['invalidcopyfrom', 'from scratch\nenv foo=bar\ncopy --from=invalid foo bar\nenv bar=baz', [3]],
    ['invalidmultiline', 'from scratch\nrun wh\\\nat\nenv bar=baz', [2, 3]],
  ];
  const problems: string[] = [];
  for (const [name, dockerfile, lines] of cases) {
    const r = await h.kilnBuild({ dockerfile });
    if (r.code === 0) {
      problems.push(`${name}: built`);
      continue;
    }
    // kiln points at the first line of the instruction and shows the source lines
    if (!new RegExp(`Dockerfile:${lines[0]}(:\\d+)?: `).test(r.stderr)) problems.push(`${name}: no Dockerfile:${lines[0]} in\n${r.stderr}`);
    for (const l of lines) if (!new RegExp(`^\\s*${l} \\| `, 'm').test(r.stderr)) problems.push(`${name}: line ${l} not shown in\n${r.stderr}`);
  }
  assert.deepEqual(problems, []);
}, { todo: 'ENV with no arguments is accepted; an error in a continued instruction shows only its first line' });
