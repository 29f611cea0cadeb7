import { KilnError } from '../errors.js';
import type { ContainerConfig } from './types.js';

/**
 * `docker import --change` / `docker commit --change`: Dockerfile instructions applied to an
 * image config. Supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
 * WORKDIR. Words are split the way the Dockerfile does for these instructions (quotes and
 * backslash escapes); no variable expansion.
 */
export function applyChanges(config: ContainerConfig, changes: string[]): ContainerConfig {
  const out: ContainerConfig = structuredClone(config);
  for (const change of changes) applyOne(out, change);
  return out;
}

const SUPPORTED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'];

function changeError(change: string, why: string): KilnError {
  return new KilnError(`invalid --change ${JSON.stringify(change)}: ${why}`, {
    hint: `use a Dockerfile instruction: ${SUPPORTED.join(', ')}, e.g. --change 'CMD ["sh"]'`,
  });
}

function splitWords(s: string, change: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw changeError(change, `unterminated ${quote} quote`);
  if (inWord) words.push(cur);
  return words;
}

function execOrShell(rest: string): string[] {
  if (rest.startsWith('[')) {
    try {
      const v = JSON.parse(rest) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    } catch {
      // not JSON: the shell form, as the Dockerfile treats it
    }
  }
  return ['/bin/sh', '-c', rest];
}

function keyValues(rest: string, change: string, what: string): [string, string][] {
  const words = splitWords(rest, change);
  if (words.length === 0) throw changeError(change, `${what} needs at least one key=value`);
  if (!words[0].includes('=')) {
    // legacy form: "ENV KEY value with spaces"
    const m = /^(\S+)\s+(.*)$/s.exec(rest.trim());
    if (!m) throw changeError(change, `${what} needs a value`);
    return [[m[1], splitWords(m[2], change).join(' ')]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw changeError(change, `${JSON.stringify(w)} is not key=value`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

function applyOne(cfg: ContainerConfig, change: string): void {
  const m = /^\s*(\S+)\s*(.*?)\s*$/s.exec(change);
  if (!m) throw changeError(change, 'it is empty');
  const instruction = m[1].toUpperCase();
  const rest = m[2];
  switch (instruction) {
    case 'CMD':
      cfg.Cmd = execOrShell(rest);
      return;
    case 'ENTRYPOINT':
      cfg.Entrypoint = execOrShell(rest);
      return;
    case 'ENV': {
      const env = [...(cfg.Env ?? [])];
      for (const [k, v] of keyValues(rest, change, 'ENV')) {
        const at = env.findIndex((e) => e.split('=')[0] === k);
        if (at >= 0) env[at] = `${k}=${v}`;
        else env.push(`${k}=${v}`);
      }
      cfg.Env = env;
      return;
    }
    case 'LABEL': {
      cfg.Labels = { ...(cfg.Labels ?? {}) };
      for (const [k, v] of keyValues(rest, change, 'LABEL')) cfg.Labels[k] = v;
      return;
    }
    case 'EXPOSE': {
      const ports = splitWords(rest, change);
      if (ports.length === 0) throw changeError(change, 'EXPOSE needs a port');
      cfg.ExposedPorts = { ...(cfg.ExposedPorts ?? {}) };
      for (const p of ports) {
        const pm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
        if (!pm) throw changeError(change, `${JSON.stringify(p)} is not a port (80, 53/udp, 8000-8010/tcp)`);
        const proto = (pm[3] ?? 'tcp').toLowerCase();
        const from = Number(pm[1]);
        const to = pm[2] ? Number(pm[2]) : from;
        for (let port = from; port <= to; port++) cfg.ExposedPorts[`${port}/${proto}`] = {};
      }
      return;
    }
    case 'VOLUME': {
      let vols: string[];
      const exec = rest.startsWith('[') ? execOrShell(rest) : undefined;
      if (exec && exec[0] !== '/bin/sh') vols = exec;
      else vols = splitWords(rest, change);
      if (vols.length === 0) throw changeError(change, 'VOLUME needs a path');
      cfg.Volumes = { ...(cfg.Volumes ?? {}) };
      for (const v of vols) cfg.Volumes[v] = {};
      return;
    }
    case 'USER':
      if (!rest) throw changeError(change, 'USER needs a user');
      cfg.User = rest;
      return;
    case 'WORKDIR': {
      if (!rest) throw changeError(change, 'WORKDIR needs a path');
      const base = cfg.WorkingDir ?? '/';
      const joined = rest.startsWith('/') ? rest : `${base.replace(/\/+$/, '')}/${rest}`;
      cfg.WorkingDir = joined;
      return;
    }
    case 'STOPSIGNAL':
      if (!rest) throw changeError(change, 'STOPSIGNAL needs a signal');
      cfg.StopSignal = rest;
      return;
    case 'ONBUILD':
      if (!rest) throw changeError(change, 'ONBUILD needs an instruction');
      cfg.OnBuild = [...(cfg.OnBuild ?? []), rest];
      return;
    default:
      throw changeError(change, `${instruction} cannot be applied to an image config`);
  }
}
