import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile, parseDockerfileUntilError, dumpParseTree } from '../../src/dockerfile/index.js';
import { KilnError } from '../../src/errors.js';

function parseError(text: string, file?: string): KilnError {
  try {
    parseDockerfile(text, file);
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected KilnError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a parse error');
}

test('heredocs: several in one RUN, quoted delimiter, file descriptor', () => {
  const df = parseDockerfile('FROM a\nRUN <<EOF1 cat - && 3<<"EOF2" cat\nhello $X\nEOF1\n\tworld\nEOF2\nCMD x\n');
  const run = df.instructions[1]!;
  assert.equal(run.keyword, 'run');
  assert.deepEqual(run.args, ['<<EOF1 cat - && 3<<"EOF2" cat']);
  assert.equal(run.startLine, 2);
  assert.equal(run.endLine, 6);
  assert.deepEqual(run.heredocs, [
    { name: 'EOF1', content: 'hello $X\n', expand: true, chomp: false },
    { name: 'EOF2', content: '\tworld\n', expand: false, chomp: false, fileDescriptor: 3 },
  ]);
  assert.equal(df.instructions[2]!.keyword, 'cmd');
  assert.equal(df.instructions[2]!.startLine, 7);
  assert.equal(dumpParseTree(df), '(from "a")\n(run "<<EOF1 cat - && 3<<\\"EOF2\\" cat")\n(cmd "x")\n');
});

test("heredocs: <<- strips leading tabs of body and terminator; 'single' quotes disable expansion", () => {
  const df = parseDockerfile("FROM a\nRUN <<-EOT bash\n\techo a\n\t\techo b\n\tEOT\nRUN <<'X'\n$HOME\nX\n");
  assert.deepEqual(df.instructions[1]!.heredocs, [{ name: 'EOT', content: 'echo a\necho b\n', expand: true, chomp: true }]);
  assert.deepEqual(df.instructions[2]!.heredocs, [{ name: 'X', content: '$HOME\n', expand: false, chomp: false }]);
});

test('heredocs: COPY <<EOF /path, empty body, and not for JSON form or other instructions', () => {
  const df = parseDockerfile('FROM a\nCOPY <<EOF /etc/x.conf\nk=v\nEOF\nCOPY <<E /e\nE\nRUN ["echo", "<<EOF"]\nLABEL a=<<EOF\n');
  assert.deepEqual(df.instructions[1]!.args, ['<<EOF', '/etc/x.conf']);
  assert.deepEqual(df.instructions[1]!.heredocs, [{ name: 'EOF', content: 'k=v\n', expand: true, chomp: false }]);
  assert.deepEqual(df.instructions[2]!.heredocs, [{ name: 'E', content: '', expand: true, chomp: false }]);
  assert.deepEqual(df.instructions[3]!.heredocs, []);
  assert.equal(df.instructions[3]!.json, true);
  assert.deepEqual(df.instructions[4]!.heredocs, []);
  assert.equal(df.instructions.length, 5);
});

test('heredocs: ONBUILD RUN <<EOF reads the body; unterminated heredoc is an error', () => {
  const df = parseDockerfile('FROM a\nONBUILD RUN <<EOF\nx\nEOF\n');
  const ob = df.instructions[1]!;
  assert.equal(ob.onbuild?.keyword, 'run');
  assert.deepEqual(ob.heredocs.map((h) => h.content), ['x\n']);
  assert.deepEqual(ob.onbuild?.heredocs.map((h) => h.name), ['EOF']);
  const e = parseError('FROM a\nRUN <<EOF\necho\n');
  assert.match(e.message, /unterminated heredoc/);
  assert.equal(e.location?.line, 2);
});

test('escape=backtick: backtick continues lines, backslash is literal', () => {
  const df = parseDockerfile('# escape=`\n\nFROM a\nRUN dir c:\\ `\n  && echo hi\nCOPY a\\b c:\\\n');
  assert.equal(df.directives.escape, '`');
  assert.deepEqual(df.instructions[1]!.args, ['dir c:\\   && echo hi']);
  assert.deepEqual(df.instructions[2]!.args, ['a\\b', 'c:\\']);
  assert.equal(df.instructions.length, 3);
});

test('directives: only before the first instruction or comment; syntax and check kept; repeats fail', () => {
  const df = parseDockerfile('# syntax=docker/dockerfile:1.7\n# check=skip=JSONArgsRecommended;error=true\nFROM a\n');
  assert.equal(df.directives.syntax, 'docker/dockerfile:1.7');
  assert.equal(df.directives.check, 'skip=JSONArgsRecommended;error=true');
  assert.equal(df.directives.escape, '\\');

  const after = parseDockerfile('FROM a\n# escape=`\nRUN a \\\n b\n');
  assert.equal(after.directives.escape, '\\');
  assert.deepEqual(after.instructions[1]!.args, ['a  b']);

  const afterComment = parseDockerfile('# hello\n# escape=`\nFROM a\n');
  assert.equal(afterComment.directives.escape, '\\');
  const afterBlank = parseDockerfile('\n# escape=`\nFROM a\n');
  assert.equal(afterBlank.directives.escape, '\\');
  const unknownFirst = parseDockerfile('# foo=bar\n# escape=`\nFROM a\n');
  assert.equal(unknownFirst.directives.escape, '\\');

  const dup = parseError('# escape=`\n# escape=\\\nFROM a\n');
  assert.match(dup.message, /only one escape parser directive/);
  assert.equal(dup.location?.line, 2);
  assert.match(parseError('# escape=x\nFROM a\n').message, /invalid escape token/);
});

test('unknown instruction: error with file, line, column, source line and BuildKit\'s suggestion', () => {
  const e = parseError('FROM alpine\n\n  RUNN echo hi\n', 'app/Dockerfile');
  assert.equal(e.message, 'unknown instruction: RUNN (did you mean RUN?)');
  assert.deepEqual(e.location, { file: 'app/Dockerfile', line: 3, column: 3, sourceLine: '  RUNN echo hi', length: 4 });
  assert.equal(e.hint, 'replace RUNN with RUN');
  assert.equal(parseError('FORM alpine\n').message, 'unknown instruction: FORM (did you mean FROM?)');
  assert.equal(parseError('FROM a\nCPY . .\n').message, 'unknown instruction: CPY (did you mean COPY?)');
  // the suggestion keeps the case the word was written in, as BuildKit's does
  assert.equal(parseError('FROM a\nfntrypoint ["x"]\n').message, 'unknown instruction: fntrypoint (did you mean entrypoint?)');
  assert.equal(parseError('FROM a\nFNTRYPOINT ["x"]\n').message, 'unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)');
  assert.equal(parseError('FROM a\nXYZZYQ x\n').message, 'unknown instruction: XYZZYQ');
  assert.match(parseError('FROM a\nXYZZYQ x\n').hint ?? '', /^instructions are ADD, ARG/);
  assert.equal(e.format(), 'app/Dockerfile:3:3: unknown instruction: RUNN (did you mean RUN?)\n 3 |   RUNN echo hi\n   |   ^^^^\nhint: replace RUNN with RUN');
});

test('flags: collected for every instruction, -- terminates, quoted values unquoted', () => {
  const df = parseDockerfile(
    'FROM --platform=linux/arm64 a AS b\nRUN --mount=type=cache,target=/c --network=none make\n' +
      'COPY --from=b --chown="1:1" -- --weird /dst\nHEALTHCHECK --interval=5s CMD true\nONBUILD --x RUN --y z\n',
  );
  const [from, run, copy, hc, ob] = df.instructions;
  assert.deepEqual(from!.flags, ['--platform=linux/arm64']);
  assert.deepEqual(from!.args, ['a', 'AS', 'b']);
  assert.deepEqual(run!.flags, ['--mount=type=cache,target=/c', '--network=none']);
  assert.deepEqual(run!.args, ['make']);
  assert.deepEqual(copy!.flags, ['--from=b', '--chown=1:1']);
  assert.deepEqual(copy!.args, ['--weird', '/dst']);
  assert.deepEqual(hc!.flags, ['--interval=5s']);
  assert.deepEqual(hc!.args, ['CMD', 'true']);
  assert.deepEqual(ob!.flags, ['--x']);
  assert.deepEqual(ob!.onbuild?.flags, ['--y']);
  assert.equal(
    dumpParseTree(df).split('\n')[4],
    '(onbuild ["--x"] (run ["--y"] "z"))',
  );
});

test('argument shapes: ENV legacy and key=value, ARG, JSON vs shell, HEALTHCHECK NONE, MAINTAINER', () => {
  const df = parseDockerfile(
    'FROM a\nENV A 1 2\nENV B=1 C="2 3"\nARG X Y=z\nCMD ["a", "b"]\nCMD a b\nHEALTHCHECK NONE\nMAINTAINER Me <me@x>\nSTOPSIGNAL SIGKILL\n',
  );
  const i = df.instructions;
  assert.deepEqual(i[1]!.args, ['A', '1 2']);
  assert.deepEqual(i[2]!.args, ['B', '1', 'C', '"2 3"']);
  assert.deepEqual(i[3]!.args, ['X', 'Y=z']);
  assert.deepEqual([i[4]!.args, i[4]!.json], [['a', 'b'], true]);
  assert.deepEqual([i[5]!.args, i[5]!.json], [['a b'], false]);
  assert.deepEqual(i[6]!.args, ['NONE']);
  assert.deepEqual(i[7]!.args, ['Me <me@x>']);
  assert.equal(
    dumpParseTree(df),
    '(from "a")\n(env "A" "1 2" "")\n(env "B" "1" "=" "C" "\\"2 3\\"" "=")\n(arg "X" "Y=z")\n(cmd "a" "b")\n' +
      '(cmd "a b")\n(healthcheck "NONE")\n(maintainer "Me <me@x>")\n(stopsignal "SIGKILL")\n',
  );
});

test('comments, original text, line numbers, CRLF and BOM', () => {
  const df = parseDockerfile('\ufeff# build stage\r\n#\r\n# base image\r\nFROM a\r\nRUN echo \\\r\n  # inside\r\n  hi\r\n');
  assert.deepEqual(df.instructions[0]!.comments, ['base image']);
  assert.equal(df.instructions[1]!.original, 'RUN echo   hi');
  assert.equal(df.instructions[1]!.startLine, 5);
  assert.equal(df.instructions[1]!.endLine, 7);
  assert.equal(df.lines[3], 'FROM a');
  assert.equal(df.lines.length, 7);
});

test('parser directives are no comments of the first instruction', () => {
  const df = parseDockerfile('# check=skip=all\n# the base\nFROM a\n');
  assert.equal(df.directives.check, 'skip=all');
  assert.deepEqual(df.instructions[0]!.comments, ['the base']);
  // not a directive once an ordinary line came first: then it is a comment
  assert.deepEqual(parseDockerfile('\n# check=skip=all\nFROM a\n').instructions[0]!.comments, ['check=skip=all']);
});

test('an unknown instruction fails after the whole file is read: a later syntax error wins, the lines above it are kept', () => {
  assert.match(parseError('FROM a\nBADCMD\nENV X\n').message, /^ENV must have two arguments/);
  const { dockerfile, error } = parseDockerfileUntilError('FROM a\nRUN x\nBADCMD\nRUN y\nOTHERBAD\n');
  assert.equal(error?.message, 'unknown instruction: BADCMD');
  assert.deepEqual(dockerfile.instructions.map((i) => i.original), ['FROM a', 'RUN x']);
  assert.equal(parseError('BADCMD\n').message, 'unknown instruction: BADCMD');
});

test('empty continuation lines give a NoEmptyContinuation warning', () => {
  const df = parseDockerfile('FROM a\nRUN a \\\n\n  b\n');
  assert.deepEqual(df.instructions[1]!.args, ['a   b']);
  assert.equal(df.warnings.length, 1);
  assert.equal(df.warnings[0]!.rule, 'NoEmptyContinuation');
  assert.match(df.warnings[0]!.message, /Empty continuation line/);
  assert.equal(parseDockerfile('FROM a\nRUN a \\\n  b\n').warnings.length, 0);
});

test('errors: no instructions, JSON array of non-strings, ENV without value', () => {
  assert.match(parseError('').message, /no instructions/);
  assert.match(parseError('# only\n\n').message, /no instructions/);
  const env = parseError('FROM a\nENV PATH\n');
  assert.match(env.message, /ENV must have two arguments/);
  assert.equal(env.location?.line, 2);
  assert.match(parseError('FROM a\nCMD ["a", 1]\n').message, /strings only/);
});
