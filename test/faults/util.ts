/** Fault injection helpers: kiln processes to signal at chosen moments, and what they left. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kilnBin, repoRoot } from '../helpers.js';

/** A small seeded generator (mulberry32): the same seed gives the same fault points. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** KILN_FAULT_SEED, or a fixed default so that CI runs are repeatable. */
export const faultSeed = Number(process.env.KILN_FAULT_SEED ?? 8);

export interface Running {
  child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  /** Resolves once the output matches. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `kiln --root root ...args` in its own process group (only kiln itself is signalled). */
export function startKiln(root: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Running {
  const child = spawn(process.execPath, [kilnBin, '--root', root, ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const onData = (c: Buffer): void => {
    out += c.toString();
    for (const w of waiters.splice(0)) {
      if (w.re.test(out)) w.resolve();
      else waiters.push(w);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs = 60_000) {
      if (re.test(out)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${out}`)), timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          resolve();
        };
        waiters.push({ re, resolve: done });
        void exited.then(() => {
          if (!re.test(out)) {
            clearTimeout(timer);
            reject(new Error(`kiln exited before ${re}: ${out}`));
          }
        });
      });
    },
  };
}

/** Kills a started kiln if it still runs (for test cleanup). */
export async function stopKiln(r: Running): Promise<void> {
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await r.exited;
}

export interface Leftovers {
  mounts: string[];
  containers: string[];
  active: string[];
  bundles: string[];
  leases: string[];
  tmp: string[];
  layerTemps: string[];
  locks: string[];
  procs: string[];
  /** Temp files of atomic writes beside kiln's cache files. */
  atomicTemps: string[];
  /** Files under the root holding the secret's value. */
  secrets: string[];
}

const ls = async (dir: string): Promise<string[]> => (await fs.readdir(dir).catch(() => [] as string[])).sort();

async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        // blobs hold image content (a secret never reaches a layer: checked by the tests that build)
        if (p !== path.join(dir, 'blobs')) await walk(p);
      } else if (e.isFile()) {
        const st = await fs.stat(p).catch(() => undefined);
        if (st && st.size < 1 << 20 && (await fs.readFile(p, 'utf8').catch(() => '')).includes(needle)) out.push(path.relative(dir, p));
      }
    }
  };
  await walk(dir);
  return out;
}

/** Everything a kiln process may leave on a root while it runs; all empty when none runs. */
export async function leftovers(root: string, secret?: string): Promise<Leftovers> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((mp): mp is string => mp !== undefined && mp.startsWith(`${root}/`));
  const list = spawnSync('runc', ['--root', path.join(root, 'run', 'runtime'), 'list', '-q'], { encoding: 'utf8' });
  return {
    mounts,
    containers: (list.stdout ?? '').split('\n').filter(Boolean),
    active: await ls(path.join(root, 'snapshots', 'active')),
    bundles: await ls(path.join(root, 'run', 'bundles')),
    leases: await ls(path.join(root, 'leases')),
    tmp: await ls(path.join(root, 'tmp')),
    layerTemps: (await ls(path.join(root, 'snapshots', 'layers'))).filter((n) => n.startsWith('.')),
    locks: (await ls(path.join(root, 'locks'))).filter((n) => n.endsWith('.lock')),
    procs: await ls(path.join(root, 'procs')),
    atomicTemps: await atomicTemps(root),
    secrets: secret ? await filesContaining(root, secret) : [],
  };
}

export const NOTHING: Leftovers = { mounts: [], containers: [], active: [], bundles: [], leases: [], tmp: [], layerTemps: [], locks: [], procs: [], atomicTemps: [], secrets: [] };

async function atomicTemps(root: string): Promise<string[]> {
  const records = path.join(root, 'cache', 'records');
  const dirs = ['run', 'cache', 'cache/contexts', 'cache/builds'].map((d) => path.join(root, d));
  for (const d of await ls(records)) dirs.push(path.join(records, d));
  const out: string[] = [];
  for (const d of dirs) for (const n of await ls(d)) if (n.endsWith('.tmp')) out.push(path.relative(root, path.join(d, n)));
  return out;
}

/** Processes (besides kiln) whose command line contains `marker` (with `atStart`, begins with it): a container's that outlived it. */
export function processesWith(marker: string, exclude: number[] = [], atStart = false): number[] {
  const out: number[] = [];
  for (const pid of readdirNumeric('/proc')) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if ((atStart ? cmd.startsWith(marker) : cmd.includes(marker)) && pid !== process.pid && !exclude.includes(pid)) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

function readdirNumeric(dir: string): number[] {
  return readdirSync(dir)
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/** Every blob in the store hashes to its name (a fault never leaves a corrupt store). */
export async function corruptBlobs(root: string): Promise<string[]> {
  const dir = path.join(root, 'blobs', 'sha256');
  const bad: string[] = [];
  for (const name of await ls(dir)) {
    const sum = createHash('sha256').update(await fs.readFile(path.join(dir, name))).digest('hex');
    if (sum !== name) bad.push(name);
  }
  return bad;
}

export const signo = (s: NodeJS.Signals): number => os.constants.signals[s];

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
