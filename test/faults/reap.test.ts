/**
 * The reaper (src/lifecycle.ts) on hand-made roots: mounts of dead owners go deepest first,
 * an `owner` file inside a mounted filesystem is never believed, a pid reused by another
 * process is not a live owner, and a root whose registered processes all live is left as is.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isRoot, tempDir } from '../helpers.js';
import { ownedName, reapStale, sweepStale } from '../../src/lifecycle.js';
import { ownerToken } from '../../src/owner.js';
import { leftovers } from './util.js';

const skip = isRoot() ? false : 'mounting needs root';
const DEAD = '99999999 1';
const deadName = (kind: string): string => `${kind}-99999999-1-0123456789abcdef`;

function mountTmpfs(at: string): void {
  mkdirSync(at, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', at], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

describe('reaping a root', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let other: ChildProcess;
  before(async () => {
    ({ dir, cleanup } = await tempDir('kiln-reap-'));
    other = spawn('sleep', ['300'], { stdio: 'ignore' });
    await new Promise((r) => other.once('spawn', r));
  });
  after(async () => {
    other.kill('SIGKILL');
    for (const mp of (await leftovers(dir)).mounts.reverse()) spawnSync('umount', ['-l', mp]);
    await cleanup();
  });

  it("unmounts a dead owner's mounts deepest first (a secrets tmpfs with one inside it) and removes its dirs; ours stay", async () => {
    const root = path.join(dir, 'a');
    const dead = path.join(root, 'tmp', deadName('oci-secrets'));
    mountTmpfs(dead);
    mountTmpfs(path.join(dead, 'inner'));
    const mine = path.join(root, 'tmp', ownedName('oci-secrets'));
    mountTmpfs(mine);
    sweepStale(root);
    assert.deepEqual((await leftovers(root)).mounts, [mine]);
    assert.deepEqual(await fs.readdir(path.join(root, 'tmp')), [path.basename(mine)]);
    spawnSync('umount', [mine]);
  });

  it('never believes an owner file inside a mounted filesystem', async () => {
    const root = path.join(dir, 'b');
    // a dead owner's snapshot whose mounted image claims to be ours
    const deadDir = path.join(root, 'snapshots', 'active', 'deadbeef00000001');
    mountTmpfs(path.join(deadDir, 'merged'));
    writeFileSync(path.join(deadDir, 'owner'), DEAD);
    writeFileSync(path.join(deadDir, 'merged', 'owner'), ownerToken());
    mountTmpfs(path.join(deadDir, 'merged', 'x'));
    // our snapshot whose mounted image claims a dead owner
    const liveDir = path.join(root, 'snapshots', 'active', 'deadbeef00000002');
    mountTmpfs(path.join(liveDir, 'merged'));
    writeFileSync(path.join(liveDir, 'owner'), ownerToken());
    writeFileSync(path.join(liveDir, 'merged', 'owner'), DEAD);
    mountTmpfs(path.join(liveDir, 'merged', 'x'));
    sweepStale(root);
    assert.deepEqual((await leftovers(root)).mounts, [path.join(liveDir, 'merged'), path.join(liveDir, 'merged', 'x')]);
    assert.deepEqual(await fs.readdir(path.join(root, 'snapshots', 'active')), ['deadbeef00000002']);
    spawnSync('umount', [path.join(liveDir, 'merged', 'x')]);
    spawnSync('umount', [path.join(liveDir, 'merged')]);
  });

  it('a lease, temp file or bundle whose pid now belongs to another process is taken away', async () => {
    const root = path.join(dir, 'c');
    const reused = `${other.pid} 1`;
    mkdirSync(path.join(root, 'leases'), { recursive: true });
    writeFileSync(path.join(root, 'leases', 'lease-x'), `${reused} 0\nsha256:${'a'.repeat(64)}\n`);
    writeFileSync(path.join(root, 'leases', 'lease-mine'), `${ownerToken()} 0\n`);
    mkdirSync(path.join(root, 'tmp'), { recursive: true });
    writeFileSync(path.join(root, 'tmp', `oci-blob-${other.pid}-1-0123456789abcdef`), 'x');
    mkdirSync(path.join(root, 'run', 'bundles', 'kiln-x'), { recursive: true });
    writeFileSync(path.join(root, 'run', 'bundles', 'kiln-x', 'owner'), reused);
    // a cache record's atomic write cut short, and one of ours under way
    mkdirSync(path.join(root, 'cache', 'records', 'ab'), { recursive: true });
    writeFileSync(path.join(root, 'cache', 'records', 'ab', `abcd.json.atomic-${other.pid}-1-0123456789abcdef.tmp`), '{');
    const ours = `abce.json.${ownedName('atomic')}.tmp`;
    writeFileSync(path.join(root, 'cache', 'records', 'ab', ours), '{');
    sweepStale(root);
    const left = await leftovers(root);
    assert.deepEqual(left.leases, ['lease-mine']);
    assert.deepEqual(left.tmp, []);
    assert.deepEqual(left.bundles, []);
    assert.deepEqual(left.atomicTemps, [`cache/records/ab/${ours}`]);
  });

  it('reapStale does nothing while every registered process lives, and sweeps once one is dead', async () => {
    const make = (name: string): string => {
      const root = path.join(dir, name);
      mkdirSync(path.join(root, 'procs'), { recursive: true });
      writeFileSync(path.join(root, 'procs', ownerToken().replace(' ', '-')), '{}\n');
      mkdirSync(path.join(root, 'leases'), { recursive: true });
      writeFileSync(path.join(root, 'leases', 'lease-dead'), `${DEAD} 0\n`);
      return root;
    };
    const quiet = make('d');
    reapStale(quiet);
    assert.deepEqual((await leftovers(quiet)).leases, ['lease-dead'], 'nothing registered died: no sweep');
    const stale = make('e');
    writeFileSync(path.join(stale, 'procs', '99999999-1'), '{}\n');
    reapStale(stale);
    const left = await leftovers(stale);
    assert.deepEqual(left.leases, []);
    assert.deepEqual(left.procs, [ownerToken().replace(' ', '-')]);
  });
});
