import { KilnError } from '../errors.js';
import type { Platform } from '../oci/types.js';

const ARCH_FROM_NODE: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform kiln runs on, in OCI terms. */
export function hostPlatform(): Platform {
  const arch = ARCH_FROM_NODE[process.arch] ?? process.arch;
  const p: Platform = { os: 'linux', architecture: arch };
  if (arch === 'arm') p.variant = 'v7';
  return p;
}

/** "linux/arm64/v8" → Platform, normalising the common aliases as containerd does. */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
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
  const p: Platform = { os, architecture: arch };
  if (variant) p.variant = variant;
  return p;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}
