/**
 * Differential helpers for RUN tests: the same Dockerfile built by kiln and by docker 20.10's
 * BuildKit (the oracle, test/oracle/docker.ts), each image saved as a docker archive and read
 * back layer by layer (test/oracle/tree.ts).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCommand, runKiln, tempDir } from '../helpers.js';
import { dockerOracle, ownName, saveKilnImage, type DockerOracle } from '../oracle/docker.js';
import { readDockerArchive } from '../oracle/tree.js';

export interface Entry {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkname?: string;
  content?: string;
}

export interface SavedImage {
  /** Each layer's entries, base first, without mtimes. */
  layers: Entry[][];
  diffIds: string[];
  history: Array<{ created_by?: string; empty_layer?: boolean }>;
}

/** Reads a docker-archive tarball (`docker save` / `kiln save`): each layer's entries. */
export async function readArchive(archive: Buffer): Promise<SavedImage> {
  const { config, layers } = await readDockerArchive(archive);
  const name = (header: { name: string }) => header.name.replace(/^\.\//, '').replace(/\/$/, '');
  return {
    layers: layers.map((members) => {
      // one entry per path (the last of the same name), in the order the names first came
      const byPath = new Map(members.map((m) => [name(m.header), m]));
      return [...byPath.values()].map(({ header, data }) => {
        const e: Entry = { path: name(header), type: header.type ?? 'file', mode: (header.mode ?? 0) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0 };
        if (header.linkname) e.linkname = header.linkname;
        if (header.type === 'file') e.content = data.toString('utf8');
        return e;
      });
    }),
    diffIds: config.rootfs?.diff_ids ?? [],
    history: config.history ?? [],
  };
}

/** The files of an image's merged view (no whiteouts in these tests): path → entry. */
export function mergedView(img: SavedImage): Map<string, Entry> {
  const view = new Map<string, Entry>();
  for (const l of img.layers) for (const e of l) view.set(e.path, e);
  return view;
}

/**
 * A docker 20.10 layer as current BuildKit's differ would write it: docker's graph driver tars
 * the whole upper dir, so directories copied up unchanged (same type, mode and owner, nothing
 * changed below) are in it; BuildKit's overlay differ leaves them out. `stubs` are mount
 * targets (and their created parents) that dockerd 20.10 had no stub cleaner for.
 */
export function asCurrentBuildkit(layer: Entry[], below: Map<string, Entry>, stubs: string[] = []): Entry[] {
  const kept = layer.filter((e) => !stubs.includes(e.path));
  const holdsChange = (d: string): boolean => kept.some((e) => e.path.startsWith(`${d}/`));
  return kept.filter((e) => {
    const b = below.get(e.path);
    const unchanged = e.type === 'directory' && b?.type === 'directory' && b.mode === e.mode && b.uid === e.uid && b.gid === e.gid;
    return !unchanged || holdsChange(e.path);
  });
}

export function sorted(entries: Entry[]): Entry[] {
  return [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Compares a kiln image with the oracle's layer by layer (after the base), the oracle's
 * layers read as current BuildKit would write them; `stubs[i]` are dockerd 20.10's leftover
 * mount stubs in new layer i.
 */
export function expectedLayers(oracle: SavedImage, stubs: Record<number, string[]> = {}): Entry[][] {
  const below = new Map<string, Entry>();
  for (const e of oracle.layers[0]) below.set(e.path, e);
  const out: Entry[][] = [];
  oracle.layers.slice(1).forEach((l, i) => {
    out.push(sorted(asCurrentBuildkit(l, below, stubs[i])));
    for (const e of l) below.set(e.path, e);
  });
  return out;
}

export interface Builders {
  /** Builds with kiln (BASE=busybox or bare) and reads the image back. */
  kiln(dockerfile: string, files?: Record<string, string | Buffer>, args?: string[], env?: Record<string, string>, base?: 'busybox' | 'bare'): Promise<{ code: number; stderr: string; image?: SavedImage; context: string }>;
  /** The same through docker 20.10's BuildKit; undefined when dockerd is not available. */
  docker(dockerfile: string, files?: Record<string, string | Buffer>, args?: string[], base?: 'busybox' | 'bare'): Promise<SavedImage | undefined>;
  cleanup(): Promise<void>;
}

let seq = 0;

/**
 * Builders on one kiln root (`root` already holds busybox:latest; bare:latest, busybox without
 * /dev, /proc and /sys, is imported here) and, when dockerd runs, docker with the same bases.
 */
export async function builders(root: string, busyboxTar: string): Promise<Builders> {
  const t = await tempDir('kiln-runexec-');
  const bare = path.join(t.dir, 'bare.tar');
  await fs.copyFile(busyboxTar, bare);
  const del = await runCommand('tar', ['--delete', '-f', bare, './proc/', './sys/', './dev/']);
  if (del.code !== 0) throw new Error(`tar --delete: ${del.stderr}`);
  const imp = await runKiln(['import', bare, 'bare:latest'], { root });
  if (imp.code !== 0) throw new Error(`kiln import: ${imp.stderr}`);
  const tag = ownName('kiln-runexec', 'base');
  // docker with the same two bases, made on the first docker build; undefined without dockerd
  let oracle: Promise<DockerOracle | undefined> | undefined;
  const haveDocker = (): Promise<DockerOracle | undefined> =>
    (oracle ??= (async () => {
      const d = await dockerOracle({ prefix: 'kiln-runexec' });
      if (d.available !== true) return undefined;
      try {
        await d.importRootfs(busyboxTar, `${tag}-busybox:1`);
        await d.importRootfs(bare, `${tag}-bare:1`);
      } catch {
        await d.cleanup();
        return undefined;
      }
      return d;
    })());
  const context = async (dockerfile: string, files: Record<string, string | Buffer>): Promise<string> => {
    const dir = path.join(t.dir, `ctx${seq++}`);
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'Dockerfile'), dockerfile);
    for (const [rel, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await fs.writeFile(path.join(dir, rel), content);
    }
    return dir;
  };
  return {
    async kiln(dockerfile, files = {}, args = [], env = {}, base = 'busybox') {
      const dir = await context(dockerfile, files);
      const name = `runexec-${seq++}:test`;
      const r = await runKiln(['build', '--progress', 'plain', '--build-arg', `BASE=${base}`, ...args, '-t', name, dir], { root, env });
      if (r.code !== 0) return { code: r.code, stderr: r.stderr, context: dir };
      return { code: 0, stderr: r.stderr, image: await readArchive(await saveKilnImage(root, name)), context: dir };
    },
    async docker(dockerfile, files = {}, args = [], base = 'busybox') {
      const docker = await haveDocker();
      if (!docker || !(await docker.ready())) return undefined;
      const dir = await context(dockerfile, files);
      const r = await docker.build(dir, { args: ['--build-arg', `BASE=${tag}-${base}:1`, ...args] });
      // dockerd gone meanwhile (another suite on this machine stopped it): no oracle this time
      if (r.daemonGone) return undefined;
      if (r.code !== 0) throw new Error(`docker build failed: ${r.stderr}`);
      return readArchive(await docker.save(r.tag));
    },
    async cleanup() {
      await (await oracle)?.cleanup();
      await t.cleanup();
    },
  };
}

/** Mount points under `dir` still in this process's mount table. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const prefix = path.resolve(dir) + '/';
  return text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p + '/').startsWith(prefix));
}
