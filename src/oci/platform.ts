/** Platforms in OCI terms (the one platform model): the host's, parsing and formatting, matching, and the ARGs BuildKit predefines. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { withSuggestion } from '../suggest.js';
import type { Platform } from './types.js';

/** Node's process.arch → OCI architecture (+ variant) names. */
export function ociArch(arch: string = process.arch): { architecture: string; variant?: string } {
  switch (arch) {
    case 'x64':
      return { architecture: 'amd64' };
    case 'arm64':
      return { architecture: 'arm64' };
    case 'arm':
      return { architecture: 'arm', variant: 'v7' };
    case 'ia32':
      return { architecture: '386' };
    case 'ppc64':
      return { architecture: 'ppc64le' };
    case 'loong64':
      return { architecture: 'loong64' };
    default:
      return { architecture: arch };
  }
}

/** The platform of this machine (os is always linux: kiln runs Linux containers). */
export function hostPlatform(): Platform {
  const { architecture, variant } = ociArch();
  return variant ? { architecture, os: 'linux', variant } : { architecture, os: 'linux' };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Operating systems Go (and so the OCI platform spec) knows. */
export const KNOWN_OS: readonly string[] = [
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'illumos', 'ios', 'js', 'linux',
  'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows',
];

/** Architectures Go (and so the OCI platform spec) knows. */
export const KNOWN_ARCH: readonly string[] = [
  '386', 'amd64', 'arm', 'arm64', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le',
  'ppc64', 'ppc64le', 'riscv64', 's390x', 'sparc64', 'wasm',
];

const ARCH_ALIASES: Record<string, string> = { i386: '386', x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64' };

/** The variants an architecture can have, where the spec names them. */
const VARIANTS: Record<string, RegExp> = {
  arm: /^v[5-8]$/,
  arm64: /^v(8|9)(\.\d)?$/,
  amd64: /^v[1-4]$/,
};

const COMPONENT = /^[a-z0-9_.-]+$/;

/**
 * Normalises an architecture and variant with containerd's rules (platforms.Parse followed by
 * platforms.Normalize, as BuildKit does for --platform and FROM --platform): x86_64 → amd64,
 * aarch64 → arm64, i386 → 386 (no variant), arm64/v8 → arm64, arm64/9.0 → arm64/v9,
 * amd64/v1 → amd64, arm → arm/v7, arm/6 → arm/v6, armhf → arm/v7, armel → arm/v6; macos is darwin.
 */
function normalizeArch(arch: string, variant?: string): { architecture: string; variant?: string } {
  const a = ARCH_ALIASES[arch] ?? arch;
  // kiln also takes a bare number for any architecture ("amd64/2" is amd64/v2)
  let v = variant !== undefined && /^\d+(\.\d+)?$/.test(variant) ? `v${variant}` : variant;
  switch (a) {
    case '386':
      v = undefined;
      break;
    case 'amd64':
      if (v === 'v1') v = undefined;
      break;
    case 'arm64':
      if (v === 'v8' || v === 'v8.0') v = undefined;
      else if (v === 'v9.0') v = 'v9';
      break;
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm':
      v ??= 'v7';
      break;
  }
  return v === undefined ? { architecture: a } : { architecture: a, variant: v };
}

/** containerd's OS aliases. */
const OS_ALIASES: Record<string, string> = { macos: 'darwin' };

/**
 * Parses "os/arch[/variant]", "os" or "arch" like containerd's platforms.Parse + Normalize (a
 * lone OS takes the host's architecture and variant, a lone architecture is linux), normalising
 * the common aliases, and checks every part against the values the OCI platform spec knows
 * (stricter than containerd, which takes any os/arch pair). Case does not matter. Gives the
 * platform, or what is wrong with the text. The one platform parser: the CLI's --platform,
 * FROM --platform and the checks all use it.
 */
export function tryParsePlatform(text: string, host: Platform = hostPlatform()): { platform: Platform } | { problem: string } {
  const parts = text.trim().toLowerCase().split('/');
  const bad = parts.find((p) => !COMPONENT.test(p));
  if (bad !== undefined) {
    return { problem: bad === '' ? 'an os, architecture or variant is empty' : `"${bad}" is not a valid platform component (letters, digits, "_", "." and "-" only)` };
  }
  if (parts.length > 3) return { problem: 'too many parts: expected os/arch[/variant]' };
  const first = parts[0] as string;
  let os = OS_ALIASES[first] ?? first;
  let arch: { architecture: string; variant?: string };
  if (parts.length === 1 && KNOWN_OS.includes(os)) {
    arch = host.variant ? { architecture: host.architecture, variant: host.variant } : { architecture: host.architecture };
  } else if (parts.length === 1) {
    os = 'linux';
    arch = normalizeArch(first);
  } else {
    arch = normalizeArch(parts[1] as string, parts[2]);
  }
  if (!KNOWN_OS.includes(os)) return { problem: withSuggestion(`unknown operating system "${os}"`, os, KNOWN_OS) };
  if (!KNOWN_ARCH.includes(arch.architecture)) {
    return { problem: withSuggestion(`unknown architecture "${arch.architecture}"`, arch.architecture, KNOWN_ARCH) };
  }
  const variants = VARIANTS[arch.architecture];
  if (arch.variant !== undefined && variants && !variants.test(arch.variant)) {
    return { problem: `unknown variant "${arch.variant}" for ${arch.architecture}` };
  }
  return { platform: { os, ...arch } };
}

/** Like tryParsePlatform, but a KilnError (saying what is wrong and what to write) for a bad platform. */
export function parsePlatform(text: string, what = 'platform'): Platform {
  const r = tryParsePlatform(text);
  if ('problem' in r) {
    throw new KilnError(`invalid ${what} "${text}": ${r.problem}`, {
      hint: 'write os/arch[/variant], e.g. linux/amd64, linux/arm64 or linux/arm/v7',
    });
  }
  return r.platform;
}

/** Whether a candidate (from an index) serves the wanted platform; arm64 treats a missing variant as v8. */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  const norm = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  const wv = norm(want);
  return wv === undefined || norm(have) === undefined || wv === norm(have);
}

/** The platform ARGs BuildKit predefines (TARGETPLATFORM, BUILDARCH, ...). */
export function predefinedPlatformArgs(target: Platform, build: Platform): Record<string, string> {
  return {
    TARGETPLATFORM: formatPlatform(target),
    TARGETOS: target.os,
    TARGETARCH: target.architecture,
    TARGETVARIANT: target.variant ?? '',
    BUILDPLATFORM: formatPlatform(build),
    BUILDOS: build.os,
    BUILDARCH: build.architecture,
    BUILDVARIANT: build.variant ?? '',
  };
}

/** QEMU's name for an OCI architecture (the binfmt_misc handler is qemu-NAME). */
export const QEMU_ARCH: Readonly<Record<string, string>> = {
  '386': 'i386', amd64: 'x86_64', arm: 'arm', arm64: 'aarch64', loong64: 'loongarch64', mips: 'mips', mipsle: 'mipsel',
  mips64: 'mips64', mips64le: 'mips64el', ppc64: 'ppc64', ppc64le: 'ppc64le', riscv64: 'riscv64', s390x: 's390x', sparc64: 'sparc64',
};

/** Architectures a kernel runs natively besides its own (32-bit modes of 64-bit CPUs). */
export const NATIVE_COMPAT: Readonly<Record<string, string[]>> = { amd64: ['386'], arm64: ['arm'] };

/** Where the kernel's binfmt_misc file system is mounted. */
export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

/** A registered binfmt_misc handler, as its file in binfmt_misc describes it. */
export interface RegisteredHandler {
  enabled: boolean;
  interpreter: string;
  /** The flags (P, O, C, F), "" when none. */
  flags: string;
}

/** The handler `name` registered in binfmt_misc at dir, or undefined when there is none. */
export function readBinfmtHandler(dir: string, name: string): RegisteredHandler | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(dir, name), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const value = (key: string) => lines.find((l) => l.startsWith(`${key} `) || l.startsWith(`${key}:`))?.slice(key.length + 1).trim() ?? '';
  return { enabled: lines[0] === 'enabled', interpreter: value('interpreter'), flags: value('flags').replace(/^:\s*/, '') };
}

/**
 * Why a process for `target` cannot run on this machine, or undefined when it can: natively,
 * or through a registered, enabled binfmt_misc handler for QEMU user emulation that has the F
 * (fix-binary) flag: without F the kernel looks the interpreter up when a program starts, inside
 * the container's rootfs, where there is none. The fix is `kiln setup binfmt --platform P`.
 */
export function executionProblem(target: Platform, host: Platform = hostPlatform(), binfmtDir = BINFMT_DIR): string | undefined {
  if (target.os !== 'linux') return `kiln runs Linux containers only, not ${target.os}`;
  if (target.architecture === host.architecture || NATIVE_COMPAT[host.architecture]?.includes(target.architecture)) return undefined;
  const qemu = QEMU_ARCH[target.architecture] ?? target.architecture;
  const where = `${formatPlatform(target)} programs cannot run on this ${formatPlatform(host)} machine`;
  if (!existsSync(path.join(binfmtDir, 'register'))) {
    return `no binfmt_misc handler for ${target.architecture} is registered (binfmt_misc is not even mounted on ${binfmtDir}), so ${where}`;
  }
  let found: { name: string; handler: RegisteredHandler } | undefined;
  for (const name of [`qemu-${qemu}`, `buildkit-qemu-${qemu}`]) {
    const handler = readBinfmtHandler(binfmtDir, name);
    if (handler?.enabled && handler.flags.includes('F')) return undefined;
    found ??= handler ? { name, handler } : undefined;
  }
  if (!found) return `no binfmt_misc handler for ${target.architecture} is registered (${path.join(binfmtDir, `qemu-${qemu}`)}), so ${where}`;
  const file = path.join(binfmtDir, found.name);
  if (!found.handler.enabled) return `the binfmt_misc handler ${file} is disabled, so ${where}`;
  return `the binfmt_misc handler ${file} is registered without the F (fix-binary) flag, so the kernel looks for its interpreter ${found.handler.interpreter} inside the container, where it is missing`;
}
