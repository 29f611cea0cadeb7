/**
 * The adversarial suite's tools: a canary directory on the host that evil links point at (and
 * whose every byte, mode, owner, link count and time must be unchanged after a build), names
 * no host path has (so their absence from /, /run, /tmp, ... proves nothing leaked), a filesystem listing run inside an image (kiln's or
 * docker's, to compare the two: test/oracle/listing.ts), and the docker oracle (test/oracle/docker.ts).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, rootWithBusybox, runKiln, tempDir, type CliResult } from '../helpers.js';
import { ownName, dockerOracle as sharedOracle } from '../oracle/docker.js';
import { formatWithLinkCounts, kilnListing as listInKiln, listingArgv, parseListing } from '../oracle/listing.js';

export interface Canary {
  /** Absolute host path of the canary directory; evil links point here. */
  dir: string;
  /** A name no host path has: archives and links use it, and it must appear nowhere on the host. */
  evil: string;
  /** Fails when anything under the canary changed, or the evil name appeared on the host. */
  verify(): void;
  cleanup(): Promise<void>;
}

type Snapshot = Map<string, string>;

function snapshot(dir: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (rel: string): void => {
    const abs = path.join(dir, rel);
    const st = lstatSync(abs);
    let what = '';
    if (st.isSymbolicLink()) what = `-> ${readlinkSync(abs)}`;
    else if (st.isFile()) what = createHash('sha256').update(readFileSync(abs)).digest('hex');
    out.set(rel || '.', `${st.mode.toString(8)} ${st.uid}:${st.gid} n${st.nlink} s${st.size} m${st.mtimeMs} c${st.ctimeMs} ${what}`);
    if (st.isDirectory()) for (const name of readdirSync(abs).sort()) walk(rel ? `${rel}/${name}` : name);
  };
  walk('');
  return out;
}

/** Host places a leak would land in (an archive's names, a link's target resolved on the host). */
const HOST_PLACES = ['/', '/run', '/var/run', '/tmp', '/etc', '/var', '/opt', '/root'];

export async function makeCanary(): Promise<Canary> {
  const { dir, cleanup } = await tempDir('kiln-canary-');
  const evil = `kiln-evil-${randomBytes(4).toString('hex')}`;
  writeFileSync(path.join(dir, 'keep.txt'), 'host canary: must never change\n');
  writeFileSync(path.join(dir, 'passwd'), 'evil:x:4242:4242:evil:/:/bin/sh\n');
  mkdirSync(path.join(dir, 'sub'));
  writeFileSync(path.join(dir, 'sub', 'inner.txt'), 'inner\n');
  mkdirSync(path.join(dir, 't')); // an empty directory, as a mount stub cleaner would remove
  symlinkSync('keep.txt', path.join(dir, 'link'));
  const before = snapshot(dir);
  return {
    dir,
    evil,
    verify() {
      assert.deepEqual(snapshot(dir), before, `the host canary ${dir} changed`);
      for (const place of HOST_PLACES) {
        assert.ok(!existsSync(path.join(place, evil)), `${path.join(place, evil)} appeared on the host`);
      }
      assert.ok(!existsSync(path.join(dir, evil)), `${path.join(dir, evil)} appeared on the host`);
    },
    cleanup,
  };
}

export { makeTar, type TarSpec } from '../snapshot/tarutil.js';

/**
 * The listing of `paths` inside kiln's image (test/oracle/listing.ts): one line per path,
 * `path|type|mode|uid:gid|links|x`, x a link's `-> target` or a file's md5, sorted.
 */
export async function kilnListing(root: string, image: string, paths: string[]): Promise<string> {
  const r = await listInKiln(root, image, paths);
  assert.equal(r.code, 0, r.stderr);
  return formatWithLinkCounts(r.entries);
}

/** The base image name both kiln and docker know (the same busybox rootfs), this process's own. */
export const BASE = `${ownName('kiln-sec', 'busybox')}:1`;

export async function importBase(root: string): Promise<void> {
  const r = await runKiln(['import', await busyboxRootfsTar(), BASE], { root });
  assert.equal(r.code, 0, r.stderr);
}

/** The oracle: docker 20.10's BuildKit, or undefined when dockerd is not there. */
export interface Oracle {
  /** Builds the context as `tag` (in docker under a name of this process's own, which listing() reads). */
  build(dir: string, tag: string): Promise<CliResult>;
  listing(image: string, paths: string[]): Promise<string>;
  cleanup(): Promise<void>;
}

export async function dockerOracle(): Promise<Oracle | undefined> {
  const docker = await sharedOracle({ prefix: 'kiln-sec' });
  if (docker.available !== true) return undefined;
  await docker.importRootfs(await busyboxRootfsTar(), BASE);
  // the tests' tags, made this process's own in docker (the suite may run in two processes at once)
  const own = (tag: string) => `${ownName('kiln-sec', tag.replace(/[:/]/g, '-'))}:latest`;
  return {
    async build(ctx, tag) {
      await docker.ready(); // the base again, in a daemon restarted meanwhile
      return docker.build(ctx, { tag: own(tag), args: ['--no-cache', '--progress', 'plain'] });
    },
    async listing(image, paths) {
      const r = await docker.run(own(image), listingArgv(paths));
      assert.equal(r.code, 0, r.stderr);
      return formatWithLinkCounts(parseListing(r.stdout));
    },
    cleanup: () => docker.cleanup(),
  };
}

/** A build context directory with these files (Buffers written as they are). */
export async function contextDir(files: Record<string, string | Buffer>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const t = await tempDir('kiln-sec-ctx-');
  for (const [rel, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(t.dir, rel)), { recursive: true });
    await fs.writeFile(path.join(t.dir, rel), content);
  }
  return t;
}

/** A kiln error as users see it: a message, no stack trace, no raw errno. */
export function assertCleanError(r: CliResult, pattern: RegExp): void {
  assert.notEqual(r.code, 0, 'the build must fail');
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at .*\(.*:\d+:\d+\)|internal error|^Error: E[A-Z]+:/m, r.stderr);
}

/** One suite's kiln root (busybox and BASE imported), canary, oracle, and a build helper. */
export interface SecuritySuite {
  root: string;
  canary: Canary;
  oracle: Oracle | undefined;
  /** Builds a context of these files (after `prepare`, if given) with kiln, tagged `tag`. */
  build(files: Record<string, string | Buffer>, tag: string, prepare?: (dir: string) => Promise<void>): Promise<{ ctx: string; r: CliResult }>;
  cleanup(): Promise<void>;
}

export async function securitySuite(): Promise<SecuritySuite> {
  const { root, cleanup: cleanupRoot } = await rootWithBusybox();
  const cleanups: Array<() => Promise<void>> = [cleanupRoot];
  try {
    await importBase(root);
    const canary = await makeCanary();
    cleanups.push(canary.cleanup);
    const oracle = await dockerOracle();
    if (oracle) cleanups.push(oracle.cleanup);
    return {
      root,
      canary,
      oracle,
      async build(files, tag, prepare) {
        const ctx = await contextDir(files);
        cleanups.push(ctx.cleanup);
        await prepare?.(ctx.dir);
        return { ctx: ctx.dir, r: await runKiln(['build', '--progress', 'plain', '-t', tag, ctx.dir], { root }) };
      },
      async cleanup() {
        for (const c of cleanups.reverse()) await c();
      },
    };
  } catch (e) {
    for (const c of cleanups.reverse()) await c();
    throw e;
  }
}
