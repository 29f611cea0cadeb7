/**
 * The differential harness for COPY/ADD: the same Dockerfile and context built by kiln and
 * by docker 20.10's BuildKit (test/oracle/docker.ts), then the files under the given
 * directories listed inside each image with the same busybox script (test/oracle/listing.ts:
 * type, mode, owner, link count and hard-link identity, link target, content digest).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, runKiln, tempDir } from '../helpers.js';
import { ownName, dockerOracle as sharedOracle } from '../oracle/docker.js';
import { formatWithLinkGroups, kilnListing as listInKiln, listingArgv, parseListing } from '../oracle/listing.js';

/** The base docker builds from: the same busybox rootfs kiln's workspace imports, under a name of this process's own. */
const DOCKER_BASE = `${ownName('kiln-copysem', 'busybox')}:latest`;

export interface Listing {
  ok: boolean;
  /** One line per path, `path|type|mode|uid|gid|links|hardlink-group|content` (see formatWithLinkGroups). */
  listing: string[];
  output: string;
}

export interface Oracle {
  /** False (with why) when docker cannot be the oracle here. */
  available: true | string;
  /** Builds with docker; the listing of `dirs` (space-separated), or the build's error output. */
  build(contextDir: string, dockerfile: string, dirs: string): Promise<Listing>;
  cleanup(): Promise<void>;
}

export async function dockerOracle(): Promise<Oracle> {
  const docker = await sharedOracle({ prefix: 'kiln-copysem' });
  const scratch = await tempDir('kiln-oracle-');
  let available = docker.available;
  if (available === true) {
    try {
      await docker.importRootfs(await busyboxRootfsTar(), DOCKER_BASE);
    } catch (e) {
      available = (e as Error).message;
    }
  }
  let n = 0;
  return {
    available,
    async build(contextDir, dockerfile, dirs) {
      const file = path.join(scratch.dir, `oracle-${++n}.Dockerfile`);
      await fs.writeFile(file, dockerfile.replace(/^FROM busybox:latest/gm, `FROM ${DOCKER_BASE}`));
      await docker.ready(); // the base again, in a daemon restarted meanwhile
      const b = await docker.build(contextDir, { args: ['-q', '-f', file] });
      if (b.code !== 0) return { ok: false, listing: [], output: b.stderr };
      const run = await docker.run(b.tag, listingArgv(dirs.split(' ').filter(Boolean)));
      return { ok: run.code === 0, listing: formatWithLinkGroups(parseListing(run.stdout)), output: run.stderr };
    },
    async cleanup() {
      await docker.cleanup();
      await scratch.cleanup();
    },
  };
}

/** Builds with kiln (no cache) in `root` and lists `dirs` (space-separated) inside the image. */
export async function kilnListing(root: string, contextDir: string, dirs: string, env: Record<string, string> = {}): Promise<Listing> {
  const tag = `copysem-${process.pid}:${Date.now()}`;
  const b = await runKiln(['build', '--no-cache', '-q', '-t', tag, contextDir], { root, env });
  if (b.code !== 0) return { ok: false, listing: [], output: b.stderr };
  const run = await listInKiln(root, tag, dirs.split(' ').filter(Boolean));
  return { ok: run.code === 0, listing: formatWithLinkGroups(run.entries), output: run.stderr };
}
