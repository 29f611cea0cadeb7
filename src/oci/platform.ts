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

/** Parses "linux/arm64/v8", "linux/amd64", "arm64". */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length === 1) return { os: 'linux', architecture: parts[0] };
  const [os, architecture, variant] = parts;
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Whether a candidate (from an index) serves the wanted platform; arm64 treats a missing variant as v8. */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  const norm = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  const wv = norm(want);
  return wv === undefined || norm(have) === undefined || wv === norm(have);
}
