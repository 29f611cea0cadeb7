/**
 * `kiln setup binfmt`: QEMU user emulation for foreign platforms. Debian's qemu-user-static
 * describes one binfmt_misc handler per emulated architecture (/usr/lib/binfmt.d/qemu-*.conf,
 * or binfmt-support's /usr/share/binfmts/qemu-*); this registers them with the kernel with the
 * F (fix-binary) flag, so the kernel opens the interpreter once, at registration, and a RUN
 * step's container (whose rootfs has no /usr/bin/qemu-*) still executes foreign binaries.
 * Reading what is registered is platform.ts's executionProblem; this module writes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from './errors.js';
import { BINFMT_DIR, formatPlatform, hostPlatform, NATIVE_COMPAT, QEMU_ARCH, readBinfmtHandler } from './oci/platform.js';
import type { Platform } from './oci/types.js';

/** A handler as Debian's qemu-user-static describes it. */
export interface BinfmtHandler {
  /** The handler's name in binfmt_misc ("qemu-aarch64"). */
  name: string;
  /** QEMU's architecture name ("aarch64"). */
  qemuArch: string;
  offset: number;
  /** Magic and mask in binfmt_misc's escaped form ("\x7f\x45..."). */
  magic: string;
  mask: string;
  interpreter: string;
  /** The flags Debian asks for (e.g. "OPF", "PF"). */
  flags: string;
  /** The file it was read from. */
  source: string;
}

export interface HandlerSources {
  /** systemd's binfmt.d directory (Debian ships qemu-*.conf there). */
  binfmtD?: string;
  /** binfmt-support's format directory. */
  binfmts?: string;
}

const DEFAULT_SOURCES: Required<HandlerSources> = { binfmtD: '/usr/lib/binfmt.d', binfmts: '/usr/share/binfmts' };

/** Parses a binfmt.d line ":name:M:offset:magic:mask:interpreter:flags"; undefined for another kind. */
function parseBinfmtLine(line: string, source: string): BinfmtHandler | undefined {
  const t = line.trim();
  if (t === '' || t.startsWith('#') || t.startsWith(';')) return undefined;
  const sep = t[0] as string;
  const f = t.slice(1).split(sep);
  if (f.length < 6 || f[1] !== 'M' || !(f[0] ?? '').startsWith('qemu-')) return undefined;
  const name = f[0] as string;
  return {
    name,
    qemuArch: name.slice('qemu-'.length),
    offset: f[2] ? Number(f[2]) : 0,
    magic: f[3] ?? '',
    mask: f[4] ?? '',
    interpreter: f[5] ?? '',
    flags: f[6] ?? '',
    source,
  };
}

/** Parses binfmt-support's "key value" format file; undefined unless it is a magic handler. */
function parseBinfmtsFile(text: string, name: string, source: string): BinfmtHandler | undefined {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (m) kv.set(m[1] as string, (m[2] as string).trim());
  }
  const magic = kv.get('magic');
  const interpreter = kv.get('interpreter');
  if (!magic || !interpreter) return undefined;
  const yes = (k: string) => kv.get(k) === 'yes';
  const flags = `${yes('preserve') ? 'P' : ''}${yes('credentials') ? 'C' : ''}${yes('fix_binary') ? 'F' : ''}`;
  return { name, qemuArch: name.slice('qemu-'.length), offset: Number(kv.get('offset') ?? 0), magic, mask: kv.get('mask') ?? '', interpreter, flags, source };
}

/** Every qemu handler the installed qemu-user-static describes, by name (binfmt.d first). */
export function debianHandlers(sources: HandlerSources = {}): Map<string, BinfmtHandler> {
  const dirs = { ...DEFAULT_SOURCES, ...sources };
  const out = new Map<string, BinfmtHandler>();
  const list = (dir: string): string[] => {
    try {
      return readdirSync(dir).filter((n) => n.startsWith('qemu-')).sort();
    } catch {
      return [];
    }
  };
  for (const file of list(dirs.binfmtD)) {
    if (!file.endsWith('.conf')) continue;
    const p = path.join(dirs.binfmtD, file);
    for (const line of readFileSync(p, 'utf8').split('\n')) {
      const h = parseBinfmtLine(line, p);
      if (h && !out.has(h.name)) out.set(h.name, h);
    }
  }
  for (const file of list(dirs.binfmts)) {
    if (out.has(file)) continue;
    const p = path.join(dirs.binfmts, file);
    const h = parseBinfmtsFile(readFileSync(p, 'utf8'), file, p);
    if (h) out.set(h.name, h);
  }
  return out;
}

/** The registration line binfmt_misc's register file takes, with F (and Debian's other flags). */
export function registrationLine(h: BinfmtHandler): string {
  const flags = [...new Set(`${h.flags}F`.toUpperCase().split(''))].filter((c) => 'POCF'.includes(c)).join('');
  return `:${h.name}:M:${h.offset || ''}:${h.magic}:${h.mask}:${h.interpreter}:${flags}`;
}

export interface SetupBinfmtOptions {
  /** Platforms to register (default: every foreign architecture qemu-user-static emulates). */
  platforms?: Platform[];
  /** Remove the handlers instead. */
  uninstall?: boolean;
  /** binfmt_misc's mount point (tests give another). */
  dir?: string;
  sources?: HandlerSources;
  /** This machine's platform (natively run architectures need no handler). */
  host?: Platform;
}

export interface BinfmtChange {
  platform: Platform;
  name: string;
  /** What was done. */
  action: 'registered' | 'replaced' | 'enabled' | 'present' | 'removed' | 'absent' | 'native';
  interpreter?: string;
  flags?: string;
}

/** The platform a QEMU architecture emulates (aarch64 → linux/arm64), when kiln knows it. */
function platformOfQemu(qemuArch: string): Platform | undefined {
  const arch = Object.entries(QEMU_ARCH).find(([, q]) => q === qemuArch)?.[0];
  if (arch === undefined) return undefined;
  return arch === 'arm' ? { os: 'linux', architecture: 'arm', variant: 'v7' } : { os: 'linux', architecture: arch };
}

function isNative(p: Platform, host: Platform): boolean {
  return p.architecture === host.architecture || (NATIVE_COMPAT[host.architecture]?.includes(p.architecture) ?? false);
}

/** Mounts binfmt_misc at dir when its register file is missing. */
export function mountBinfmt(dir = BINFMT_DIR): void {
  if (existsSync(path.join(dir, 'register'))) return;
  const r = spawnSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(path.join(dir, 'register'))) {
    const why = r.error ? r.error.message : (r.stderr || '').trim() || `mount exited with ${r.status}`;
    throw new KilnError(`cannot mount binfmt_misc on ${dir}: ${why}`, {
      code: 'unsupported',
      hint: 'run kiln as root on a host (or a privileged container) whose kernel has binfmt_misc (modprobe binfmt_misc)',
    });
  }
}

function writeControl(file: string, text: string, what: string): void {
  try {
    writeFileSync(file, text);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new KilnError(`cannot ${what}: the kernel refused (${err.code === 'EEXIST' ? 'a handler of that name exists' : err.code === 'ENOENT' ? 'the interpreter is missing' : err.message})`, {
      code: err.code === 'EACCES' || err.code === 'EPERM' ? 'denied' : 'failed',
      hint: 'run as root on a host whose kernel has binfmt_misc; check the interpreter exists (apt-get install qemu-user-static)',
      cause: e,
    });
  }
}

/**
 * Registers (or with `uninstall`, removes) Debian's qemu-user-static handlers for the platforms
 * asked (default: every foreign one it has), with the F flag. Idempotent: a handler already
 * registered with F is left as it is, a disabled one is enabled, one lacking F is registered
 * again with it. Needs root. Returns what it did per platform.
 */
export function setupBinfmt(options: SetupBinfmtOptions = {}): BinfmtChange[] {
  const dir = options.dir ?? BINFMT_DIR;
  const host = options.host ?? hostPlatform();
  if (options.dir === undefined && process.getuid?.() !== 0) {
    throw new KilnError('kiln setup binfmt needs root: it mounts binfmt_misc and registers handlers with the kernel', {
      code: 'denied',
      hint: `run it as root: sudo kiln setup binfmt${options.platforms ? ` --platform ${options.platforms.map(formatPlatform).join(',')}` : ''}`,
    });
  }
  const handlers = debianHandlers(options.sources);
  const wanted: Array<{ platform: Platform; handler?: BinfmtHandler; name: string }> = [];
  if (options.platforms) {
    for (const p of options.platforms) {
      if (p.os !== 'linux') throw new KilnError(`kiln setup binfmt: ${formatPlatform(p)} is not a Linux platform`, { code: 'invalid', hint: 'QEMU user emulation runs Linux programs: give linux/ARCH' });
      const qemu = QEMU_ARCH[p.architecture] ?? p.architecture;
      const name = `qemu-${qemu}`;
      wanted.push({ platform: p, handler: handlers.get(name), name });
    }
  } else {
    for (const h of handlers.values()) {
      const p = platformOfQemu(h.qemuArch);
      if (p) wanted.push({ platform: p, handler: h, name: h.name });
    }
  }
  if (!options.uninstall) {
    const missing = wanted.filter((w) => !w.handler && !isNative(w.platform, host));
    if (missing.length > 0) {
      throw new KilnError(`no QEMU handler description for ${missing.map((w) => formatPlatform(w.platform)).join(', ')} (looked for ${missing.map((w) => w.name).join(', ')} in ${DEFAULT_SOURCES.binfmtD} and ${DEFAULT_SOURCES.binfmts})`, {
        code: 'not-found',
        hint: "install Debian's qemu-user-static (apt-get install qemu-user-static), or leave out platforms it does not emulate",
      });
    }
  }
  if (options.dir === undefined) mountBinfmt(dir);
  else if (!existsSync(path.join(dir, 'register'))) throw new KilnError(`${dir} is not a binfmt_misc mount (no register file)`, { code: 'unsupported' });
  const out: BinfmtChange[] = [];
  for (const w of wanted) {
    if (isNative(w.platform, host)) {
      out.push({ platform: w.platform, name: w.name, action: 'native' });
      continue;
    }
    const entry = path.join(dir, w.name);
    const current = readBinfmtHandler(dir, w.name);
    if (options.uninstall) {
      if (!current) out.push({ platform: w.platform, name: w.name, action: 'absent' });
      else {
        writeControl(entry, '-1', `remove the binfmt_misc handler ${w.name}`);
        out.push({ platform: w.platform, name: w.name, action: 'removed', interpreter: current.interpreter, flags: current.flags });
      }
      continue;
    }
    const h = w.handler!;
    if (!existsSync(h.interpreter)) {
      throw new KilnError(`the QEMU interpreter ${h.interpreter} (from ${h.source}) is missing`, { code: 'not-found', hint: 'reinstall qemu-user-static: apt-get install --reinstall qemu-user-static' });
    }
    let action: BinfmtChange['action'] = 'registered';
    if (current) {
      if (current.flags.includes('F')) {
        if (!current.enabled) writeControl(entry, '1', `enable the binfmt_misc handler ${w.name}`);
        out.push({ platform: w.platform, name: w.name, action: current.enabled ? 'present' : 'enabled', interpreter: current.interpreter, flags: current.flags });
        continue;
      }
      // registered without F: its interpreter would be looked up inside each container
      writeControl(entry, '-1', `remove the binfmt_misc handler ${w.name} (registered without the F flag)`);
      action = 'replaced';
    }
    try {
      writeControl(path.join(dir, 'register'), registrationLine(h), `register the binfmt_misc handler ${w.name}`);
    } catch (e) {
      // another process (a concurrent kiln setup binfmt) registered it meanwhile: fine if it has F
      const raced = readBinfmtHandler(dir, w.name);
      if (!raced?.flags.includes('F')) throw e;
      out.push({ platform: w.platform, name: w.name, action: 'present', interpreter: raced.interpreter, flags: raced.flags });
      continue;
    }
    const now = readBinfmtHandler(dir, w.name);
    out.push({ platform: w.platform, name: w.name, action, interpreter: now?.interpreter ?? h.interpreter, flags: now?.flags ?? '' });
  }
  return out;
}

/** setupBinfmt for `platforms` unless every one of them already runs here (what tests call). */
export function ensureBinfmt(platforms: Platform[], dir = BINFMT_DIR): void {
  const host = hostPlatform();
  const needed = platforms.filter((p) => {
    if (isNative(p, host)) return false;
    const h = readBinfmtHandler(dir, `qemu-${QEMU_ARCH[p.architecture] ?? p.architecture}`);
    return !h || !h.enabled || !h.flags.includes('F');
  });
  if (needed.length > 0) setupBinfmt({ platforms: needed });
}
