import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveInRoot, resolveUser } from '../../src/exec/index.js';
import { KilnError } from '../../src/errors.js';
import { GROUP, PASSWD } from './rootfs.js';

async function rootWith(files: Record<string, string>): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-user-'));
  for (const [name, content] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fsp.writeFile(path.join(dir, name), content);
  }
  return dir;
}

test('resolveUser follows docker semantics', async () => {
  const r = await rootWith({ 'etc/passwd': PASSWD, 'etc/group': GROUP });
  assert.deepEqual(await resolveUser(r, ''), { uid: 0, gid: 0, additionalGids: [0, 3000], home: '/root' });
  assert.deepEqual(await resolveUser(r, 'root'), { uid: 0, gid: 0, additionalGids: [0, 3000], home: '/root' });
  assert.deepEqual(await resolveUser(r, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000, 2000], home: '/home/app' });
  assert.deepEqual(await resolveUser(r, '1000'), { uid: 1000, gid: 1000, additionalGids: [1000, 2000], home: '/home/app' });
  // numeric uid without a passwd entry: gid 0, home /
  assert.deepEqual(await resolveUser(r, '1234'), { uid: 1234, gid: 0, additionalGids: [0], home: '/' });
  // explicit group: no supplementary groups
  assert.deepEqual(await resolveUser(r, 'app:extra'), { uid: 1000, gid: 2000, additionalGids: [2000], home: '/home/app' });
  assert.deepEqual(await resolveUser(r, 'app:4321'), { uid: 1000, gid: 4321, additionalGids: [4321], home: '/home/app' });
  assert.deepEqual(await resolveUser(r, '5:6'), { uid: 5, gid: 6, additionalGids: [6], home: '/' });
  await assert.rejects(
    resolveUser(r, 'nobody'),
    (e: unknown) => e instanceof KilnError && e.message === 'unable to find user nobody: no matching entries in passwd file' && e.code === 'not-found',
  );
  await assert.rejects(
    resolveUser(r, 'app:nogroup'),
    (e: unknown) => e instanceof KilnError && e.message === 'unable to find group nogroup: no matching entries in group file' && e.code === 'not-found',
  );
  await assert.rejects(resolveUser(r, '4294967296'), (e: unknown) => e instanceof KilnError && e.code === 'invalid' && /out of range/.test(e.message));
  await fsp.rm(r, { recursive: true, force: true });
});

test('resolveUser without passwd/group files, and through an absolute symlink', async () => {
  const empty = await rootWith({});
  assert.deepEqual(await resolveUser(empty, ''), { uid: 0, gid: 0, additionalGids: [0], home: '/' });
  assert.deepEqual(await resolveUser(empty, '33:44'), { uid: 33, gid: 44, additionalGids: [44], home: '/' });
  await assert.rejects(resolveUser(empty, 'app'), /unable to find user app: no matching entries in passwd file/);
  await fsp.rm(empty, { recursive: true, force: true });

  // /etc/passwd -> /usr/lib/passwd must resolve inside the rootfs, not on the host
  const linked = await rootWith({ 'usr/lib/passwd': 'svc:x:77:88::/srv:/bin/sh\n' });
  await fsp.mkdir(path.join(linked, 'etc'));
  await fsp.symlink('/usr/lib/passwd', path.join(linked, 'etc/passwd'));
  assert.deepEqual(await resolveUser(linked, 'svc'), { uid: 77, gid: 88, additionalGids: [88], home: '/srv' });
  assert.equal(await resolveInRoot(linked, '/etc/../../../etc/passwd'), path.join(linked, 'usr/lib/passwd'));
  await fsp.symlink('../../../..', path.join(linked, 'up'));
  assert.equal(await resolveInRoot(linked, '/up/etc/shadow'), path.join(linked, 'etc/shadow'));
  await fsp.rm(linked, { recursive: true, force: true });
});
