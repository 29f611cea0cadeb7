/**
 * Secret files for a RUN: written to a tmpfs, never to a disk. The tmpfs is mounted at
 * `<step's active snapshot dir>/secrets`, a dir whose owner (pid and start time) is recorded in
 * `<active dir>/owner`; after a kill -9 the reaper of that dir unmounts it before removing it.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { isMountPoint, runCommand } from '../snapshot/util.js';

export interface SecretFile {
  data: Uint8Array;
  uid: number;
  gid: number;
  mode: number;
}

export interface SecretMount {
  /** Host path of each file, in the order given. */
  paths: string[];
  /** The tmpfs dir, for other in-memory files of the step (a runtime spec holding secrets). */
  dir: string;
  release(): Promise<void>;
}

/** The directory under a step's active snapshot dir where its secret tmpfs is mounted. */
export const SECRETS_DIR = 'secrets';

/** Mounts a small private tmpfs at `<activeDir>/secrets` and writes `files` into it. */
export async function mountSecrets(activeDir: string, files: SecretFile[]): Promise<SecretMount> {
  const dir = path.join(activeDir, SECRETS_DIR);
  await fsp.mkdir(dir, { mode: 0o700 });
  // room for the files and a runtime spec: tmpfs only uses the memory written to it
  const size = files.reduce((n, f) => n + f.data.length, 0) + (files.length + 1) * 4096 + (1 << 20);
  const res = await runCommand('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0711,nosuid,nodev,noexec`, 'tmpfs', dir]);
  if (res.code !== 0) {
    await fsp.rmdir(dir).catch(() => undefined);
    throw new KilnError(`cannot mount a tmpfs for the step's secrets at ${dir}: ${res.stderr}`, { hint: 'kiln needs root to mount a tmpfs', code: 'failed' });
  }
  const release = async (): Promise<void> => {
    const r = await runCommand('umount', [dir]);
    if (r.code !== 0 && (await isMountPoint(dir))) {
      const lazy = await runCommand('umount', ['-l', dir]);
      if (lazy.code !== 0 && (await isMountPoint(dir))) throw new KilnError(`cannot unmount the secrets tmpfs ${dir}: ${lazy.stderr}`, { code: 'unavailable' });
    }
    await fsp.rmdir(dir).catch(() => undefined);
  };
  try {
    const paths: string[] = [];
    for (const [i, f] of files.entries()) {
      const p = path.join(dir, `s${i}`);
      await fsp.writeFile(p, f.data, { mode: 0o600 });
      await fsp.chown(p, f.uid, f.gid);
      await fsp.chmod(p, f.mode);
      paths.push(p);
    }
    return { paths, dir, release };
  } catch (e) {
    await release();
    throw e;
  }
}
