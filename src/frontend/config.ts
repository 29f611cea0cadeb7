/**
 * The instructions that only change the image config (ENV, LABEL, USER, EXPOSE, VOLUME,
 * STOPSIGNAL, SHELL, CMD, ENTRYPOINT, HEALTHCHECK, ONBUILD, MAINTAINER), as docker evolves
 * the config, each with the history entry BuildKit writes for it.
 */
import type {
  ExecFormCommand,
  ExposeCommand,
  HealthcheckCommand,
  KeyValueCommand,
  OnbuildCommand,
  ShellCommand,
  ValueCommand,
  VolumeCommand,
} from '../dockerfile/instructions.js';
import { NEEDS_ARGUMENTS } from '../dockerfile/instructions.js';
import { addEnv } from '../dockerfile/stages.js';
import type { ContainerConfig } from '../oci/types.js';
import { goDuration, goList, goQuoteList } from './gofmt.js';
import type { Converter, StageContext } from './state.js';

function containerConfig(ctx: StageContext): ContainerConfig {
  return (ctx.config.config ??= {});
}

/** The shell a shell-form instruction runs with: SHELL's, else /bin/sh -c. */
export function shellOf(ctx: StageContext): string[] {
  return ctx.config.config?.Shell ?? ['/bin/sh', '-c'];
}

/**
 * ENV/LABEL key-value pairs, every word expanded with the environment from before the
 * instruction (`ENV A=1 B=$A` gives B the old A, as BuildKit documents).
 */
function expandPairs(c: Converter, ctx: StageContext, cmd: KeyValueCommand): Array<[string, string]> {
  const before = ctx.scope.values();
  return cmd.pairs.map(({ key, value }) => [c.expandIn(ctx, cmd.inst, key, before), c.expandIn(ctx, cmd.inst, value, before)]);
}

export function dispatchEnv(c: Converter, ctx: StageContext, cmd: KeyValueCommand): void {
  const cc = containerConfig(ctx);
  const pairs = expandPairs(c, ctx, cmd);
  for (const [key, value] of pairs) {
    if (key === '') throw c.err(cmd.inst, 'ENV names can not be blank', 'write ENV NAME=value');
    ctx.scope.setEnv(key, value);
    cc.Env = addEnv(cc.Env ?? [], key, value);
  }
  c.history(ctx, `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, true);
}

export function dispatchLabel(c: Converter, ctx: StageContext, cmd: KeyValueCommand): void {
  const cc = containerConfig(ctx);
  const pairs = expandPairs(c, ctx, cmd);
  cc.Labels ??= {};
  for (const [key, value] of pairs) {
    if (key === '') throw c.err(cmd.inst, 'LABEL names can not be blank', 'write LABEL key=value');
    cc.Labels[key] = value;
  }
  c.history(ctx, `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, true);
}

export function dispatchMaintainer(c: Converter, ctx: StageContext, cmd: ValueCommand): void {
  ctx.config.author = cmd.value;
  c.history(ctx, `MAINTAINER ${ctx.config.author}`, true);
}

export function dispatchUser(c: Converter, ctx: StageContext, cmd: ValueCommand): void {
  const cc = containerConfig(ctx);
  cc.User = c.expandIn(ctx, cmd.inst, cmd.value);
  if (cc.User === '') throw c.err(cmd.inst, 'USER requires exactly one argument', 'write USER name[:group] or USER uid[:gid]');
  c.history(ctx, `USER ${cc.User}`, true);
}

export function dispatchExpose(c: Converter, ctx: StageContext, cmd: ExposeCommand): void {
  const cc = containerConfig(ctx);
  const ports: string[] = [];
  for (const word of cmd.ports) {
    for (const spec of c.expandWordsIn(ctx, cmd.inst, word)) {
      ports.push(...expandPorts(spec, (m) => c.err(cmd.inst, m, 'write EXPOSE PORT[/tcp|udp|sctp] or a range such as 8000-8010/udp', word)));
    }
  }
  cc.ExposedPorts ??= {};
  for (const p of ports) cc.ExposedPorts[p] = {};
  c.history(ctx, `EXPOSE ${goList(ports)}`, true);
}

export function dispatchVolume(c: Converter, ctx: StageContext, cmd: VolumeCommand): void {
  const cc = containerConfig(ctx);
  const vols = cmd.json ? cmd.paths.map((a) => c.expandIn(ctx, cmd.inst, a)) : cmd.paths.flatMap((a) => c.expandWordsIn(ctx, cmd.inst, a));
  if (vols.length === 0) throw c.err(cmd.inst, 'VOLUME requires at least one argument', `write ${NEEDS_ARGUMENTS.volume}`);
  cc.Volumes ??= {};
  for (const v of vols) {
    if (v.trim() === '') throw c.err(cmd.inst, 'VOLUME specified can not be an empty string', 'name the mount point, e.g. VOLUME /data');
    cc.Volumes[v] = {};
  }
  c.history(ctx, `VOLUME ${goList(vols)}`, true);
}

export function dispatchStopSignal(c: Converter, ctx: StageContext, cmd: ValueCommand): void {
  const sig = c.expandIn(ctx, cmd.inst, cmd.value);
  if (!isSignal(sig)) {
    throw c.err(cmd.inst, `Invalid signal: ${sig}`, 'use a signal name such as SIGTERM (or TERM) or a number such as 15', cmd.inst.args[0]);
  }
  containerConfig(ctx).StopSignal = sig;
  c.history(ctx, `STOPSIGNAL ${sig}`, true);
}

export function dispatchShell(c: Converter, ctx: StageContext, cmd: ShellCommand): void {
  containerConfig(ctx).Shell = [...cmd.shell];
  c.history(ctx, `SHELL ${goList(cmd.shell)}`, true);
}

export function dispatchCmdOrEntrypoint(c: Converter, ctx: StageContext, cmd: ExecFormCommand): void {
  const cc = containerConfig(ctx);
  const args = cmd.json ? [...cmd.args] : [...shellOf(ctx), cmd.args.join(' ')];
  // An empty list clears the value (docker's config omits empty lists).
  if (cmd.keyword === 'cmd') {
    cc.Cmd = args.length ? args : undefined;
    ctx.cmdSet = true;
    c.history(ctx, `CMD ${goQuoteList(args)}`, true);
  } else {
    cc.Entrypoint = args.length ? args : undefined;
    // An ENTRYPOINT resets the CMD inherited from the base, not one set in this stage.
    if (!ctx.cmdSet) cc.Cmd = undefined;
    c.history(ctx, `ENTRYPOINT ${goQuoteList(args)}`, true);
  }
}

export function dispatchHealthcheck(c: Converter, ctx: StageContext, cmd: HealthcheckCommand): void {
  let hc: NonNullable<ContainerConfig['Healthcheck']>;
  if (cmd.test === 'none') {
    hc = { Test: ['NONE'] };
  } else {
    hc = { Test: cmd.json ? ['CMD', ...cmd.command] : ['CMD-SHELL', cmd.command.join(' ')] };
    if (cmd.interval !== undefined) hc.Interval = cmd.interval;
    if (cmd.timeout !== undefined) hc.Timeout = cmd.timeout;
    if (cmd.startPeriod !== undefined) hc.StartPeriod = cmd.startPeriod;
    if (cmd.startInterval !== undefined) hc.StartInterval = cmd.startInterval;
    if (cmd.retries !== undefined) hc.Retries = cmd.retries;
  }
  containerConfig(ctx).Healthcheck = hc;
  // BuildKit writes fmt's %+v of its HealthcheckConfig.
  const d = (n: number | undefined) => goDuration(n ?? 0);
  c.history(
    ctx,
    `HEALTHCHECK {Test:${goList(hc.Test ?? [])} Interval:${d(hc.Interval)} Timeout:${d(hc.Timeout)} StartPeriod:${d(hc.StartPeriod)} StartInterval:${d(hc.StartInterval)} Retries:${hc.Retries ?? 0}}`,
    true,
  );
}

/** Recorded in the config only: BuildKit writes no history entry for ONBUILD. */
export function dispatchOnbuild(ctx: StageContext, cmd: OnbuildCommand): void {
  const cc = containerConfig(ctx);
  cc.OnBuild = [...(cc.OnBuild ?? []), cmd.expression];
}

const SIGNALS = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR',
  'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'UNUSED', 'URG', 'USR1', 'USR2', 'VTALRM',
  'WINCH', 'XCPU', 'XFSZ',
]);

/** moby's signal.ParseSignal: a number, NAME or SIGNAME, or RTMIN+n / RTMAX-n. */
function isSignal(sig: string): boolean {
  if (/^\d+$/.test(sig)) return Number(sig) > 0 && Number(sig) <= 64;
  const name = sig.toUpperCase().replace(/^SIG/, '');
  return SIGNALS.has(name) || /^RTMIN(\+\d+)?$|^RTMAX(-\d+)?$/.test(name);
}

/**
 * "80", "80/TCP", "8000-8002/udp" → ["80/tcp"], ... As BuildKit's parsePortSpec, an
 * "[ip:][hostPort:]port" prefix is accepted and only the container port kept.
 */
export function expandPorts(spec: string, fail: (m: string) => Error): string[] {
  const slash = spec.indexOf('/');
  const portPart = slash === -1 ? spec : spec.slice(0, slash);
  const proto = slash === -1 ? 'tcp' : spec.slice(slash + 1).toLowerCase() || 'tcp';
  const parts = portPart.split(':');
  const container = parts[parts.length - 1];
  if (container === '') throw fail(`no port specified: ${spec}<empty>`);
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw fail(`invalid proto: ${proto} in "${spec}": use tcp, udp or sctp`);
  const m = /^(\d+)(?:-(\d+))?$/.exec(container);
  if (!m) throw fail(`invalid containerPort: ${container} in "${spec}"`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535) throw fail(`invalid containerPort: ${container}: ports go up to 65535`);
  if (hi < lo) throw fail(`invalid range specified for port: ${container}`);
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  return out;
}
