/**
 * The typed instruction layer: what parseCommand gives for each instruction, the errors it
 * throws (at file:line:col), and the lenient readers the checks use.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { KilnError } from '../../src/errors.js';
import { flagValue, flagValues, fromWords, parseCommand, parseStepCommand, type Command } from '../../src/dockerfile/instructions.js';

function commands(text: string): Command[] {
  const df = parseDockerfile(text, 'Dockerfile');
  return df.instructions.map((i) => parseCommand(i, df));
}

/** The command type whose keyword can be K. */
type CommandOf<K> = Command extends infer C ? (C extends { keyword: infer KK } ? (K extends KK ? C : never) : never) : never;

function one<K extends Command['keyword']>(text: string, keyword: K): CommandOf<K> {
  const c = commands(text).find((x) => x.keyword === keyword);
  assert.ok(c, `no ${keyword}`);
  return c as CommandOf<K>;
}

function parseError(text: string): KilnError {
  try {
    commands(text);
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${String(e)}`);
    return e;
  }
  assert.fail('parsed without an error');
}

describe('typed instructions', () => {
  it('FROM: image, stage name (lowercased) and --platform as written', () => {
    const from = one('FROM --platform=$BUILDPLATFORM busybox:1 AS Build\n', 'from');
    assert.deepEqual({ image: from.image, stageName: from.stageName, platform: from.platform }, { image: 'busybox:1', stageName: 'build', platform: '$BUILDPLATFORM' });
  });

  it('COPY and ADD: sources, heredoc sources, destination and every flag', () => {
    const copy = one('FROM scratch\nCOPY --from=build --chown=1:2 --chmod=644 --link --parents --exclude=*.md --exclude=x a <<EOF /dst/\nhi\nEOF\n', 'copy');
    assert.deepEqual(copy.sources.map((s) => [s.word, s.heredoc?.name]), [['a', undefined], ['<<EOF', 'EOF']]);
    assert.equal(copy.dest, '/dst/');
    assert.deepEqual([copy.from, copy.chown, copy.chmod, copy.link, copy.parents, copy.exclude], ['build', '1:2', '644', true, true, ['*.md', 'x']]);
    assert.equal(copy.unpack, undefined);
    const add = one('FROM scratch\nADD --checksum=sha256:abc --keep-git-dir --unpack=false https://x/a.tar /a\n', 'add');
    assert.deepEqual([add.checksum, add.keepGitDir, add.unpack, add.link], ['sha256:abc', true, false, false]);
  });

  it('RUN: shell and exec form, mounts as written, network and security', () => {
    const run = one('FROM scratch\nRUN --mount=type=cache,target=/c --network=none --security=sandbox make all\n', 'run');
    assert.deepEqual([run.json, run.command, run.mounts, run.network, run.security], [false, ['make all'], ['type=cache,target=/c'], 'none', 'sandbox']);
    const exec = one('FROM scratch\nRUN ["a", "b"]\n', 'run');
    assert.deepEqual([exec.json, exec.command, exec.network], [true, ['a', 'b'], 'default']);
  });

  it('ENV, LABEL and ARG as pairs; the legacy ENV form is said', () => {
    assert.deepEqual(one('FROM scratch\nENV A=1 B=$A\n', 'env').pairs, [{ key: 'A', value: '1' }, { key: 'B', value: '$A' }]);
    assert.equal(one('FROM scratch\nENV A 1 2\n', 'env').legacy, true);
    assert.deepEqual(one('FROM scratch\nARG A B=2\n', 'arg').args, [{ key: 'A' }, { key: 'B', value: '2' }]);
  });

  it('HEALTHCHECK: durations in nanoseconds, retries, NONE', () => {
    const hc = one('FROM scratch\nHEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD ["curl", "-f", "x"]\n', 'healthcheck');
    assert.ok(hc.test === 'cmd');
    assert.deepEqual([hc.json, hc.command, hc.interval, hc.timeout, hc.retries, hc.startPeriod], [true, ['curl', '-f', 'x'], 90e9, 500e6, 3, undefined]);
    assert.equal(one('FROM scratch\nHEALTHCHECK NONE\n', 'healthcheck').test, 'none');
  });

  it('ONBUILD: the trigger and the expression the config records', () => {
    const ob = one('FROM scratch\nONBUILD RUN echo hi\n', 'onbuild');
    assert.equal(ob.trigger.keyword, 'run');
    assert.equal(ob.expression, 'RUN echo hi');
  });

  it('CMD/ENTRYPOINT/SHELL/EXPOSE/VOLUME/USER/WORKDIR/STOPSIGNAL/MAINTAINER', () => {
    const cs = commands('FROM scratch\nCMD ["a"]\nENTRYPOINT run it\nSHELL ["/bin/bash", "-c"]\nEXPOSE 80 $P/udp\nVOLUME /a /b\nUSER app\nWORKDIR /w\nSTOPSIGNAL TERM\nMAINTAINER me <m@x>\n');
    assert.deepEqual(
      cs.slice(1).map((c) => {
        switch (c.keyword) {
          case 'cmd':
          case 'entrypoint':
            return [c.keyword, c.json, c.args];
          case 'shell':
            return [c.keyword, c.shell];
          case 'expose':
            return [c.keyword, c.ports];
          case 'volume':
            return [c.keyword, c.json, c.paths];
          case 'user':
          case 'workdir':
          case 'stopsignal':
          case 'maintainer':
            return [c.keyword, c.value];
          default:
            return [c.keyword];
        }
      }),
      [
        ['cmd', true, ['a']],
        ['entrypoint', false, ['run it']],
        ['shell', ['/bin/bash', '-c']],
        ['expose', ['80', '$P/udp']],
        ['volume', false, ['/a', '/b']],
        ['user', 'app'],
        ['workdir', '/w'],
        ['stopsignal', 'TERM'],
        ['maintainer', 'me <m@x>'],
      ],
    );
  });

  it('flag errors point at the flag, with what the instruction accepts', () => {
    const e = parseError('FROM scratch\nCOPY --form=build a /b\n');
    assert.equal(e.message, 'unknown flag: --form (did you mean from?)');
    assert.deepEqual([e.location?.file, e.location?.line, e.location?.column], ['Dockerfile', 2, 6]);
    assert.match(e.hint ?? '', /COPY accepts --from, --chown/);
    assert.equal(parseError('FROM scratch\nENV --x=1 A=1\n').hint, 'ENV takes no flags');
    assert.equal(parseError('FROM scratch\nCOPY --from=a --from=b x /y\n').message, 'duplicate flag specified: --from');
    assert.equal(parseError('FROM scratch\nCOPY --link=maybe x /y\n').message, 'invalid value for --link: expecting true or false, got "maybe"');
    assert.equal(parseError('FROM scratch\nRUN --network=bridge true\n').message, 'unsupported network mode "bridge"');
    assert.equal(parseError('FROM scratch\nHEALTHCHECK --interval=10 CMD true\n').message, 'invalid duration for --interval: "10"');
    assert.equal(parseError('FROM scratch\nSHELL /bin/sh -c\n').message, 'SHELL requires the arguments to be in JSON form');
    assert.equal(parseError('FROM a b\n').message, 'FROM requires either one or three arguments: FROM <image> [AS <name>]');
    assert.equal(parseError('FROM scratch\nEXPOSE\n').message, 'EXPOSE requires at least one argument');
  });

  it('inside a stage (or as a trigger) FROM is an error', () => {
    const df = parseDockerfile('FROM a\n', 'Dockerfile');
    assert.throws(() => parseStepCommand(df.instructions[0], df), (e: unknown) => e instanceof KilnError && e.message === 'FROM is not allowed here' && e.location?.line === 1);
  });

  it('the lenient readers never throw', () => {
    const df = parseDockerfile('FROM a b\nCOPY --nope --from=x --from=y --exclude=1 --exclude=2 a b\n', 'Dockerfile');
    const [from, copy] = df.instructions;
    assert.deepEqual(fromWords(from), { image: 'a' });
    assert.equal(flagValue(copy, 'from'), 'y');
    assert.equal(flagValue(copy, 'nope'), '');
    assert.deepEqual(flagValues(copy, 'exclude'), ['1', '2']);
  });
});
