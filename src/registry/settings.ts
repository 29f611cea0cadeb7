/**
 * The registry settings a command runs with: docker's credentials and the hosts that may be
 * spoken to over plain HTTP (or HTTPS without verification). Pull, push, the cache and login all
 * get their client here.
 *
 * Insecure registries come from three places, all added together:
 * - `--insecure-registry HOST` (repeatable, a global flag);
 * - KILN_INSECURE_REGISTRIES, comma-separated;
 * - `insecureRegistries` in the root's config.json (`<root>/config.json`, beside `cacheMaxSize`):
 *   `{"insecureRegistries": ["registry.local:5000", "10.0.0.7"]}` (`insecure-registries`, as
 *   dockerd's daemon.json spells it, is read too).
 * Each entry is a host or host:port (a name, an IPv4 address or a bracketed IPv6 address), no
 * scheme and no path; anything else is an error that says where it came from. Loopback
 * addresses need no entry.
 */
import { readFileSync } from 'node:fs';
import { KilnError } from '../errors.js';
import { kilnPaths } from '../paths.js';
import { RegistryClient } from './client.js';
import { dockerCredentials } from './credentials.js';
import type { ClientOptions, CredentialStore } from './types.js';

export interface RegistrySettingsInput {
  root: string;
  /** From --insecure-registry (repeatable). */
  insecureRegistries?: string[];
  /** Default: docker's (config.json, credsStore, credHelpers). kiln login passes the credentials it verifies. */
  credentials?: CredentialStore;
  signal?: AbortSignal;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const HOST_PORT = new RegExp(`^(?:${LABEL}(?:\\.${LABEL})*|\\[[0-9a-f:.]+\\])(?::(\\d{1,5}))?$`, 'i');

/** Whether `text` is a registry host[:port]: a DNS name or IPv4 address, or [IPv6], and a port 1-65535. */
export function isRegistryHost(text: string): boolean {
  const m = HOST_PORT.exec(text);
  if (!m) return false;
  return m[1] === undefined || (Number(m[1]) >= 1 && Number(m[1]) <= 65535);
}

/** `text` as a registry host[:port] (lower-cased), or a KilnError saying what is wrong and where it came from. */
export function checkRegistryHost(text: string, from: string): string {
  const t = text.trim();
  if (isRegistryHost(t)) return t.toLowerCase();
  const why = /:\/\//.test(t) ? 'has a scheme' : t.includes('/') ? 'has a path' : t === '' ? 'is empty' : 'is not a host or host:port';
  const example = t.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split('/')[0];
  throw new KilnError(`registry "${text}" (${from}) ${why}`, {
    code: 'invalid',
    hint: `write a host or host:port${example && isRegistryHost(example) ? `, here "${example}"` : ', e.g. registry.local:5000'}`,
  });
}

/** Hosts listed as insecure: the flags, the environment and the root's config.json, validated. */
export function insecureRegistries(input: RegistrySettingsInput): string[] {
  const out = new Set<string>();
  for (const h of input.insecureRegistries ?? []) out.add(checkRegistryHost(h, '--insecure-registry'));
  for (const h of (process.env.KILN_INSECURE_REGISTRIES ?? '').split(',')) if (h.trim()) out.add(checkRegistryHost(h, 'KILN_INSECURE_REGISTRIES'));
  const file = kilnPaths(input.root).config;
  let raw: string | undefined;
  try {
    raw = readFileSync(file, 'utf8');
  } catch {
    raw = undefined; // no config: nothing listed
  }
  if (raw !== undefined && raw.trim() !== '') {
    let cfg: { insecureRegistries?: unknown; 'insecure-registries'?: unknown };
    try {
      cfg = JSON.parse(raw) as typeof cfg;
    } catch {
      throw new KilnError(`${file} is not valid JSON`, { code: 'invalid', hint: 'fix it: e.g. {"insecureRegistries": ["registry.local:5000"]}' });
    }
    for (const field of ['insecureRegistries', 'insecure-registries'] as const) {
      const listed = cfg?.[field];
      if (listed === undefined) continue;
      if (!Array.isArray(listed) || listed.some((h) => typeof h !== 'string')) {
        throw new KilnError(`${field} in ${file} must be a list of host[:port] strings`, { code: 'invalid', hint: `e.g. {"${field}": ["registry.local:5000"]}` });
      }
      for (const h of listed as string[]) out.add(checkRegistryHost(h, `${field} in ${file}`));
    }
  }
  return [...out];
}

export function clientOptions(input: RegistrySettingsInput): ClientOptions {
  return { credentials: input.credentials ?? dockerCredentials(), insecureRegistries: insecureRegistries(input), signal: input.signal };
}

export function registryClient(input: RegistrySettingsInput): RegistryClient {
  return new RegistryClient(clientOptions(input));
}
