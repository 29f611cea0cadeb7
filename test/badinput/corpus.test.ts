/**
 * The bad-input corpus: Dockerfiles, contexts, command lines and archives a user can get
 * wrong, each run through the real CLI. Every case must exit non-zero with an error that
 * says what is wrong and where (file:line:col for a Dockerfile) and what to do (a hint),
 * and never a stack trace, a raw errno code, a library's message or "internal error".
 * The existing error paths are here too, so the corpus guards against regressions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, isRoot, runKiln, tempDir, workspace, writeTree, type Workspace } from '../helpers.js';
import { assertClearError } from './clear-error.js';

interface Case {
  name: string;
  /** The context's files; a Dockerfile is usually among them. */
  files?: Record<string, string>;
  /** The command line after `kiln --root ROOT` (default: build .); `ctx` is the context, `tmp` a scratch dir. */
  args?: (ctx: string, tmp: string) => string[];
  /** Made before the command runs. */
  setup?: (ctx: string, tmp: string) => Promise<void>;
  /** What stderr must say: the what and the where. */
  where: RegExp;
  /** A reason to skip on this machine. */
  skip?: () => string | false;
}

const DF = (...lines: string[]) => ({ Dockerfile: `${lines.join('\n')}\n` });
const FROM = 'FROM busybox:latest';

const CASES: Case[] = [
  // --- Dockerfile syntax
  { name: 'unknown instruction', files: DF(FROM, 'RUNN echo hi'), where: /^error: Dockerfile:2:1: unknown instruction: RUNN \(did you mean RUN\?\)/m },
  { name: 'unknown instruction, nothing close', files: DF(FROM, 'XYZZYQ x'), where: /^error: Dockerfile:2:1: unknown instruction: XYZZYQ\n/m },
  { name: 'instruction before FROM', files: DF('RUN true', FROM), where: /^error: Dockerfile:1:1: RUN before FROM/m },
  { name: 'no instructions', files: DF('# only a comment'), where: /^error: Dockerfile:1:1: file with no instructions/m },
  { name: 'unterminated heredoc', files: DF(FROM, 'RUN <<EOF', 'echo hi'), where: /^error: Dockerfile:2:1: unterminated heredoc EOF/m },
  { name: 'JSON array of non-strings', files: DF(FROM, 'CMD ["a", 1]'), where: /^error: Dockerfile:2:1: when using JSON array syntax/m },
  { name: 'ENV without a value', files: DF(FROM, 'ENV A'), where: /^error: Dockerfile:2:1: ENV must have two arguments/m },
  { name: 'bad escape directive', files: DF('# escape=x', FROM), where: /^error: Dockerfile:1:1: invalid escape token 'x'/m },
  { name: 'FROM without an image', files: DF('FROM'), where: /^error: Dockerfile:1:1: FROM requires either one or three arguments/m },
  { name: 'bad stage name', files: DF(`${FROM} AS 1st`), where: /^error: Dockerfile:1:\d+: invalid name for build stage: "1st"/m },
  { name: 'duplicate stage name', files: DF(`${FROM} AS a`, `${FROM} AS a`), where: /^error: Dockerfile:2:1: duplicate stage name "a"/m },
  { name: 'ARG without a name', files: DF(FROM, 'ARG'), where: /^error: Dockerfile:2:1: ARG requires at least one argument/m },
  { name: 'global ARG without a name', files: DF('ARG', FROM), where: /^error: Dockerfile:1:1: ARG requires at least one argument/m },
  { name: 'LABEL without a pair', files: DF(FROM, 'LABEL'), where: /^error: Dockerfile:2:1: LABEL requires at least one argument/m },
  { name: 'USER without a user', files: DF(FROM, 'USER'), where: /^error: Dockerfile:2:1: USER requires exactly one argument/m },
  { name: 'WORKDIR without a path', files: DF(FROM, 'WORKDIR'), where: /^error: Dockerfile:2:1: WORKDIR requires exactly one argument/m },
  { name: 'COPY with one argument', files: DF(FROM, 'COPY a'), where: /^error: Dockerfile:2:1: COPY requires at least two arguments/m },
  { name: 'COPY of several files to a non-directory', files: { ...DF(FROM, 'COPY a b c'), a: '', b: '' }, where: /^error: Dockerfile:2:10: When using COPY with more than one source file/m },
  { name: 'SHELL not in JSON form', files: DF(FROM, 'SHELL /bin/sh -c'), where: /^error: Dockerfile:2:1: SHELL requires the arguments to be in JSON form/m },
  { name: 'bad HEALTHCHECK duration', files: DF(FROM, 'HEALTHCHECK --interval=abc CMD true'), where: /^error: Dockerfile:2:13: invalid duration for --interval: "abc"/m },
  { name: 'bad EXPOSE port', files: DF(FROM, 'EXPOSE http'), where: /^error: Dockerfile:2:8: invalid containerPort: http/m },
  { name: 'bad STOPSIGNAL', files: DF(FROM, 'STOPSIGNAL SIGNOPE'), where: /^error: Dockerfile:2:\d+: Invalid signal: SIGNOPE/m },
  { name: 'ONBUILD ONBUILD', files: DF(FROM, 'ONBUILD ONBUILD RUN true'), where: /^error: Dockerfile:2:\d+: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed/m },
  { name: 'ONBUILD FROM', files: DF(FROM, 'ONBUILD FROM x'), where: /^error: Dockerfile:2:9: FROM isn't allowed as an ONBUILD trigger/m },
  { name: 'bad variable substitution', files: DF(FROM, 'ENV A=${B'), where: /^error: Dockerfile:2:\d+: .*(substitution|missing|\}|\{)/m },
  // --- flags
  { name: 'misspelt COPY flag', files: DF(FROM, 'COPY --chwon=1 a /'), where: /^error: Dockerfile:2:6: unknown flag: --chwon \(did you mean chown\?\)/m },
  { name: 'misspelt RUN flag', files: DF(FROM, 'RUN --mout=type=cache,target=/c true'), where: /^error: Dockerfile:2:5: unknown flag: --mout \(did you mean mount\?\)/m },
  { name: 'unknown flag', files: DF(FROM, 'ADD --frobnicate a /'), where: /^error: Dockerfile:2:5: unknown flag: --frobnicate\n/m },
  { name: 'flag without its value', files: DF(FROM, 'COPY --from a /'), where: /^error: Dockerfile:2:6: missing a value on flag: --from/m },
  { name: 'repeated flag', files: DF(FROM, 'COPY --chown=1 --chown=2 a /'), where: /^error: Dockerfile:2:16: duplicate flag specified: --chown/m },
  { name: 'bad boolean flag', files: DF(FROM, 'COPY --link=maybe a /'), where: /^error: Dockerfile:2:6: invalid value for --link/m },
  { name: 'bad --chmod', files: DF(FROM, 'COPY --chmod=999 a /'), where: /^error: Dockerfile:2:6: invalid chmod parameter: '999'/m },
  { name: '--chown with three parts', files: { ...DF(FROM, 'COPY --chown=1:2:3 a /'), a: '' }, where: /^error: Dockerfile:2:6: invalid --chown=1:2:3/m },
  { name: 'variable in COPY --from', files: DF(FROM, 'ARG S=a', 'COPY --from=$S a /'), where: /^error: Dockerfile:3:6: variable expansion is not supported for --from/m },
  { name: 'unknown RUN --mount type', files: DF(FROM, 'RUN --mount=type=tmp,target=/x true'), where: /^error: Dockerfile:2:5: unsupported mount type "tmp"/m },
  { name: 'unknown RUN --mount key', files: DF(FROM, 'RUN --mount=typ=tmpfs true'), where: /^error: Dockerfile:2:5: unexpected key 'typ'/m },
  { name: 'bad RUN --network', files: DF(FROM, 'RUN --network=bogus true'), where: /^error: Dockerfile:2:5: unsupported network mode "bogus"/m },
  { name: 'bad FROM --platform', files: DF('FROM --platform=linux/amd65 busybox:latest'), where: /^error: Dockerfile:1:6: failed to parse platform linux\/amd65: unknown architecture "amd65" \(did you mean amd64\?\)/m },
  // --- stages, images, sources
  { name: 'COPY source missing', files: DF(FROM, 'COPY nope /'), where: /^error: Dockerfile:2:1: COPY source "nope" not found in the build context/m },
  { name: 'COPY --from an unknown stage', files: DF(FROM, 'COPY --from=nostage a /'), where: /^error: Dockerfile:2:6: "nostage" is neither an earlier build stage nor an image in the store/m },
  { name: 'FROM an image not in the store', files: DF('FROM nosuchimage:1'), where: /^error: Dockerfile:1:6: image nosuchimage:1 not found in the store/m },
  { name: 'blank base name', files: DF('ARG X', 'FROM ${X}'), where: /^error: Dockerfile:2:6: base name \(\$\{X\}\) should not be blank/m },
  { name: 'unknown --target', files: DF(`${FROM} AS build`, FROM), args: (ctx) => ['build', '--target', 'bulid', ctx], where: /^error: target stage "bulid" could not be found \(did you mean build\?\)/m },
  { name: 'COPY destination name too long', files: { ...DF(FROM, `COPY a /${'n'.repeat(300)}`), a: 'a' }, where: /^error: Dockerfile:2:1: a file name is too long while .* \/n{300} in the image\n/m },
  // --- files around the Dockerfile
  { name: 'UTF-16 Dockerfile', setup: (ctx) => fs.writeFile(path.join(ctx, 'Dockerfile'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${FROM}\n`, 'utf16le')])), where: /^error: Dockerfile:1:1: Dockerfile is UTF-16; save it as UTF-8/m },
  { name: 'no Dockerfile', files: { 'README.md': 'x' }, where: /^error: cannot read Dockerfile .*Dockerfile: no such file or directory/m },
  { name: '-f naming a missing file', files: DF(FROM), args: (ctx) => ['build', '-f', path.join(ctx, 'nope.Dockerfile'), ctx], where: /^error: cannot read Dockerfile .*nope\.Dockerfile: no such file or directory/m },
  { name: '-f naming a directory', files: { ...DF(FROM), 'sub/x': '' }, args: (ctx) => ['build', '-f', path.join(ctx, 'sub'), ctx], where: /^error: cannot read Dockerfile .*sub: it is a directory/m },
  { name: 'context is not a directory', files: DF(FROM), args: (ctx) => ['build', path.join(ctx, 'Dockerfile')], where: /^error: build context ".*Dockerfile" is not a directory/m },
  { name: '.dockerignore of "!" alone', files: { ...DF(FROM, 'COPY . /'), '.dockerignore': '!\n' }, where: /^error: \.dockerignore:1: invalid pattern "!"/m },
  { name: '.dockerignore with "["', files: { ...DF(FROM, 'COPY . /'), '.dockerignore': '*.log\n[\n' }, where: /^error: \.dockerignore:2: invalid pattern "\["/m },
  { name: 'per-Dockerfile ignore file with a bad pattern', files: { ...DF(FROM, 'COPY . /'), 'Dockerfile.dockerignore': 'a[z-b]\n' }, where: /^error: Dockerfile\.dockerignore:1: invalid pattern "a\[z-b\]"/m },
  { name: 'debug parse of a directory', files: { 'sub/x': '' }, args: (ctx) => ['debug', 'parse', '-f', path.join(ctx, 'sub')], where: /^error: cannot read .*sub: it is a directory/m },
  { name: 'debug parse of a missing file', args: (ctx) => ['debug', 'parse', '-f', path.join(ctx, 'nope')], where: /^error: cannot read .*nope: no such file or directory/m },
  // --- command line
  { name: 'bad --build-arg', files: DF(FROM), args: (ctx) => ['build', '--build-arg', '=x', ctx], where: /^error: invalid --build-arg "=x": expected KEY=VALUE/m },
  { name: 'bad --platform', files: DF(FROM), args: (ctx) => ['build', '--platform', '!!/??', ctx], where: /^error: invalid --platform "!!\/\?\?"/m },
  { name: 'unknown --platform architecture', files: DF(FROM), args: (ctx) => ['build', '--platform', 'linux/amd65', ctx], where: /^error: invalid --platform "linux\/amd65": unknown architecture "amd65" \(did you mean amd64\?\)/m },
  {
    name: '--platform this machine cannot run',
    files: DF(FROM, 'RUN echo hi'),
    args: (ctx) => ['build', '--platform', 'linux/s390x', ctx],
    where: /^error: Dockerfile:2:1: RUN for linux\/s390x cannot execute: no binfmt_misc handler[\s\S]*kiln setup binfmt --platform linux\/s390x/m,
    skip: () => (existsSync('/proc/sys/fs/binfmt_misc/qemu-s390x') || process.arch === 's390x' ? 's390x programs can run here' : false),
  },
  { name: 'empty --root', files: DF(FROM), args: (ctx) => ['--root', '', 'build', ctx], where: /^error: --root needs a directory/m },
  { name: '--iidfile in a missing directory', files: DF(FROM), args: (ctx, tmp) => ['build', '--iidfile', path.join(tmp, 'no/such/dir/id'), ctx], where: /^error: --iidfile .*: the directory .* does not exist/m },
  { name: '--metadata-file in a missing directory', files: DF(FROM), args: (ctx, tmp) => ['build', '--metadata-file', path.join(tmp, 'nodir/m.json'), ctx], where: /^error: --metadata-file .*: the directory .* does not exist/m },
  { name: '--iidfile onto a directory', files: DF(FROM), args: (ctx, tmp) => ['build', '--iidfile', tmp, ctx], where: /^error: --iidfile .*: it is a directory/m },
  { name: 'bad --progress', files: DF(FROM), args: (ctx) => ['build', '--progress', 'fancy', ctx], where: /^error: unknown --progress mode "fancy"/m },
  { name: 'bad --parallel', files: DF(FROM), args: (ctx) => ['build', '--parallel', '0', ctx], where: /^error: --parallel must be a positive whole number/m },
  // --- archives and the store
  { name: 'load: truncated archive', args: (_c, tmp) => ['load', '-i', path.join(tmp, 'trunc.tar')], setup: (_c, tmp) => truncated(tmp, 'trunc.tar', 'full.tar', 0.5), where: /^error: .*trunc\.tar is truncated/m },
  { name: 'load: truncated gzip', args: (_c, tmp) => ['load', '-i', path.join(tmp, 'trunc.tar.gz')], setup: (_c, tmp) => truncated(tmp, 'trunc.tar.gz', 'full.tar.gz', 0.5), where: /^error: .*trunc\.tar\.gz is not a complete gzip stream/m },
  { name: 'load: not an archive', args: (_c, tmp) => ['load', '-i', path.join(tmp, 'random.bin')], setup: (_c, tmp) => fs.writeFile(path.join(tmp, 'random.bin'), Buffer.alloc(4096, 0x5a)), where: /^error: .*random\.bin is not a valid tar archive/m },
  { name: 'load: missing file', args: (_c, tmp) => ['load', '-i', path.join(tmp, 'missing.tar')], where: /^error: cannot read .*missing\.tar: no such file or directory/m },
  { name: 'load: a directory', args: (_c, tmp) => ['load', '-i', tmp], where: /^error: cannot read .*: it is not a regular file/m },
  { name: 'import: truncated gzip', args: (_c, tmp) => ['import', path.join(tmp, 'rootfs-trunc.tar.gz'), 'x:1'], setup: (_c, tmp) => truncated(tmp, 'rootfs-trunc.tar.gz', 'rootfs.tar.gz', 0.3), where: /^error: .*rootfs-trunc\.tar\.gz is not a complete gzip stream/m },
  { name: 'import: truncated tar', args: (_c, tmp) => ['import', path.join(tmp, 'rootfs-trunc.tar'), 'x:1'], setup: (_c, tmp) => truncated(tmp, 'rootfs-trunc.tar', 'rootfs.tar', 0.3), where: /^error: .*rootfs-trunc\.tar is truncated/m },
  { name: 'import: missing file', args: (_c, tmp) => ['import', path.join(tmp, 'nothing.tar'), 'x:1'], where: /^error: cannot import .*nothing\.tar: no such file or directory/m },
  { name: 'save onto a directory', args: (_c, tmp) => ['save', '-o', tmp, 'busybox:latest'], where: /^error: cannot write the archive to .*: it is a directory/m },
  { name: 'save into a missing directory', args: (_c, tmp) => ['save', '-o', path.join(tmp, 'no/dir/x.tar'), 'busybox:latest'], where: /^error: cannot write the archive to .*x\.tar: no such file or directory/m },
  { name: 'save with a name too long', args: (_c, tmp) => ['save', '-o', path.join(tmp, 'x'.repeat(300)), 'busybox:latest'], where: /^error: cannot write the archive to .*: a file name is too long/m },
  {
    name: 'save to a read-only place',
    args: (_c, tmp) => ['save', '-o', path.join(tmp, 'ro', 'x.tar'), 'busybox:latest'],
    setup: async (_c, tmp) => {
      await fs.mkdir(path.join(tmp, 'ro'));
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', path.join(tmp, 'ro')]);
      if (m.status !== 0) throw new Error(`mount failed: ${String(m.stderr)}`);
    },
    where: /^error: cannot write the archive to .*x\.tar: the file system is read-only/m,
  },
  { name: 'save an unknown image', args: (_c, tmp) => ['save', '-o', path.join(tmp, 'u.tar'), 'nosuch:1'], where: /^error: image nosuch:1 not found in the store/m },
  { name: 'run an unknown image', args: () => ['run', 'nosuch:1'], where: /^error: image nosuch:1 not found in the store/m },
  { name: 'rmi an unknown image', args: () => ['rmi', 'nosuch:1'], where: /^error: no such image: nosuch:1/m },
  { name: 'inspect an unknown image', args: () => ['inspect', 'nosuch:1'], where: /^error: image nosuch:1 not found in the store/m },
  { name: 'tag with an invalid name', args: () => ['tag', 'busybox:latest', 'Bad:Name'], where: /^error: invalid image name "Bad:Name"/m },
  { name: 'import with an invalid name', args: (_c, tmp) => ['import', path.join(path.dirname(tmp), 'rootfs.tar'), 'BAD NAME'], where: /^error: invalid image name "BAD NAME"/m },
  { name: 'import with a bad --platform', args: (_c, tmp) => ['import', '--platform', 'bogus/x', path.join(path.dirname(tmp), 'rootfs.tar'), 'y:1'], where: /^error: invalid platform "bogus\/x": unknown operating system "bogus"/m },
  { name: 'check with a bad --platform', files: DF(FROM), args: (ctx) => ['check', '--platform', '!!', ctx], where: /^error: invalid --platform "!!"/m },
  { name: 'unknown save format', args: (_c, tmp) => ['save', '--format', 'zip', '-o', path.join(tmp, 'u.tar'), 'busybox:latest'], where: /^error: unknown --format "zip"/m },
];

/** The first `fraction` of the suite's archive `src` as tmp/name. */
async function truncated(tmp: string, name: string, src: string, fraction: number): Promise<void> {
  const data = await fs.readFile(path.join(path.dirname(tmp), src));
  await fs.writeFile(path.join(tmp, name), data.subarray(0, Math.floor(data.length * fraction)));
}

/** Unmounts whatever a case mounted under its scratch dir (the read-only tmpfs). */
function unmountUnder(dir: string): void {
  const mounts = readFileSyncSafe('/proc/self/mounts').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir + path.sep));
  for (const m of mounts.sort().reverse()) spawnSync('umount', [m]);
}

function readFileSyncSafe(p: string): string {
  try {
    return spawnSync('cat', [p], { encoding: 'utf8' }).stdout ?? '';
  } catch {
    return '';
  }
}

describe('bad-input corpus', { skip: isRoot() ? false : 'needs root (runc, mounts)' }, () => {
  let ws: Workspace;
  let scratch: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    ws = await workspace();
    scratch = await tempDir('kiln-badinput-');
    // archives the cases cut short
    const full = path.join(scratch.dir, 'full.tar');
    const saved = await runKiln(['save', '-o', full, 'busybox:latest'], { root: ws.root });
    assert.equal(saved.code, 0, saved.stderr);
    spawnSync('sh', ['-c', `gzip -c "${full}" > "${full}.gz"`]);
    await fs.copyFile(await busyboxRootfsTar(), path.join(scratch.dir, 'rootfs.tar'));
    spawnSync('sh', ['-c', `gzip -c "${scratch.dir}/rootfs.tar" > "${scratch.dir}/rootfs.tar.gz"`]);
  });
  after(async () => {
    if (scratch) {
      unmountUnder(scratch.dir);
      await scratch.cleanup();
    }
    await ws?.cleanup();
  });

  it(`has at least 40 cases (${CASES.length})`, () => {
    assert.ok(CASES.length >= 40);
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length, 'case names are unique');
  });

  for (const c of CASES) {
    const skip = c.skip?.();
    it(c.name, { skip: skip || false }, async () => {
      const ctx = await ws.context({});
      const tmp = await fs.mkdtemp(path.join(scratch.dir, 'case-'));
      try {
        if (c.files) await writeTree(ctx, c.files);
        await c.setup?.(ctx, tmp);
        const args = c.args ? c.args(ctx, tmp) : ['build', '.'];
        const r = await runKiln(args, { root: ws.root, cwd: ctx, timeoutMs: 120_000 });
        assertClearError(r, c.where, c.name);
      } finally {
        unmountUnder(tmp);
      }
    });
  }

  it('nothing a failed case started is left in the root\'s temp dir', () => {
    const left = existsSync(path.join(ws.root, 'tmp')) ? readdirSync(path.join(ws.root, 'tmp')) : [];
    assert.deepEqual(left, []);
  });
});
