/**
 * The exec op: a RUN as a container over the step's root filesystem, with its mounts
 * (bind, cache, tmpfs, secret), through an injected Executor (runc in production).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { kilnPaths } from '../../paths.js';
import { KilnError } from '../../errors.js';
import { missingStubs, removeStubs, runContainer, type RunResult, type RunSpec } from '../../exec/index.js';
import { mountSecrets, type SecretFile } from '../../exec/secrets.js';
import type { ExecVertex } from '../../graph/types.js';
import type { ActiveMount } from '../../snapshot/types.js';
import { secureResolve } from '../copy.js';
import { instructionOf } from '../errors.js';
import type { StepContext } from '../scheduler.js';
import type { SolvedState } from '../types.js';
import type { OpDeps } from './deps.js';
import { openCacheMount, type SeedRoot } from './cachemount.js';

/** Runs a process in a container: the OCI runtime, behind the one call the solver makes. */
export interface Executor {
  run(spec: RunSpec): Promise<RunResult>;
}

/** The OCI runtime kiln finds on the host (runc or crun). */
export const runtimeExecutor: Executor = { run: runContainer };

/**
 * Files the runtime bind-mounts over the rootfs whose empty stubs a step does not keep, as
 * BuildKit's stub cleaner (moby/buildkit#3307, #3314): only these and the step's own mount
 * targets. The runtime's /dev, /proc and /sys mount points stay in the layer of the first RUN
 * on a base without them, as they do in BuildKit's; so does a working directory it creates.
 */
const STUB_FILES = ['/etc/resolv.conf', '/etc/hosts'];

/** A RUN's hostname unless BUILDKIT_SANDBOX_HOSTNAME says otherwise, as in BuildKit. */
const DEFAULT_HOSTNAME = 'buildkitsandbox';


/** Runs `v` over `mount`; the mounts it makes for the step go to `extra`, released by the caller. */
export async function runExec(deps: OpDeps, v: ExecVertex, others: SolvedState[], mount: ActiveMount, extra: ActiveMount[], ctx: StepContext): Promise<void> {
  const rootfs = mount.merged;
  const mounts: NonNullable<RunSpec['mounts']> = [];
  const stubPaths: string[] = [...STUB_FILES];
  const env = [...v.env];
  const secretFiles: Array<{ target: string; file: SecretFile }> = [];
  let inputIdx = 0;
  let sshCount = 0;
  let sshTarget: string | undefined;
  for (const m of v.mounts) {
    if (m.target) stubPaths.push(m.target);
    if (m.type === 'tmpfs') {
      const options = ['nosuid', 'nodev', 'mode=1777'];
      if (m.size !== undefined) options.push(`size=${m.size}`);
      mounts.push({ destination: m.target, type: 'tmpfs', source: 'tmpfs', options });
    } else if (m.type === 'bind') {
      const writable = m.readonly === false;
      let root: string;
      if (m.from === undefined || m.from.kind === 'local') {
        const local = deps.local(m.from);
        if (!local) throw new KilnError('RUN --mount=type=bind needs a build context');
        root = local.dir;
        if (writable) {
          // writes go to a throwaway upper dir over the context, as BuildKit discards them
          const over = await deps.snapshotter.mount([root]);
          extra.push(over);
          root = over.merged;
        }
      } else {
        const st = others[inputIdx++];
        // rw: an overlay of the stage with its own upper dir, dropped after the step
        const sm = await deps.states.mount(st.layers, !writable);
        extra.push(sm);
        root = sm.merged;
      }
      const source = await secureResolve(root, m.source ?? '.');
      mounts.push({ destination: m.target, type: 'bind', source, options: ['rbind', writable ? 'rw' : 'ro'] });
    } else if (m.type === 'cache') {
      let seed: SeedRoot | undefined;
      if (m.from && m.from.kind !== 'local') {
        const st = others[inputIdx++];
        seed = async () => {
          const sm = await deps.states.mount(st.layers, true);
          return { dir: sm.merged, release: sm.release };
        };
      } else if (m.from) {
        const local = deps.local(m.from);
        if (local) seed = () => Promise.resolve({ dir: local.dir, release: () => Promise.resolve() });
      }
      const cache = await openCacheMount(deps, m, seed, ctx, { activeDir: mount.dir ?? path.dirname(mount.merged), index: mounts.length });
      extra.push({ merged: cache.source, upper: cache.source, work: cache.source, release: cache.release });
      mounts.push({ destination: m.target, type: 'bind', source: cache.source, options: ['rbind', m.readonly ? 'ro' : 'rw'] });
    } else if (m.type === 'secret') {
      const secretId = m.id ?? '';
      const value = deps.secrets?.[secretId];
      if (value === undefined) {
        if (m.required) throw new KilnError(`secret ${secretId}: not found (the mount is required, and the build was given no secret of that id)`, { hint: `pass --secret id=${secretId},src=FILE or --secret id=${secretId},env=VAR` });
        continue;
      }
      if (m.env !== undefined) env.push(`${m.env}=${Buffer.from(value).toString('utf8')}`);
      // an env-only secret (env= without target=) has no file
      if (m.target) secretFiles.push({ target: m.target, file: { data: value, uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o400 } });
    } else {
      // numbered among the step's ssh mounts, as BuildKit's /run/buildkit/ssh_agent.N
      const target = m.target || `/run/buildkit/ssh_agent.${sshCount}`;
      sshCount++;
      sshTarget ??= target;
      if (!m.target) stubPaths.push(target);
      const sshId = m.id || 'default';
      if (!deps.ssh?.socket(sshId)) {
        if (m.required) throw new KilnError(`no SSH key "${sshId}" forwarded from the client (the mount is required)`, { code: 'not-found', location: v.origin, hint: sshId === 'default' ? 'pass --ssh default (forwards $SSH_AUTH_SOCK) or --ssh default=PATH_TO_KEY' : `pass --ssh ${sshId}=PATH_TO_KEY or --ssh ${sshId} (forwards $SSH_AUTH_SOCK)` });
        continue;
      }
      const sock = await deps.ssh.forward(sshId, { uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o600 });
      extra.push({ merged: sock.path, upper: sock.path, work: sock.path, release: sock.close });
      mounts.push({ destination: target, type: 'bind', source: sock.path, options: ['rbind'] });
    }
  }
  // the first ssh mount's socket, unless the step's environment names one
  if (sshTarget !== undefined && !env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) env.push(`SSH_AUTH_SOCK=${sshTarget}`);
  // secrets live on a tmpfs under this step's active dir; so does the runtime spec when it
  // holds a secret in the environment
  let specDir: string | undefined;
  const hasSecretEnv = v.mounts.some((m) => m.type === 'secret' && m.env !== undefined && deps.secrets?.[m.id ?? ''] !== undefined);
  if (secretFiles.length > 0 || hasSecretEnv) {
    const sec = await mountSecrets(mount.dir ?? path.dirname(mount.merged), secretFiles.map((f) => f.file));
    extra.push({ merged: sec.dir, upper: sec.dir, work: sec.dir, release: sec.release });
    secretFiles.forEach((f, i) => mounts.push({ destination: f.target, type: 'bind', source: sec.paths[i], options: ['rbind', 'ro'] }));
    if (hasSecretEnv) specDir = sec.dir;
  }
  for (const f of v.inlineFiles ?? []) {
    const dir = deps.tempPath('inline');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, path.posix.basename(f.path)), f.content, { mode: f.mode });
    mounts.push({ destination: path.posix.dirname(f.path), type: 'bind', source: dir, options: ['rbind', 'ro'] });
    stubPaths.push(path.posix.dirname(f.path));
    extra.push({ merged: dir, upper: dir, work: dir, release: () => fs.rm(dir, { recursive: true, force: true }) });
  }
  const stubs = await missingStubs(rootfs, stubPaths);
  const result = await deps.executor
    .run({
      rootfs,
      args: v.args,
      env,
      cwd: v.cwd,
      user: v.user,
      hostname: v.hostname ?? DEFAULT_HOSTNAME,
      network: v.network,
      mounts,
      onOutput: (data, stream) => ctx.log(stream, data),
      signal: ctx.signal,
      stateRoot: kilnPaths(deps.root).run,
      keepMountStubs: true,
      etcHostname: false,
      specDir,
      security: v.security,
      ulimits: v.ulimits,
      memory: v.memory,
    })
    .catch((e: unknown) => {
      throw ctx.signal.aborted ? ctx.cancelled() : e;
    });
  if (ctx.signal.aborted) throw ctx.cancelled();
  if (result.exitCode !== 0) {
    const shown = v.args.join(' ');
    const tail = result.outputTail.trimEnd();
    throw new KilnError(`${instructionOf(v)}: process "${shown}" did not complete successfully: exit code: ${result.exitCode}`, {
      code: 'failed',
      location: v.origin,
      detail: tail ? `last lines of output:\n${tail.split('\n').map((l) => `  ${l}`).join('\n')}` : undefined,
    });
  }
  await removeStubs(rootfs, stubs);
}
