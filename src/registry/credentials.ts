/**
 * Credentials as docker keeps them: $DOCKER_CONFIG/config.json (default ~/.docker), its
 * `auths` (base64 "user:password" in `auth`). (The credential-helper slice of #10 adds
 * credsStore, credHelpers, writing and erasing.)
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { CredentialStore, Credentials } from './types.js';

/** The docker config directory: DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(): string {
  return process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
}

/** The key docker's config.json files a host under (Docker Hub has a legacy URL). */
export function configKey(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'https://index.docker.io/v1/' : host;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
}

async function readConfig(dir: string): Promise<DockerConfigFile> {
  const file = path.join(dir, 'config.json');
  const raw = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (raw === undefined) return {};
  try {
    return JSON.parse(raw) as DockerConfigFile;
  } catch {
    throw new KilnError(`${file} is not valid JSON`, { code: 'invalid', hint: 'fix or remove it, then kiln login again' });
  }
}

/** docker's config.json credentials (read only, for now). */
export function dockerCredentials(dir = dockerConfigDir()): CredentialStore {
  return {
    async get(host: string): Promise<Credentials | undefined> {
      const cfg = await readConfig(dir);
      const entry = cfg.auths?.[configKey(host)] ?? cfg.auths?.[`https://${host}`] ?? cfg.auths?.[`http://${host}`];
      if (!entry) return undefined;
      if (entry.identitytoken) return { identityToken: entry.identitytoken };
      if (entry.auth) {
        const text = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = text.indexOf(':');
        if (colon < 0) return undefined;
        return { username: text.slice(0, colon), password: text.slice(colon + 1) };
      }
      if (entry.username !== undefined) return { username: entry.username, password: entry.password };
      return undefined;
    },
    async store(host: string): Promise<void> {
      throw new KilnError(`storing credentials for ${host} is not written yet`);
    },
    async erase(): Promise<boolean> {
      return false;
    },
  };
}
