/**
 * RUN: the command (exec form, shell form, heredocs), its mounts (mounts.ts parses them),
 * network and environment (build state, proxy build args), into an exec vertex with the
 * history entry BuildKit writes.
 */
import type { KeyValue, RunCommand } from '../dockerfile/instructions.js';
import { definitionDigest, type ExecVertex, type MountSpec } from '../graph/types.js';
import { formatPlatform } from '../oci/platform.js';
import { shellOf } from './config.js';
import { parseMount } from './mounts.js';
import type { Converter, StageContext, VertexOrigin } from './state.js';
import { stepFields } from './state.js';

export async function dispatchRun(c: Converter, ctx: StageContext, cmd: RunCommand, origin: VertexOrigin, display: string): Promise<void> {
  const inst = cmd.inst;
  const cc = ctx.config.config!;
  const cannotRun = c.opts.executionProblem?.(ctx.platform);
  if (cannotRun !== undefined) {
    throw c.err(
      inst,
      `RUN for ${formatPlatform(ctx.platform)} cannot execute: ${cannotRun}`,
      ctx.platform.os === 'linux'
        ? `register QEMU user emulation as root: kiln setup binfmt --platform ${formatPlatform(ctx.platform)} (needs Debian's qemu-user-static); or build for this machine's platform (--platform, FROM --platform=$BUILDPLATFORM)`
        : 'kiln builds Linux images: use --platform linux/ARCH',
    );
  }
  const network = cmd.network === 'default' ? (c.opts.network ?? 'default') : cmd.network;
  const granted = c.opts.entitlements ?? [];
  if (network === 'host' && !granted.includes('network.host')) {
    throw c.err(
      inst,
      cmd.network === 'host' ? 'RUN --network=host: entitlement network.host is not allowed' : 'the build\'s --network host: entitlement network.host is not allowed',
      'allow it for this build with --allow network.host, or leave the step on the sandboxed network (--network=default) or none',
      cmd.network === 'host' ? '--network' : undefined,
    );
  }
  if (cmd.security === 'insecure' && !granted.includes('security.insecure')) {
    throw c.err(inst, 'RUN --security=insecure: entitlement security.insecure is not allowed', 'allow it for this build with --allow security.insecure, or remove --security=insecure', '--security');
  }
  const scope = ctx.scope.values();
  const mounts: MountSpec[] = [];
  for (const raw of cmd.mounts) {
    const spec = parseMount(
      raw,
      (m) => c.err(inst, m, 'write --mount=type=bind|cache|tmpfs|secret|ssh,target=/path[,source=...,from=...]', '--mount'),
      (w) => c.expandIn(ctx, inst, w, scope),
      cc.WorkingDir || '/',
    );
    if (spec.fromName !== undefined && spec.fromName !== 'context') {
      spec.from = await c.sourceState(ctx, inst, spec.fromName, `--mount`, 'RUN --mount from=');
    }
    delete spec.fromName;
    mounts.push(spec);
  }
  const shell = shellOf(ctx);
  let args: string[];
  const inlineFiles: ExecVertex['inlineFiles'] = [];
  if (cmd.json) {
    args = [...cmd.command];
  } else if (cmd.heredocs.length > 0) {
    const cmdline = cmd.command.join(' ').trim();
    const only = cmd.heredocs.length === 1 && /^\d*<<-?\s*(["']?)[^\s"']+\1$/.test(cmdline);
    if (only && cmd.heredocs[0].content.startsWith('#!')) {
      // A script with a shebang: written to /dev/pipes/NAME and run through the shell.
      const p = `/dev/pipes/${cmd.heredocs[0].name}`;
      inlineFiles.push({ path: p, content: cmd.heredocs[0].content, mode: 0o755 });
      args = [...shell, p];
    } else if (only) {
      args = [...shell, cmd.heredocs[0].content];
    } else {
      args = [...shell, cmdline + cmd.heredocs.map((h) => `\n${h.content}${h.name}`).join('')];
    }
  } else {
    args = [...shell, cmd.command.join(' ')];
  }
  const env = [...ctx.scope.env];
  const proxies = c.proxyEnv();
  const proxyEntries = Object.entries(proxies).filter(([k]) => !(k in scope));
  for (const [k, v] of proxyEntries) env.push(`${k}=${v}`);
  const buildArgs: Record<string, string> = {};
  for (const a of ctx.scope.args) buildArgs[a.key] = a.key in scope ? scope[a.key] : (a.value ?? '');
  for (const [k, v] of proxyEntries) buildArgs[k] = v;
  const v: ExecVertex = {
    kind: 'exec',
    parent: ctx.state,
    args,
    env,
    cwd: cc.WorkingDir || '/',
    user: cc.User ?? '',
    network,
    hostname: c.buildArgs.BUILDKIT_SANDBOX_HOSTNAME || undefined,
    mounts,
    inlineFiles: inlineFiles.length ? inlineFiles : undefined,
    buildArgs,
    ...(cmd.security === 'insecure' ? { security: 'insecure' as const } : {}),
    ...(c.opts.ulimits?.length ? { ulimits: c.opts.ulimits } : {}),
    ...(c.opts.memory !== undefined ? { memory: c.opts.memory } : {}),
    digest: '',
    ...stepFields(ctx, display, origin),
  };
  const definition = {
    kind: 'exec',
    args,
    // Proxy settings are not part of the cache key, as in BuildKit.
    env: ctx.scope.env,
    cwd: v.cwd,
    user: v.user,
    network: v.network,
    hostname: v.hostname,
    inlineFiles,
    platform: ctx.platform,
    // only when set: the definitions (and cache keys) of other steps stay as they were
    ...(v.security ? { security: v.security } : {}),
    ...(v.ulimits ? { ulimits: v.ulimits } : {}),
  };
  const fromOf = (m: MountSpec, local: boolean): string | undefined =>
    !m.from ? undefined : m.from.kind === 'local' ? m.from.source : local && m.type === 'bind' ? 'stage' : m.from.digest;
  v.digest = definitionDigest({ ...definition, parent: ctx.state.digest, mounts: mounts.map((m) => ({ ...m, from: fromOf(m, false) })) });
  if (mounts.some((m) => m.type === 'bind' && m.from !== undefined && m.from.kind !== 'local')) {
    v.localDigest = definitionDigest({ ...definition, local: true, mounts: mounts.map((m) => ({ ...m, from: fromOf(m, true) })) });
  }
  ctx.state = v;
  c.history(ctx, `RUN ${runCommandString(args, ctx.scope.args, scope)}`, false, true);
}

/** BuildKit's runCommandString: "|N K=V ... " for the stage's ARGs (values as the step sees them), then the command. */
function runCommandString(args: string[], buildArgs: readonly KeyValue[], env: Record<string, string>): string {
  const order: string[] = [];
  const values = new Map<string, string>();
  for (const a of buildArgs) {
    if (!values.has(a.key)) order.push(a.key);
    values.set(a.key, Object.prototype.hasOwnProperty.call(env, a.key) ? env[a.key] : (a.value ?? ''));
  }
  const prefix = order.length ? [`|${order.length}`, ...order.map((k) => `${k}=${values.get(k)}`)] : [];
  return [...prefix, ...args].join(' ');
}
