/**
 * Harness for the port of BuildKit's frontend/dockerfile integration tests.
 *
 * A case is a Dockerfile plus a context (files with modes, directories, symlinks, hard
 * links, sockets), build args, a target and secrets. It is built with kiln (one shared
 * kiln root with busybox:latest per test file) and, for differential cases, with the
 * docker 20.10 engine's BuildKit (`DOCKER_BUILDKIT=1 /usr/bin/docker build`) from the same
 * busybox base, loaded into docker once per test file (test/oracle/docker.ts). Both images
 * are read back the same way (`kiln save` / `docker save`, a docker archive), their layers
 * applied in order with whiteouts into one file tree (test/oracle/tree.ts), and compared
 * entry by entry: path, type, mode, owner, link target, content digest, hard-link group.
 * Image config fields are compared as asked.
 *
 * Go tests that export with `--output type=local` and read files are emulated by reading
 * the final tree of the kiln image (`Image.read`).
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { mountsUnder } from '../../src/lifecycle.js';
import { isRoot, rootWithBusybox, runKiln, tempDir, type CliResult } from '../helpers.js';
import { dockerOracle, kilnImageTree, type DockerBuild, type DockerOracle } from '../oracle/docker.js';
import { assertSameTree, normPath, type FsEntry, type ImageTree } from '../oracle/tree.js';
import { skipUnlessRegistry, startRegistry, type Registry } from '../registry/harness.js';

export { describeTree, flattenArchive, type FsEntry, type ImageConfigFile } from '../oracle/tree.js';
/** An image read back: its final tree, config and layer count (test/oracle/tree.ts). */
export type ImageResult = ImageTree;

/** One context entry: a string is a regular file's content (mode 0644). */
export type ContextEntry =
  | string
  | {
      content?: string | Buffer;
      mode?: number;
      dir?: boolean;
      symlink?: string;
      hardlink?: string;
      socket?: boolean;
      fifo?: boolean;
    };

export interface BuildSpec {
  dockerfile?: string;
  /** where the Dockerfile goes in the context (default "Dockerfile"); null: none is written */
  dockerfileName?: string | null;
  /** a Dockerfile path outside the context (passed with -f); the context is then only `files` */
  externalDockerfile?: boolean;
  files?: Record<string, ContextEntry>;
  buildArgs?: Record<string, string>;
  target?: string;
  /** secret id → file content (kiln and docker: --secret id=ID,src=FILE) */
  secrets?: Record<string, string>;
  /** secret id → environment variable value (--secret id=ID,env=VAR) */
  envSecrets?: Record<string, string>;
  /** extra flags for kiln build only */
  kilnArgs?: string[];
  noCache?: boolean;
  /** environment for both builds (e.g. SOURCE_DATE_EPOCH) */
  env?: Record<string, string>;
  /** the kiln root to build on (default: the harness's shared one) */
  root?: string;
  /** --ssh values for both builds (default, ID=PATH) */
  ssh?: string[];
}

export interface BuildResult extends CliResult {
  tag: string;
}

/** Reads a file of an image's final tree, following symlinks inside the tree. */
export function readImageFile(img: ImageResult, file: string): string {
  return resolveEntry(img, file, true).data!.toString('utf8');
}

/** The entry at a path; symlinks on the way (and at the end when `follow`) resolved within the tree. */
export function resolveEntry(img: ImageResult, file: string, follow = false): FsEntry {
  let p = '/';
  const parts = normPath(file).split('/').filter(Boolean);
  for (let hops = 0, i = 0; i < parts.length; i++) {
    const next = path.posix.join(p, parts[i]);
    const e = img.fs.get(next);
    if (!e) throw new assert.AssertionError({ message: `${file}: no such entry (${next}) in the image` });
    if (e.type === 'symlink' && (follow || i < parts.length - 1)) {
      if (++hops > 40) throw new assert.AssertionError({ message: `${file}: too many symlinks` });
      const target = e.linkname!.startsWith('/') ? e.linkname! : path.posix.join(p, e.linkname!);
      parts.splice(0, i + 1, ...normPath(target).split('/').filter(Boolean));
      p = '/';
      i = -1;
      continue;
    }
    p = next;
  }
  const e = img.fs.get(p);
  if (!e) throw new assert.AssertionError({ message: `${file}: no such entry` });
  return e;
}

export function hasEntry(img: ImageResult, file: string): boolean {
  return img.fs.has(normPath(file));
}

/** Config fields the ported tests compare. */
export const CONFIG_FIELDS = ['Env', 'WorkingDir', 'Cmd', 'Entrypoint', 'User', 'Labels', 'ExposedPorts', 'Volumes', 'StopSignal', 'Shell', 'OnBuild', 'Healthcheck'] as const;
export type ConfigField = (typeof CONFIG_FIELDS)[number];

export interface CompareOptions {
  /** compare only entries under these paths (default: the whole tree) */
  only?: string[];
  /** leave out entries under these paths */
  ignore?: string[];
  /** config fields to compare (default: all of CONFIG_FIELDS) */
  config?: readonly ConfigField[];
  /** compare the history length and empty_layer flags */
  history?: boolean;
  /** compare the number of layers */
  layers?: boolean;
}

function under(p: string, roots: string[]): boolean {
  return roots.some((r) => {
    const n = normPath(r);
    return p === n || p.startsWith(n === '/' ? '/' : `${n}/`);
  });
}

export function compareImages(kiln: ImageResult, docker: ImageResult, opts: CompareOptions = {}): void {
  const filter = (p: string) => (!opts.only || under(p, opts.only)) && !(opts.ignore && under(p, opts.ignore));
  assertSameTree(kiln.fs, docker.fs, filter);
  const kc = kiln.config.config ?? {};
  const dc = docker.config.config ?? {};
  for (const f of opts.config ?? CONFIG_FIELDS) {
    assert.deepEqual(emptyToUndefined(kc[f]), emptyToUndefined(dc[f]), `config ${f} differs`);
  }
  // docker's history is unknown for an image read through inspect (see dockerImage)
  if (opts.history && docker.config.history) {
    const hk = (kiln.config.history ?? []).map((h) => Boolean(h.empty_layer));
    const hd = (docker.config.history ?? []).map((h) => Boolean(h.empty_layer));
    assert.deepEqual(hk, hd, 'history (empty_layer flags) differs');
  }
  if (opts.layers) assert.equal(kiln.layers, docker.layers, 'layer count differs');
}

function emptyToUndefined(v: unknown): unknown {
  if (v === null || v === undefined || v === '') return undefined;
  if (Array.isArray(v) && v.length === 0) return undefined;
  if (typeof v === 'object' && Object.keys(v as object).length === 0) return undefined;
  return v;
}

/** Writes a context directory from a spec. */
export async function writeContext(dir: string, files: Record<string, ContextEntry>): Promise<void> {
  const dirModes: Array<[string, number]> = [];
  const later: Array<() => Promise<void>> = [];
  for (const [rel, spec] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    const e = typeof spec === 'string' ? { content: spec } : spec;
    if (e.dir) {
      await fs.mkdir(p, { recursive: true });
      if (e.mode !== undefined) dirModes.push([p, e.mode]);
    } else if (e.symlink !== undefined) {
      await fs.symlink(e.symlink, p);
    } else if (e.hardlink !== undefined) {
      const target = path.join(dir, e.hardlink);
      later.push(() => fs.link(target, p));
    } else if (e.socket) {
      const r = spawnSync(process.execPath, ['-e', 'require("net").createServer().listen(process.argv[1], () => process.exit(0))', p]);
      assert.equal(r.status, 0, `cannot make socket ${rel}`);
    } else if (e.fifo) {
      assert.equal(spawnSync('mkfifo', [p]).status, 0, `cannot make fifo ${rel}`);
    } else {
      await fs.writeFile(p, e.content ?? '');
      await fs.chmod(p, e.mode ?? 0o644);
    }
  }
  for (const l of later) await l();
  for (const [p, m] of dirModes.sort((a, b) => b[0].length - a[0].length)) await fs.chmod(p, m);
}

export interface Harness {
  /** the shared kiln root (busybox:latest imported) */
  readonly root: string;
  /** whether the docker 20.10 oracle is usable in this run */
  readonly docker: boolean;
  /** makes a context (and Dockerfile) in a temp dir removed after the file's tests */
  context(spec: BuildSpec): Promise<{ dir: string; dockerfile: string }>;
  kilnBuild(spec: BuildSpec, ctx?: { dir: string; dockerfile: string }): Promise<BuildResult>;
  dockerBuild(spec: BuildSpec, ctx?: { dir: string; dockerfile: string }): Promise<BuildResult>;
  kilnImage(tag: string): Promise<ImageResult>;
  dockerImage(tag: string): Promise<ImageResult>;
  /** kiln build that must succeed; the image read back */
  kiln(spec: BuildSpec): Promise<ImageResult>;
  /** kiln build that must fail; returns its output */
  kilnFails(spec: BuildSpec): Promise<BuildResult>;
  /**
   * Builds with kiln and (when available) docker, both must succeed, and compares them.
   * Returns kiln's image, for the Go test's own assertions.
   */
  differential(spec: BuildSpec, opts?: CompareOptions): Promise<ImageResult>;
  /** both builds must fail; returns kiln's output */
  differentialFails(spec: BuildSpec): Promise<BuildResult>;
  /** runs a command in a kiln-built image */
  run(tag: string, argv: string[]): Promise<CliResult>;
  /** any kiln command on the shared root */
  kilnCommand(args: string[]): Promise<CliResult>;
  /**
   * A fresh kiln root (BuildKit's ensurePruneAll, a new CI runner) holding the shared root's
   * very busybox:latest, as BuildKit pulls the same base again (an import of the same tar is
   * another image: its time differs); removed after the test.
   */
  freshRoot(t: TestContext): Promise<string>;
}

/** The Go tests' sb.NewRegistry(): a docker-registry of the test's own, stopped after it; undefined (the test skipped) when none is installed. */
export async function newRegistry(t: TestContext): Promise<Registry | undefined> {
  if (skipUnlessRegistry(t)) return undefined;
  const reg = await startRegistry();
  t.after(() => reg.stop());
  return reg;
}

let counter = 0;

/** Sets up a harness for one test file: before/after hooks make and remove everything. */
export function useHarness(): Harness {
  let root = '';
  let cleanupRoot: (() => Promise<void>) | undefined;
  let docker: DockerOracle | undefined;
  const temps: Array<() => Promise<void>> = [];
  const oracle = { compared: 0, kilnOnly: 0 };

  before(async () => {
    ({ root, cleanup: cleanupRoot } = await rootWithBusybox());
    docker = await dockerOracle({ prefix: 'kiln-bkport', disabled: process.env.KILN_BKPORT_NO_DOCKER === '1' ? 'KILN_BKPORT_NO_DOCKER=1' : undefined });
    // docker builds FROM busybox the image kiln has: the same config and layer
    if (docker.available === true) await docker.loadFromKiln(root, 'busybox:latest');
  });

  after(async () => {
    // read by scripts/bkport-summary.mjs: how many differential cases docker really checked
    console.log(`bkport-oracle: ${oracle.compared} compared, ${oracle.kilnOnly} kiln-only`);
    await docker?.cleanup();
    for (const c of temps) await c();
    await cleanupRoot?.();
  });

  /**
   * Whether the oracle can take a build now. The shared dockerd may be stopped and started
   * by other suites on this machine: a daemon that is gone makes the case kiln-only (its
   * own assertions still run), a fresh daemon gets the base loaded again.
   */
  const dockerReady = async (): Promise<boolean> => (await docker?.ready()) ?? false;

  async function context(spec: BuildSpec) {
    const t = await tempDir('kiln-bkport-ctx-');
    temps.push(t.cleanup);
    const dir = path.join(t.dir, 'ctx');
    await fs.mkdir(dir);
    await writeContext(dir, spec.files ?? {});
    let dockerfile = path.join(dir, spec.dockerfileName ?? 'Dockerfile');
    if (spec.externalDockerfile) dockerfile = path.join(t.dir, 'Dockerfile');
    if (spec.dockerfile !== undefined && spec.dockerfileName !== null) {
      await fs.mkdir(path.dirname(dockerfile), { recursive: true });
      await fs.writeFile(dockerfile, spec.dockerfile);
    }
    for (const [id, content] of Object.entries(spec.secrets ?? {})) await fs.writeFile(path.join(t.dir, `secret-${id}`), content);
    return { dir, dockerfile };
  }

  /** The flags both builders take (after `build`; `-t TAG` and the context are added by each). */
  function commonArgs(spec: BuildSpec, ctx: { dir: string; dockerfile: string }): { args: string[]; env: Record<string, string> } {
    const args = ['--progress', 'plain'];
    if (spec.dockerfileName !== null) args.push('-f', ctx.dockerfile);
    for (const [k, v] of Object.entries(spec.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
    if (spec.target) args.push('--target', spec.target);
    if (spec.noCache) args.push('--no-cache');
    for (const s of spec.ssh ?? []) args.push('--ssh', s);
    for (const id of Object.keys(spec.secrets ?? {})) args.push('--secret', `id=${id},src=${path.join(path.dirname(ctx.dir), `secret-${id}`)}`);
    const env: Record<string, string> = { ...spec.env };
    for (const [id, value] of Object.entries(spec.envSecrets ?? {})) {
      const name = `KILN_BKPORT_SECRET_${id.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}`;
      env[name] = value;
      args.push('--secret', `id=${id},env=${name}`);
    }
    return { args, env };
  }

  async function kilnBuild(spec: BuildSpec, ctx?: { dir: string; dockerfile: string }): Promise<BuildResult> {
    ctx ??= await context(spec);
    const tag = `bk${++counter}:latest`;
    const { args, env } = commonArgs(spec, ctx);
    const r = await runKiln(['build', ...args, '-t', tag, ...(spec.kilnArgs ?? []), ctx.dir], { root: spec.root ?? root, env });
    return { ...r, tag };
  }

  async function dockerBuild(spec: BuildSpec, ctx?: { dir: string; dockerfile: string }): Promise<DockerBuild> {
    assert.ok(docker?.available === true, 'the docker oracle is not available');
    ctx ??= await context(spec);
    const { args, env } = commonArgs(spec, ctx);
    return docker.build(ctx.dir, { args, env });
  }

  const kilnImage = (tag: string): Promise<ImageResult> => kilnImageTree(root, tag);

  async function dockerImage(tag: string): Promise<ImageResult> {
    assert.ok(docker?.available === true, 'the docker oracle is not available');
    return docker.image(tag);
  }

  const tail = (s: string) => s.split('\n').slice(-30).join('\n');

  return {
    get root() {
      return root;
    },
    get docker() {
      return docker?.available === true;
    },
    context,
    kilnBuild,
    dockerBuild,
    kilnImage,
    dockerImage,
    async kiln(spec) {
      const r = await kilnBuild(spec);
      assert.equal(r.code, 0, `kiln build failed:\n${tail(r.stderr)}`);
      return kilnImage(r.tag);
    },
    async kilnFails(spec) {
      const r = await kilnBuild(spec);
      assert.notEqual(r.code, 0, `kiln build succeeded, BuildKit fails it:\n${tail(r.stderr)}`);
      return r;
    },
    async differential(spec, opts) {
      const ctx = await context(spec);
      const k = await kilnBuild(spec, ctx);
      const d = (await dockerReady()) ? await dockerBuild(spec, ctx) : undefined;
      if (d && !d.daemonGone) {
        oracle.compared++;
        assert.equal(d.code, 0, `the docker oracle failed (the case is wrong):\n${tail(d.stderr)}`);
        assert.equal(k.code, 0, `kiln build failed:\n${tail(k.stderr)}`);
        const [ki, di] = await Promise.all([kilnImage(k.tag), dockerImage(d.tag)]);
        compareImages(ki, di, opts);
        return ki;
      }
      oracle.kilnOnly++;
      assert.equal(k.code, 0, `kiln build failed:\n${tail(k.stderr)}`);
      return kilnImage(k.tag);
    },
    async differentialFails(spec) {
      const ctx = await context(spec);
      const k = await kilnBuild(spec, ctx);
      const d = (await dockerReady()) ? await dockerBuild(spec, ctx) : undefined;
      if (d && !d.daemonGone) {
        oracle.compared++;
        assert.notEqual(d.code, 0, 'the docker oracle built the case (the case is wrong)');
      } else {
        oracle.kilnOnly++;
      }
      assert.notEqual(k.code, 0, `kiln build succeeded, BuildKit fails it:\n${tail(k.stderr)}`);
      return k;
    },
    run(tag, argv) {
      return runKiln(['run', tag, ...argv], { root });
    },
    kilnCommand(args) {
      return runKiln(args, { root });
    },
    async freshRoot(t) {
      const dir = await tempDir('kiln-bkport-root-');
      t.after(async () => {
        for (const mp of mountsUnder(dir.dir).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
        await dir.cleanup();
      });
      const base = path.join(dir.dir, 'busybox.tar');
      const saved = await runKiln(['save', 'busybox:latest', '-o', base], { root });
      assert.equal(saved.code, 0, saved.stderr);
      const fresh = path.join(dir.dir, 'root');
      const loaded = await runKiln(['load', '-i', base], { root: fresh });
      assert.equal(loaded.code, 0, loaded.stderr);
      return fresh;
    },
  };
}

/** Skip reason for the whole port when the machine cannot run builds. */
export const skipUnlessRoot = isRoot() ? false : 'RUN and overlayfs need root';

/**
 * One ported Go test. `todo` names the kiln bug that makes it fail today: node:test still
 * runs it and reports it as a TODO (not a failure), so a fix shows up as a passing TODO.
 */
export function port(name: string, fn: (t: TestContext) => Promise<void>, opts: { todo?: string } = {}): void {
  test(name, { skip: skipUnlessRoot, todo: opts.todo }, fn);
}

export interface TarMember {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  content?: string | Buffer;
  mode?: number;
  linkname?: string;
  uid?: number;
  gid?: number;
}

/** A tar archive in memory (tar-stream), gzipped when asked. */
export async function makeTar(members: TarMember[], opts: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const m of members) {
    const type = m.type ?? 'file';
    const header: Parameters<tar.Pack['entry']>[0] = { name: m.name, type, mode: m.mode ?? (type === 'directory' ? 0o755 : 0o644), uid: m.uid ?? 0, gid: m.gid ?? 0, mtime: new Date(0) };
    if (m.linkname !== undefined) header.linkname = m.linkname;
    const body = type === 'file' ? Buffer.from(m.content ?? '') : undefined;
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body) pack.entry(header, body, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  const out = Buffer.concat(chunks);
  return opts.gzip ? gzipSync(out) : out;
}
