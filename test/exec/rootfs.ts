import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export const BUSYBOX = '/bin/busybox';

export const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n';
export const GROUP = 'root:x:0:\napp:x:1000:\nextra:x:2000:app\nother:x:3000:root\n';

export function busyboxApplets(): string[] {
  return execFileSync(BUSYBOX, ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
}

/** A minimal image root: static busybox with its applets as relative symlinks, passwd, group. */
export async function makeBusyboxRootfs(dir: string): Promise<string> {
  await fsp.mkdir(path.join(dir, 'bin'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'etc'), { recursive: true });
  await fsp.copyFile(BUSYBOX, path.join(dir, 'bin/busybox'));
  await fsp.chmod(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of busyboxApplets()) await fsp.symlink('busybox', path.join(dir, 'bin', a));
  await fsp.writeFile(path.join(dir, 'etc/passwd'), PASSWD);
  await fsp.writeFile(path.join(dir, 'etc/group'), GROUP);
  await fsp.mkdir(path.join(dir, 'home/app'), { recursive: true });
  await fsp.chown(path.join(dir, 'home/app'), 1000, 1000);
  return dir;
}
