/** RUN --mount and --secret parsing, as BuildKit's frontend and buildx define them. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseMount, parseRamBytes } from '../../src/frontend/mounts.js';
import { splitCsvFields } from '../../src/csv.js';
import { loadSecrets, parseSecretFlag } from '../../src/cli/secrets.js';

const fail = (m: string): Error => new Error(m);

describe('RUN --mount', () => {
  it('secret: the id from id=, src= or the target base name; env= alone has no file', () => {
    assert.deepEqual(parseMount('type=secret,id=tok', fail), { type: 'secret', target: '/run/secrets/tok', id: 'tok' });
    assert.equal(parseMount('type=secret,target=/run/secrets/apikey', fail).id, 'apikey');
    assert.equal(parseMount('type=secret,src=npmrc', fail).id, 'npmrc');
    assert.deepEqual(parseMount('type=secret,id=tok,env=TOKEN', fail), { type: 'secret', target: '', id: 'tok', env: 'TOKEN' });
    const withFile = parseMount('type=secret,id=tok,env=TOKEN,target=/t,mode=0440,uid=1,gid=2,required', fail);
    assert.deepEqual(withFile, { type: 'secret', target: '/t', id: 'tok', env: 'TOKEN', mode: 0o440, uid: 1, gid: 2, required: true });
    assert.throws(() => parseMount('type=secret,id=a,src=b', fail), /both source and id can't be set/);
    assert.throws(() => parseMount('type=secret,env=X', fail), /one of id, source or target is required/);
  });

  it('tmpfs size= in bytes or binary units; keys only where BuildKit allows them', () => {
    assert.equal(parseMount('type=tmpfs,target=/t,size=64k', fail).size, 65536);
    assert.equal(parseRamBytes('1.5m'), 1572864);
    assert.equal(parseRamBytes('10MiB'), 10485760);
    assert.equal(parseRamBytes('100'), 100);
    assert.equal(parseRamBytes('ten'), undefined);
    assert.throws(() => parseMount('type=tmpfs,target=/t,size=lots', fail), /invalid value for size/);
    assert.throws(() => parseMount('type=bind,target=/t,size=1m', fail), /unexpected key 'size' for mount type 'bind'/);
    assert.throws(() => parseMount('type=tmpfs,target=/t,mode=0700', fail), /mode not allowed for "tmpfs" type mounts/);
    assert.throws(() => parseMount('type=bind,target=/t,uid=1', fail), /uid not allowed for "bind" type mounts/);
    assert.throws(() => parseMount('type=cache,target=/t,required', fail), /unexpected key 'required' for mount type 'cache'/);
    assert.throws(() => parseMount('type=cache,target=/t,env=X', fail), /unexpected key 'env'/);
  });

  it('ssh: id default, target numbered by the solver, no source; sharing only for cache', () => {
    assert.deepEqual(parseMount('type=ssh', fail), { type: 'ssh', target: '', id: 'default' });
    assert.deepEqual(parseMount('type=ssh,id=gh,target=/s.sock,uid=1,gid=2,mode=0700,required', fail), { type: 'ssh', target: '/s.sock', id: 'gh', uid: 1, gid: 2, mode: 0o700, required: true });
    assert.throws(() => parseMount('type=ssh,source=x', fail), /ssh does not support source/);
    assert.throws(() => parseMount('type=ssh,sharing=locked', fail), /invalid cache sharing set for ssh mount/);
    assert.throws(() => parseMount('type=bind,target=/t,sharing=private', fail), /invalid cache sharing set for bind mount/);
    assert.equal(parseMount('type=cache,target=/t,sharing=locked,ro', fail).readonly, true);
  });

  it('from is never expanded; other values are, one by one', () => {
    assert.throws(() => parseMount('from=$STAGE,target=/x', fail), /'from' doesn't support variable expansion, define alias stage instead/);
    assert.throws(() => parseMount('from=${STAGE},target=/x', fail), /doesn't support variable expansion/);
    // a trailing $ is not a variable
    assert.equal(parseMount('from=weird$,target=/x', fail).fromName, 'weird$');
    const expand = (w: string): string => w.replace('$DIR', 'a,b');
    assert.equal(parseMount('type=bind,source=$DIR,target=/x', fail, expand).source, 'a,b', 'an expanded comma is no field separator');
    assert.deepEqual(splitCsvFields('type=bind,"source=a,b",target=/x'), ['type=bind', 'source=a,b', 'target=/x']);
  });

  it('a relative target is under the WORKDIR; a cache is named by its target as written; / is refused', () => {
    assert.equal(parseMount('type=bind,target=src', fail, undefined, '/app').target, '/app/src');
    const cache = parseMount('type=cache,target=.cache/', fail, undefined, '/home/app');
    assert.equal(cache.target, '/home/app/.cache/');
    assert.equal(cache.id, '.cache');
    assert.equal(parseMount('type=cache,target=/root/.npm/', fail).id, '/root/.npm');
    assert.throws(() => parseMount('type=tmpfs,target=/', fail), /invalid mount target "\/"/);
    assert.throws(() => parseMount('type=bind,target=.', fail, undefined, '/'), /invalid mount target/);
  });

  it('bind is read-only unless rw; rw and readwrite make it writable', () => {
    assert.equal(parseMount('type=bind,target=/x', fail).readonly, true);
    assert.equal(parseMount('type=bind,target=/x,rw', fail).readonly, false);
    assert.equal(parseMount('type=bind,target=/x,readwrite=true', fail).readonly, false);
    assert.equal(parseMount('type=bind,target=/x,rw=false', fail).readonly, true);
  });
});

describe('--secret', () => {
  it('cuts each field at its first =, so a path may hold =', () => {
    assert.deepEqual(parseSecretFlag('id=k,src=/a=b/c=d'), { id: 'k', src: '/a=b/c=d', env: undefined });
    assert.deepEqual(parseSecretFlag('id=k,env=VAR'), { id: 'k', src: undefined, env: 'VAR' });
    assert.deepEqual(parseSecretFlag('type=env,id=k,src=VAR'), { id: 'k', src: undefined, env: 'VAR' });
    assert.equal(parseSecretFlag('src=/home/me/.npmrc').id, '.npmrc');
    assert.equal(parseSecretFlag('env=GITHUB_TOKEN').id, 'GITHUB_TOKEN');
    assert.throws(() => parseSecretFlag('id=k,src=a,env=B'), /give src= or env=, not both/);
    assert.throws(() => parseSecretFlag('id=k,bogus=1'), /unexpected key "bogus"/);
    assert.throws(() => parseSecretFlag('type=ssh,id=k'), /unsupported secret type "ssh"/);
  });

  it('reads values into memory; a missing file, a directory or an unset variable is a clear error', async () => {
    process.env.KILN_TEST_SECRET_UNIT = 'v1';
    try {
      const got = await loadSecrets(['id=a,env=KILN_TEST_SECRET_UNIT']);
      assert.equal(Buffer.from(got.a).toString(), 'v1');
    } finally {
      delete process.env.KILN_TEST_SECRET_UNIT;
    }
    await assert.rejects(loadSecrets(['id=m,src=/nonexistent/x=y']), /secret m: cannot read \/nonexistent\/x=y: no such file/);
    await assert.rejects(loadSecrets(['id=d,src=/']), /secret d: \/ is a directory/);
    await assert.rejects(loadSecrets(['id=e,env=KILN_TEST_SECRET_UNSET']), /secret e: environment variable KILN_TEST_SECRET_UNSET is not set/);
  });
});
