/** System errors in words: fromErrno and describeErrno never show the raw code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { describeErrno, fromErrno, isErrnoError, KilnError } from '../src/errors.js';

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
