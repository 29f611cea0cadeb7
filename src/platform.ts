/** Platforms in OCI terms: the host's, parsing and formatting, matching, and the ARGs BuildKit predefines. */
import { KilnError } from './errors.js';
import type { Platform } from './oci/types.js';

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

/**
 * Parses "linux/arm64/v8", "linux/amd64" or "arm64", normalising the common aliases as
 * containerd does (x86_64 → amd64, aarch64 → arm64, arm64/v8 → arm64, armhf → arm/v7).
 */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length === 1 && parts[0] !== '') parts.unshift('linux');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new KilnError(`invalid platform "${text}": expected os/arch[/variant], e.g. linux/amd64`);
  }
  const os = parts[0];
  let arch = parts[1];
  let variant: string | undefined = parts[2];
  if (arch === 'x86_64' || arch === 'x86-64') arch = 'amd64';
  if (arch === 'aarch64') arch = 'arm64';
  if (arch === 'arm64' && variant === 'v8') variant = undefined;
  if (arch === 'armhf') {
    arch = 'arm';
    variant = 'v7';
  }
  return variant ? { os, architecture: arch, variant } : { os, architecture: arch };
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
