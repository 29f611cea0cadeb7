/**
 * What a kiln process leaves under a kiln root while it works, and how it is taken away
 * again: by the process itself when it is signalled, or by the next command on the root
 * once the process is gone (kill -9, a crash, a power cut of the process tree).
 *
 * Every per-process resource lives under the root and names its owner ("pid starttime",
 * see owner.ts): an `owner` file in its directory, or the owner in its name
 * (`<kind>-<pid>-<start>-<hex>`, see `ownedName`). A process that makes such resources first
 * registers itself in `<root>/procs/<pid>-<start>` and removes that entry when it exits
 * normally. The next command reads that one directory: when every entry belongs to a live
 * process there is nothing to do; otherwise it sweeps the root (containers, mounts deepest
 * first, active snapshots, half-unpacked layers, temp files, leases, locks) for resources of
 * dead owners.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { kilnPaths } from './paths.js';
import { killRecorded, ownerAlive, ownerToken } from './owner.js';

/** `<kind>-<pid>-<start>-<hex>`: kinds are lower-case words (no digits), so the split is unambiguous. */
const OWNED_NAME = /^[a-z][a-z-]*?-(\d+)-(\d+)-[0-9a-f]{8,}(?:\.[a-z0-9.]+)?$/;
/** `<file>.atomic-<pid>-<start>-<hex>.tmp`, from fsutil's writeFileAtomic. */
const ATOMIC_TEMP = /\.(atomic-\d+-\d+-[0-9a-f]+)\.tmp$/;
/** Resources without an owner file younger than this may be being created right now. */
const UNOWNED_GRACE_MS = 60_000;

let myToken: string | undefined;
function me(): string {
  myToken ??= ownerToken();
  return myToken;
}

/** `<kind>-<pid>-<start>-<hex>`: a name the sweep attributes to this process. */
export function ownedName(kind: string): string {
  const [pid, start] = me().split(' ');
  return `${kind}-${pid}-${start}-${randomBytes(8).toString('hex')}`;
}

/** The owner token in a name made by `ownedName`, if it is one. */
export function ownerInName(name: string): string | undefined {
  const m = OWNED_NAME.exec(name);
  return m ? `${m[1]} ${m[2]}` : undefined;
}

const registered = new Map<string, string>();
const tempsBeside = new Set<string>();
let exitHookInstalled = false;

/**
 * Records in `<root>/procs/` that this process works on the root (once per process and
 * root; synchronous, a mkdir and a small write). Removed again when the process exits.
 */
export function registerProcess(root: string): void {
  const abs = path.resolve(root);
  if (registered.has(abs)) return;
  const dir = kilnPaths(abs).procs;
  const file = path.join(dir, me().replace(' ', '-'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `${JSON.stringify({ argv: process.argv.slice(1).join(' ').slice(0, 300), since: new Date().toISOString() })}\n`);
  registered.set(abs, file);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const f of registered.values()) {
        try {
          unlinkSync(f);
        } catch {
          // already gone
        }
      }
    });
  }
}

const reaped = new Set<string>();

/**
 * Removes what dead kiln processes left on the root. Cheap when there is nothing to do:
 * one readdir of `<root>/procs` and a /proc read per live entry. Once per process and root.
 */
export function reapStale(root: string): void {
  const abs = path.resolve(root);
  if (reaped.has(abs)) return;
  reaped.add(abs);
  const procs = kilnPaths(abs).procs;
  let names: string[];
  try {
    names = readdirSync(procs);
  } catch {
    // a root from before process entries, or a fresh one: sweep it once (cheap when empty)
    if (!existsDir(abs)) return;
    sweepRoot(abs, 'dead');
    // from now on the cheap path applies
    try {
      mkdirSync(procs);
    } catch {
      // made meanwhile, or a read-only root
    }
    return;
  }
  const dead = names.filter((n) => {
    const token = n.replace('-', ' ');
    return token !== me() && !ownerAlive(token);
  });
  if (dead.length === 0) return;
  sweepRoot(abs, 'dead');
  for (const n of dead) rmQuiet(path.join(procs, n));
}

/**
 * Takes away everything this process holds on the roots it registered on: its containers
 * (killed and deleted), its mounts (deepest first), active snapshots, temp files, leases and
 * locks. Synchronous: it runs in a signal handler, just before the process exits.
 */
export function releaseOwnResources(): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  // Work already under way can add a resource after a sweep: a child (a mount, a runtime
  // creating a container) or a file operation in libuv's thread pool (a recursive mkdir
  // recreates a removed directory, without its owner file). The children are stopped; the
  // pool finishes what it has while this thread waits, and starts nothing new. So the sweep
  // is repeated, removing again what it removed before, until 150 ms pass without finding
  // anything (2 s at most).
  removedOwn = new Set();
  const start = Date.now();
  let lastFound = start;
  for (let round = 0; Date.now() - lastFound < 150 && Date.now() - start < 2000; round++) {
    const before = swept;
    for (const root of registered.keys()) sweepRoot(root, 'self');
    for (const tmp of tempsBeside) rmQuiet(tmp);
    for (const p of [...removedOwn]) rmQuiet(p);
    if (round === 0) stopChildren();
    if (swept !== before) lastFound = Date.now();
    Atomics.wait(pause, 0, 0, 15);
  }
}

/** Processes (not this one) whose command line names one of `words` (container ids). */
function processesNaming(words: string[]): number[] {
  const out: number[] = [];
  for (const name of safeReaddir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => words.includes(a))) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Running (not zombie) child processes of this process. */
function children(): number[] {
  const out: number[] = [];
  for (const name of safeReaddir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === process.pid && state !== 'Z' && state !== 'X') out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** SIGKILLs the children of this process and waits (up to 3 s) until they are gone. */
function stopChildren(): number {
  const kids = children();
  for (const pid of kids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  waitGone(kids);
  return kids.length;
}

/** Sweeps the root for what dead owners left, whether or not a dead process is registered. */
export function sweepStale(root: string): void {
  sweepRoot(path.resolve(root), 'dead');
}

type Mode = 'dead' | 'self';

function existsDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** What the sweeps of this process took away (to tell when a sweep found nothing more). */
let swept = 0;
/** Paths a sweep of this process's own resources removed: removed again should they reappear. */
let removedOwn: Set<string> | undefined;

function rmQuiet(p: string): void {
  try {
    lstatSync(p);
    swept++;
  } catch {
    return;
  }
  removedOwn?.add(p);
  try {
    rmSync(p, { recursive: true, force: true });
  } catch {
    // not ours to remove, or already gone
  }
}

function readOwnerFile(file: string): string | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim().split('\n')[0];
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

function ageMs(p: string): number {
  try {
    return Date.now() - lstatSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Whether another live process is registered on the root being swept: only then can a
 * resource without its owner file be one that is being made right now (every process
 * registers before it makes anything).
 */
let othersLive = true;

function anotherLiveProcess(root: string): boolean {
  return safeReaddir(kilnPaths(root).procs).some((n) => {
    const token = n.replace('-', ' ');
    return token !== me() && ownerAlive(token);
  });
}

/** Whether a resource with this owner (undefined: none recorded) is to be taken away. */
function judge(mode: Mode, owner: string | undefined, p: string): boolean {
  if (mode === 'self') return owner !== undefined && owner.split(/\s+/).slice(0, 2).join(' ') === me();
  if (owner === undefined) return !othersLive || ageMs(p) > UNOWNED_GRACE_MS;
  const token = owner.split(/\s+/).slice(0, 2).join(' ');
  return token !== me() && !ownerAlive(token);
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or under `root`, from this process's mount table. */
export function mountsUnder(root: string): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 5) continue;
    const mp = unescapeMount(fields[4]);
    if (mp === root || mp.startsWith(`${root}/`)) out.push(mp);
  }
  return out;
}

/**
 * The owner of a mount point under root: the owner named by the nearest directory above it
 * (its `owner` file or an owned name), looked up only outside any other mount (a mounted
 * image could hold a file called `owner`). Nested mounts take the owner of the outermost.
 */
function mountOwner(root: string, mp: string, all: Set<string>): string | undefined {
  const rel = path.relative(root, mp).split('/');
  // the outermost mount point on the way down from root
  let top = mp;
  for (let i = 1; i <= rel.length; i++) {
    const p = path.join(root, ...rel.slice(0, i));
    if (all.has(p)) {
      top = p;
      break;
    }
  }
  const own = ownerInName(path.basename(top));
  if (own) return own;
  for (let dir = path.dirname(top); dir.length > root.length; dir = path.dirname(dir)) {
    const inName = ownerInName(path.basename(dir));
    if (inName) return inName;
    const file = readOwnerFile(path.join(dir, 'owner'));
    if (file) return file;
  }
  return undefined;
}

/** A mount of a known transient area (whose owner file may be missing: killed while making it). */
function transient(root: string, mp: string): boolean {
  return ['snapshots/active/', 'tmp/', 'run/'].some((a) => mp.startsWith(path.join(root, a)));
}

function runtimeBinary(root: string): string {
  if (process.env.KILN_RUNTIME) return process.env.KILN_RUNTIME;
  try {
    const saved = JSON.parse(readFileSync(kilnPaths(root).runRuntimeProbe, 'utf8')) as { runtime?: { path?: string } };
    if (saved.runtime?.path) return saved.runtime.path;
  } catch {
    // not detected yet: the usual name
  }
  return 'runc';
}

function sweepContainers(root: string, mode: Mode): void {
  const bundles = kilnPaths(root).runBundles;
  const runtimeRoot = kilnPaths(root).runRuntime;
  const doomed = new Set<string>();
  const kept = new Set<string>();
  for (const id of safeReaddir(bundles)) {
    const dir = path.join(bundles, id);
    if (judge(mode, readOwnerFile(path.join(dir, 'owner')), dir)) doomed.add(id);
    else kept.add(id);
  }
  // runtime state without a bundle: its owner died between deleting the bundle and the state
  // (or, for this process, a container created while the first sweep ran)
  const orphanStates = (): string[] =>
    safeReaddir(runtimeRoot).filter((id) => !kept.has(id) && (mode === 'dead' ? id.startsWith('kiln-') : id.startsWith(`kiln-${process.pid}-`)));
  for (const id of orphanStates()) doomed.add(id);
  if (doomed.size === 0) return;
  // a runtime still creating one of them (its owner killed meanwhile) would start it after
  // the kill below: stopped first, and waited for (it may be writing the container's state)
  const runtimes = processesNaming([...doomed]);
  for (const pid of runtimes) {
    try {
      process.kill(pid, 'SIGKILL');
      swept++;
    } catch {
      // gone
    }
  }
  waitGone(runtimes);
  for (const id of orphanStates()) doomed.add(id);
  const bin = runtimeBinary(root);
  for (const id of doomed) {
    if (existsDir(path.join(runtimeRoot, id))) {
      spawnSync(bin, ['--root', runtimeRoot, 'kill', id, 'KILL'], { stdio: 'ignore', timeout: 10_000 });
      spawnSync(bin, ['--root', runtimeRoot, 'delete', '--force', id], { stdio: 'ignore', timeout: 10_000 });
    }
    releaseNetwork(path.join(bundles, id));
    rmQuiet(path.join(bundles, id));
  }
}

/**
 * A container's network helper (exec/network.ts: pasta or slirp4netns, recorded as "pid
 * start" in its bundle), should it have outlived its kiln (it dies with kiln by its
 * parent-death signal; this is the fallback), and its namespace, bind-mounted in the bundle.
 */
function releaseNetwork(bundle: string): void {
  if (killRecorded(readOwnerFile(path.join(bundle, 'helper')) ?? '')) swept++;
  // the namespace's bind mount, before the bundle can be removed
  const netns = path.join(bundle, 'netns');
  if (mountsUnder(netns).length > 0) spawnSync('umount', ['-l', netns], { stdio: 'ignore', timeout: 10_000 });
}

/** Whether a process runs (a zombie does not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Waits (up to 3 s) until none of `pids` runs. */
function waitGone(pids: number[]): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 300 && pids.some(running); i++) Atomics.wait(pause, 0, 0, 10);
}

function sweepMounts(root: string, mode: Mode): Set<string> {
  const all = mountsUnder(root);
  const set = new Set(all);
  const doomed = all.filter((mp) => {
    if (mp === root) return false;
    const owner = mountOwner(root, mp, set);
    if (owner === undefined) return mode === 'dead' && transient(root, mp) && (!othersLive || ageMs(mp) > UNOWNED_GRACE_MS);
    return judge(mode, owner, mp);
  });
  // deepest first
  doomed.sort((a, b) => b.split('/').length - a.split('/').length);
  for (const mp of doomed) {
    swept++;
    const r = spawnSync('umount', [mp], { stdio: 'ignore', timeout: 10_000 });
    if (r.status !== 0) spawnSync('umount', ['-l', mp], { stdio: 'ignore', timeout: 10_000 });
  }
  return new Set(doomed.length ? mountsUnder(root) : all);
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Removes `p` unless something is still mounted at or under it (never delete through a mount). */
function removeTree(p: string, mounted: Set<string>): void {
  for (const mp of mounted) if (mp === p || mp.startsWith(`${p}/`)) return;
  rmQuiet(p);
}

function sweepRoot(root: string, mode: Mode): void {
  const paths = kilnPaths(root);
  othersLive = mode === 'self' || anotherLiveProcess(root);
  sweepContainers(root, mode);
  const mounted = sweepMounts(root, mode);
  // active snapshots and half-unpacked or half-adopted layers: an owner file inside
  const active = paths.snapshotActive;
  for (const name of safeReaddir(active)) {
    const dir = path.join(active, name);
    if (judge(mode, readOwnerFile(path.join(dir, 'owner')), dir)) removeTree(dir, mounted);
  }
  const layers = paths.snapshotLayers;
  for (const name of safeReaddir(layers)) {
    if (!name.startsWith('.tmp-')) continue;
    const dir = path.join(layers, name);
    if (judge(mode, readOwnerFile(path.join(dir, 'owner')), dir)) removeTree(dir, mounted);
  }
  // temp files and dirs: the owner in the name, else an owner file, else the pid of old names
  const tmp = paths.tmp;
  for (const name of safeReaddir(tmp)) {
    const p = path.join(tmp, name);
    let owner = ownerInName(name) ?? readOwnerFile(path.join(p, 'owner'));
    const legacy = /^oci-[a-z]+-(\d+)-[0-9a-f]+$/.exec(name);
    if (owner === undefined && legacy) owner = `${legacy[1]}`;
    if (owner === undefined && mode === 'dead' && othersLive && ageMs(p) <= 24 * 3600_000) continue;
    if (owner === undefined ? mode === 'dead' : judge(mode, owner, p)) removeTree(p, mounted);
  }
  // temp files of atomic writes beside kiln's own files (cache records, indexes, usage)
  const records = paths.cacheRecords;
  const besideDirs = [paths.run, paths.cache, paths.cacheContexts, paths.cacheBuilds];
  for (const dir of [...besideDirs, ...safeReaddir(records).map((d) => path.join(records, d))]) {
    for (const name of safeReaddir(dir)) {
      const m = ATOMIC_TEMP.exec(name);
      const owner = m ? ownerInName(m[1]) : undefined;
      if (owner && judge(mode, owner, path.join(dir, name))) rmQuiet(path.join(dir, name));
    }
  }
  const leases = paths.leases;
  for (const name of safeReaddir(leases)) {
    const file = path.join(leases, name);
    if (judge(mode, readOwnerFile(file), file)) rmQuiet(file);
  }
  const locks = paths.locks;
  for (const name of safeReaddir(locks)) {
    const file = path.join(locks, name);
    const taking = ownerInName(name);
    // the temp file a lock is linked from
    if (taking) {
      if (judge(mode, taking, file)) rmQuiet(file);
      continue;
    }
    if (!name.endsWith('.lock')) continue;
    const lines = (() => {
      try {
        return readFileSync(file, 'utf8').split('\n');
      } catch {
        return [];
      }
    })();
    // "pid\nhost\nnonce\nstart\n…": only locks that record a start time are judged here
    // (not remembered as removed: another process may take the lock right after)
    if (lines.length > 3 && /^\d+$/.test(lines[0]) && /^\d+$/.test(lines[3]) && judge(mode, `${lines[0]} ${lines[3]}`, file)) rmSync(file, { force: true });
  }
}

const BESIDE_TEMP = /^\..+\.(kiln-[a-z]+-\d+-\d+-[0-9a-f]+)\.tmp$/;

/**
 * A hidden temp name beside `file` for writing it whole before a rename
 * (`.<name>.kiln-<kind>-<pid>-<start>-<hex>.tmp`); `removeStaleTempsBeside` takes away those
 * of dead owners.
 */
export function tempBeside(file: string, kind = 'save'): string {
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${ownedName(`kiln-${kind}`)}.tmp`);
  // outside any root: removed by name when this process is interrupted
  tempsBeside.add(tmp);
  return tmp;
}

/** Removes temp files made by `tempBeside` in the directory of `file` whose owner is gone. */
export function removeStaleTempsBeside(file: string): void {
  const dir = path.dirname(path.resolve(file));
  for (const name of safeReaddir(dir)) {
    const m = BESIDE_TEMP.exec(name);
    const owner = m ? ownerInName(m[1]) : undefined;
    if (owner && owner !== me() && !ownerAlive(owner)) rmQuiet(path.join(dir, name));
  }
}
