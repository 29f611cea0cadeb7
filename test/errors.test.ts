/** System errors in words: fromErrno and describeErrno never show the raw code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { describeErrno, errnoCode, errorCode, fromErrno, hasCode, isErrnoError, KilnError, retryable } from '../src/errors.js';

function sysError(code: string, syscall: string, path?: string, dest?: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: some text, ${syscall}${path ? ` '${path}'` : ''}`) as NodeJS.ErrnoException & { dest?: string };
  e.code = code;
  e.syscall = syscall;
  if (path) e.path = path;
  if (dest) e.dest = dest;
  return e;
}

test('a full disk: what, while doing what, and the hint', () => {
  const e = fromErrno(sysError('ENOSPC', 'write'), 'storing the layer of this step');
  assert.ok(e instanceof KilnError);
  assert.equal(e.message, 'no space left on device while storing the layer of this step');
  assert.match(e.hint ?? '', /free space .*--root/);
  assert.equal(fromErrno(sysError('ENOSPC', 'copyfile', '/a', '/b')).message, 'no space left on device while copying /a to /b');
});

test('the action comes from the syscall and path when none is given', () => {
  assert.equal(fromErrno(sysError('ENAMETOOLONG', 'open', '/x/yyy')).message, 'a file name is too long while opening /x/yyy');
  assert.equal(fromErrno(sysError('EROFS', 'mkdir', '/ro/d')).message, 'the file system is read-only while creating the directory /ro/d');
  assert.equal(fromErrno(sysError('ENOSPC', 'write')).message, 'no space left on device while writing');
});

test('a real node error is translated, and no raw code survives', async () => {
  const err = await fs.readFile('/nonexistent/kiln/file').catch((e: unknown) => e);
  assert.ok(isErrnoError(err));
  const k = fromErrno(err);
  assert.equal(k.message, 'no such file or directory while opening /nonexistent/kiln/file');
  assert.doesNotMatch(k.format(), /ENOENT/);
  // an unknown code keeps node's words without the code
  assert.deepEqual(describeErrno(sysError('EWEIRD', 'open')), { what: 'some text' });
  assert.equal(isErrnoError(new Error('plain')), false);
  assert.equal(isErrnoError(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' })), false);
});

test('fromErrno gives each errno its code, and an explicit code wins', () => {
  const cases: [string, string][] = [
    ['ENOENT', 'not-found'], ['ENOTDIR', 'not-found'], ['EACCES', 'denied'], ['EPERM', 'denied'], ['EROFS', 'denied'],
    ['EEXIST', 'exists'], ['ENOSPC', 'resource-exhausted'], ['EDQUOT', 'resource-exhausted'], ['EMFILE', 'resource-exhausted'],
    ['EBUSY', 'unavailable'], ['EAGAIN', 'unavailable'], ['ECONNRESET', 'unavailable'], ['ENAMETOOLONG', 'invalid'],
    ['ELOOP', 'invalid'], ['EXDEV', 'unsupported'], ['EIO', 'failed'], ['EWEIRD', 'failed'],
  ];
  for (const [errno, code] of cases) {
    assert.equal(fromErrno(sysError(errno, 'open', '/p')).code, code, errno);
    assert.equal(errnoCode(errno), code, errno);
  }
  assert.equal(errnoCode('constructor'), 'failed');
  assert.equal(fromErrno(sysError('ENOENT', 'open', '/p'), 'reading the secret', { code: 'invalid' }).code, 'invalid');
});

test('errorCode reads KilnErrors, their causes, node errors and aborts', async () => {
  assert.equal(errorCode(new KilnError('no such image', { code: 'not-found' })), 'not-found');
  assert.equal(new KilnError('x').code, undefined);
  assert.equal(errorCode(new KilnError('x')), undefined);
  const enoent = await fs.readFile('/nonexistent/kiln/file').catch((e: unknown) => e);
  assert.equal(errorCode(enoent), 'not-found');
  assert.equal(errorCode(new KilnError('cannot read the Dockerfile', { cause: enoent })), 'not-found');
  // an outer code is not overridden by the cause's
  assert.equal(errorCode(new KilnError('bad', { code: 'invalid', cause: enoent })), 'invalid');
  // fetch's "fetch failed" TypeError over a connection error
  const fetchFailed = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
  assert.equal(errorCode(fetchFailed), 'unavailable');
  const ac = new AbortController();
  ac.abort();
  const aborted = await fs.readFile('/proc/self/status', { signal: ac.signal }).catch((e: unknown) => e);
  assert.equal(errorCode(aborted), 'cancelled');
  assert.equal(errorCode(new Error('plain')), undefined);
  assert.equal(errorCode('a string'), undefined);
  assert.ok(hasCode(new KilnError('x', { code: 'conflict' }), 'conflict'));
  assert.equal(hasCode(new KilnError('x', { code: 'conflict' }), 'exists'), false);
  // the code is not an errno: isErrnoError stays false for a KilnError
  assert.equal(isErrnoError(new KilnError('x', { code: 'denied' })), false);
});

test('retryable: unavailable, or resource-exhausted with a retry-after; everything else is fatal', () => {
  assert.equal(retryable(new KilnError('registry unavailable', { code: 'unavailable' })), true);
  assert.equal(retryable(new KilnError('rate limited', { code: 'resource-exhausted', retryAfterMs: 2000 })), true);
  assert.equal(retryable(fromErrno(sysError('ENOSPC', 'write'))), false);
  assert.equal(retryable(fromErrno(sysError('EBUSY', 'rmdir', '/d'))), true);
  assert.equal(retryable(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), true);
  for (const code of ['invalid', 'not-found', 'unauthorized', 'denied', 'conflict', 'cancelled', 'exists', 'unsupported', 'failed'] as const) {
    assert.equal(retryable(new KilnError('x', { code })), false, code);
  }
  assert.equal(retryable(new KilnError('no code')), false);
  // a wrapper without a code is judged by what it wraps, retry hint included
  assert.equal(retryable(new KilnError('pushing the layer', { cause: new KilnError('rate limited', { code: 'resource-exhausted', retryAfterMs: 1000 }) })), true);
  assert.equal(retryable(new KilnError('pushing the layer', { cause: fromErrno(sysError('ENOSPC', 'write')) })), false);
  assert.equal(retryable(new KilnError('pulling', { cause: new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ETIMEDOUT' }) }) })), true);
  assert.equal(retryable(new Error('plain')), false);
});

test('throw sites say what kind of failure they are: bad flags, missing files and secrets, a path in the way', async (t) => {
  const { parseSecretFlag, loadSecrets } = await import('../src/cli/secrets.js');
  const { parseKeyValues, checkOutputFile, writeOutputFile } = await import('../src/cli/options.js');
  const { makeDirsSync, rootPathSync } = await import('../src/fsroot.js');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-codes-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const codeOf = async (f: () => unknown): Promise<string | undefined> => {
    try {
      await f();
    } catch (e) {
      assert.ok(e instanceof KilnError, String(e));
      return e.code;
    }
    assert.fail('no error');
  };
  assert.equal(await codeOf(() => parseSecretFlag('id=a,bogus=1')), 'invalid');
  assert.equal(await codeOf(() => parseKeyValues(['=x'], '--build-arg')), 'invalid');
  delete process.env.KILN_TEST_UNSET_SECRET;
  assert.equal(await codeOf(() => loadSecrets(['id=s,env=KILN_TEST_UNSET_SECRET'])), 'not-found');
  assert.equal(await codeOf(() => loadSecrets([`id=s,src=${path.join(dir, 'missing')}`])), 'not-found');
  assert.equal(await codeOf(() => loadSecrets([`id=s,src=${dir}`])), 'invalid');
  assert.equal(await codeOf(() => checkOutputFile(path.join(dir, 'no/such/dir/f'), '--iidfile')), 'not-found');
  assert.equal(await codeOf(() => writeOutputFile(path.join(dir, 'no-dir', 'f'), 'x', '--iidfile')), 'not-found');
  // inside an image root: a symlink loop is invalid input, a file where a directory goes a conflict
  await fs.symlink('loop', path.join(dir, 'loop'));
  assert.equal(await codeOf(() => rootPathSync(dir, '/loop/x')), 'invalid');
  await fs.writeFile(path.join(dir, 'file'), 'x');
  assert.equal(await codeOf(() => makeDirsSync(dir, path.join(dir, 'file', 'sub'))), 'conflict');
});
