/**
 * Differential helpers for RUN tests: the same Dockerfile built by kiln and by docker 20.10's
 * BuildKit (the oracle), each image saved as a docker archive and read back layer by layer.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { dockerCli, runCommand, runKiln, tempDir } from '../helpers.js';

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

async function untar(buf: Buffer): Promise<Map<string, { header: tar.Header; body: Buffer }>> {
  const out = new Map<string, { header: tar.Header; body: Buffer }>();
  const ex = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => {
        chunks.push(c as Buffer);
      });
      stream.on('end', () => {
        out.set(header.name.replace(/^\.\//, '').replace(/\/$/, ''), { header, body: Buffer.concat(chunks) });
        next();
      });
      stream.on('error', reject);
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  ex.end(buf);
  await done;
  return out;
}

/** Reads a docker-archive tarball (`docker save` / `kiln save`). */
export async function readArchive(file: string): Promise<SavedImage> {
  const outer = await untar(await fs.readFile(file));
  const manifest = JSON.parse(outer.get('manifest.json')!.body.toString('utf8')) as Array<{ Config: string; Layers: string[] }>;
  const config = JSON.parse(outer.get(manifest[0].Config)!.body.toString('utf8')) as { rootfs: { diff_ids: string[] }; history: SavedImage['history'] };
  const layers: Entry[][] = [];
  for (const l of manifest[0].Layers) {
    const inner = await untar(outer.get(l)!.body);
    layers.push(
      [...inner.values()].map(({ header, body }) => {
        const e: Entry = { path: header.name.replace(/^\.\//, '').replace(/\/$/, ''), type: header.type ?? 'file', mode: (header.mode ?? 0) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0 };
        if (header.linkname) e.linkname = header.linkname;
        if (header.type === 'file') e.content = body.toString('utf8');
        return e;
      }),
    );
  }
  return { layers, diffIds: config.rootfs.diff_ids, history: config.history };
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
  const tag = `kiln-runexec-${process.pid}`;
  const dockerImages: string[] = [];
  let dockerReady: Promise<boolean> | undefined;
  const haveDocker = (): Promise<boolean> =>
    (dockerReady ??= (async () => {
      // the machine's dockerd only: these tests never start one
      if ((await runCommand(dockerCli, ['info'], { timeoutMs: 10_000 })).code !== 0) return false;
      for (const [name, file] of [
        ['busybox', busyboxTar],
        ['bare', bare],
      ]) {
        const r = await runCommand(dockerCli, ['import', file, `${tag}-${name}:base`]);
        if (r.code !== 0) return false;
        dockerImages.push(`${tag}-${name}:base`);
      }
      return true;
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
      const out = path.join(t.dir, `kiln${seq++}.tar`);
      const s = await runKiln(['save', '-o', out, name], { root });
      if (s.code !== 0) throw new Error(`kiln save: ${s.stderr}`);
      return { code: 0, stderr: r.stderr, image: await readArchive(out), context: dir };
    },
    async docker(dockerfile, files = {}, args = [], base = 'busybox') {
      if (!(await haveDocker())) return undefined;
      const dir = await context(dockerfile, files);
      const name = `${tag}-built${seq++}:test`;
      const r = await runCommand(dockerCli, ['build', '--build-arg', `BASE=${tag}-${base}:base`, ...args, '-t', name, dir], { env: { DOCKER_BUILDKIT: '1' } });
      // dockerd gone meanwhile (another suite on this machine stopped it): no oracle this time
      if (r.code !== 0 && /Cannot connect to the Docker daemon/.test(r.stderr)) return undefined;
      if (r.code !== 0) throw new Error(`docker build failed: ${r.stderr}`);
      dockerImages.push(name);
      const out = path.join(t.dir, `docker${seq++}.tar`);
      const s = await runCommand(dockerCli, ['save', '-o', out, name]);
      if (s.code !== 0) throw new Error(`docker save: ${s.stderr}`);
      return readArchive(out);
    },
    async cleanup() {
      if (dockerImages.length) await runCommand(dockerCli, ['rmi', '-f', ...dockerImages]);
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
