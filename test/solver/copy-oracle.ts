/**
 * The differential harness for COPY/ADD: the same Dockerfile and context built by kiln and
 * by docker 20.10's BuildKit (`DOCKER_BUILDKIT=1 /usr/bin/docker build`), then the files
 * under the given directories listed inside each image with the same busybox script (type,
 * mode, owner, link count and hard-link identity, link target, content digest).
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, dockerCli, ensureDockerd, runCommand, runKiln, tempDir } from '../helpers.js';

/** The base docker builds from: the same busybox rootfs kiln's workspace imports, under a name of our own. */
const DOCKER_BASE = 'kiln-copysem-busybox:latest';

const LIST_SCRIPT = `cd / && find $DIRS 2>/dev/null | sort | while IFS= read -r p; do
  t=$(stat -c '%F|%a|%u|%g|%h|%i' "$p")
  case "$t" in "symbolic link"*) x=$(readlink "$p");; "regular"*) x=$(md5sum < "$p" | cut -c1-12);; *) x=;; esac
  echo "$p|$t|$x"
done`;

/**
 * One line per path: `path|type|mode|uid|gid|links|hardlink-group|content`, with inode numbers
 * replaced by the first path sharing the inode (directories' link counts dropped).
 */
export function normaliseListing(raw: string): string[] {
  const firstOfInode = new Map<string, string>();
  return raw
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const f = line.split('|');
      const [p, type, , , , nlink, ino] = f;
      if (type === 'directory') {
        f[5] = '';
        f[6] = '';
      } else if (Number(nlink) > 1) {
        if (!firstOfInode.has(ino)) firstOfInode.set(ino, p);
        f[6] = `=${firstOfInode.get(ino)}`;
      } else {
        f[6] = '';
      }
      return f.join('|');
    });
}

export interface Oracle {
  /** False (with why) when docker cannot be the oracle here. */
  available: true | string;
  /** Builds with docker; the listing of `dirs`, or the build's error output. */
  build(contextDir: string, dockerfile: string, dirs: string): Promise<{ ok: boolean; listing: string[]; output: string }>;
  cleanup(): Promise<void>;
}

export async function dockerOracle(): Promise<Oracle> {
  const tags: string[] = [];
  const scratch = await tempDir('kiln-oracle-');
  let available: true | string = true;
  // a daemon already running is used as it is; one is started only in CI (as other suites do)
  const running = spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
  if (!running && !(process.env.CI && (await ensureDockerd()))) available = 'docker 20.10 (docker.io) is not running';
  else {
    const r = await runCommand(dockerCli, ['import', await busyboxRootfsTar(), DOCKER_BASE]);
    if (r.code !== 0) available = `docker import failed: ${r.stderr}`;
  }
  let n = 0;
  return {
    available,
    async build(contextDir, dockerfile, dirs) {
      const tag = `kiln-copysem-oracle:${process.pid}-${n++}`;
      const file = path.join(scratch.dir, `oracle-${n}.Dockerfile`);
      await fs.writeFile(file, dockerfile.replace(/^FROM busybox:latest/gm, `FROM ${DOCKER_BASE}`));
      const b = await runCommand(dockerCli, ['build', '-q', '-t', tag, '-f', file, contextDir], { env: { DOCKER_BUILDKIT: '1' } });
      if (b.code !== 0) return { ok: false, listing: [], output: b.stderr };
      tags.push(tag);
      const run = await runCommand(dockerCli, ['run', '--rm', '--network', 'none', tag, 'sh', '-c', `DIRS='${dirs}'; ${LIST_SCRIPT}`]);
      return { ok: run.code === 0, listing: normaliseListing(run.stdout), output: run.stderr };
    },
    async cleanup() {
      if (available === true) spawnSync(dockerCli, ['rmi', '-f', ...tags, DOCKER_BASE], { stdio: 'ignore' });
      await scratch.cleanup();
    },
  };
}

/** Builds with kiln (no cache) in `root` and lists `dirs` inside the image. */
export async function kilnListing(root: string, contextDir: string, dirs: string, env: Record<string, string> = {}): Promise<{ ok: boolean; listing: string[]; output: string }> {
  const tag = `copysem-${process.pid}:${Date.now()}`;
  const b = await runKiln(['build', '--no-cache', '-q', '-t', tag, contextDir], { root, env });
  if (b.code !== 0) return { ok: false, listing: [], output: b.stderr };
  const run = await runKiln(['run', '--rm', tag, 'sh', '-c', `DIRS='${dirs}'; ${LIST_SCRIPT}`], { root });
  return { ok: run.code === 0, listing: normaliseListing(run.stdout), output: run.stderr };
}
