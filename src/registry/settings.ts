/**
 * The registry settings a command runs with: docker's credentials, kiln's config
 * (`insecureRegistries` in <root>/config.json, KILN_INSECURE_REGISTRIES, comma-separated) and
 * `--insecure-registry` flags. Pull, push, the cache and login all get their client here.
 */
import { readFileSync } from 'node:fs';
import { kilnPaths } from '../paths.js';
import { RegistryClient } from './client.js';
import { dockerCredentials } from './credentials.js';
import type { ClientOptions } from './types.js';

export interface RegistrySettingsInput {
  root: string;
  /** From --insecure-registry (repeatable). */
  insecureRegistries?: string[];
  signal?: AbortSignal;
}

/** Hosts listed as insecure: the flags, the environment and the root's config.json. */
export function insecureRegistries(input: RegistrySettingsInput): string[] {
  const out = new Set(input.insecureRegistries ?? []);
  for (const h of (process.env.KILN_INSECURE_REGISTRIES ?? '').split(',')) if (h.trim()) out.add(h.trim());
  try {
    const cfg = JSON.parse(readFileSync(kilnPaths(input.root).config, 'utf8')) as { insecureRegistries?: unknown; 'insecure-registries'?: unknown };
    const listed = cfg.insecureRegistries ?? cfg['insecure-registries'];
    if (Array.isArray(listed)) for (const h of listed) if (typeof h === 'string') out.add(h);
  } catch {
    // no config, or not JSON: the cache limit's reader reports a broken config.json
  }
  return [...out];
}

export function clientOptions(input: RegistrySettingsInput): ClientOptions {
  return { credentials: dockerCredentials(), insecureRegistries: insecureRegistries(input), signal: input.signal };
}

export function registryClient(input: RegistrySettingsInput): RegistryClient {
  return new RegistryClient(clientOptions(input));
}
