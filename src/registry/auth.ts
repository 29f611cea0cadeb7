/**
 * Registry authentication: WWW-Authenticate challenges (Basic; Bearer with realm, service and
 * scope), and the token dance of the distribution token spec — a GET to the realm with basic
 * credentials (or none, for anonymous pulls), or a POST with an identity token as
 * refresh_token. Tokens are cached per host and scope set until shortly before they expire,
 * and dropped when the registry refuses one (the caller then asks again).
 */
import { KilnError } from '../errors.js';
import type { CredentialStore, Credentials } from './types.js';
import { readBody, type Transport } from './transport.js';

export interface Challenge {
  /** Lowercase: "basic", "bearer". */
  scheme: string;
  params: Record<string, string>;
}

/** The challenges of WWW-Authenticate header values (several may be given, comma-joined). */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) {
    let i = 0;
    const s = value;
    const skipWs = () => {
      while (i < s.length && /[\s,]/.test(s[i])) i++;
    };
    while (i < s.length) {
      skipWs();
      const scheme = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i));
      if (!scheme) break;
      i += scheme[0].length;
      const challenge: Challenge = { scheme: scheme[0].toLowerCase(), params: {} };
      out.push(challenge);
      // auth-params: key=value or key="quoted", comma separated, until the next scheme
      for (;;) {
        const save = i;
        skipWs();
        const key = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*/.exec(s.slice(i));
        if (!key) {
          i = save;
          break;
        }
        i += key[0].length;
        let val = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            val += s[i++];
          }
          i++;
        } else {
          const m = /^[^\s,]*/.exec(s.slice(i))!;
          val = m[0];
          i += m[0].length;
        }
        challenge.params[key[1].toLowerCase()] = val;
      }
    }
  }
  return out;
}

/** The challenge to answer: Bearer when offered, else Basic. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer' && c.params.realm) ?? challenges.find((c) => c.scheme === 'basic');
}

interface CachedToken {
  token: string;
  /** ms since the epoch. */
  expiresAt: number;
}

/** "repository:NAME:ACTIONS" scopes of a set, merged and sorted (the cache key). */
export function normalizeScopes(scopes: string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const s of scopes) {
    const i = s.lastIndexOf(':');
    if (i <= 0) continue;
    const resource = s.slice(0, i);
    const set = byResource.get(resource) ?? new Set<string>();
    for (const a of s.slice(i + 1).split(',')) if (a) set.add(a);
    byResource.set(resource, set);
  }
  return [...byResource].map(([r, a]) => `${r}:${[...a].sort().join(',')}`).sort();
}

export class Authorizer {
  private readonly tokens = new Map<string, Promise<CachedToken>>();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();

  constructor(
    private readonly transport: Transport,
    private readonly credentials?: CredentialStore,
  ) {}

  /** Credentials for a registry as the user names it; undefined when none (anonymous). */
  credentialsFor(host: string): Promise<Credentials | undefined> {
    let c = this.creds.get(host);
    if (!c) {
      c = this.credentials ? this.credentials.get(host) : Promise.resolve(undefined);
      this.creds.set(host, c);
      c.catch(() => this.creds.delete(host));
    }
    return c;
  }

  /**
   * The Authorization value answering `challenge` for `scopes` on `host` (the name the user
   * gave), undefined when the registry asked for nothing.
   */
  async authorization(host: string, challenge: Challenge | undefined, scopes: string[]): Promise<string | undefined> {
    if (!challenge) return undefined;
    const creds = await this.credentialsFor(host);
    if (challenge.scheme === 'basic') {
      if (!creds?.username || creds.password === undefined) throw loginRequired(host);
      return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    }
    if (challenge.scheme !== 'bearer') {
      throw new KilnError(`${host} asks for ${challenge.scheme} authentication, which kiln does not speak`, { code: 'unsupported' });
    }
    const wanted = normalizeScopes([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])]);
    const key = `${host}|${challenge.params.realm}|${challenge.params.service ?? ''}|${wanted.join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached) {
      const t = await cached.catch(() => undefined);
      if (t && t.expiresAt > Date.now() + 5_000) return `Bearer ${t.token}`;
      if (this.tokens.get(key) === cached) this.tokens.delete(key);
    }
    let p = this.tokens.get(key);
    if (!p) {
      p = this.fetchToken(host, challenge, wanted, creds);
      this.tokens.set(key, p);
      p.catch(() => this.tokens.delete(key));
    }
    return `Bearer ${(await p).token}`;
  }

  /** Forgets the tokens for `host` (after the registry refused one). */
  forget(host: string): void {
    for (const k of [...this.tokens.keys()]) if (k.startsWith(`${host}|`)) this.tokens.delete(k);
  }

  private async fetchToken(host: string, challenge: Challenge, scopes: string[], creds: Credentials | undefined): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      throw new KilnError(`${host} sent a token realm that is not a URL`, { code: 'failed' });
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new KilnError(`${host} sent a token realm that is not http(s)`, { code: 'failed' });
    const service = challenge.params.service;
    let res;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'kiln' });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.transport.request({
        method: 'POST',
        url: realm,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
      });
    } else {
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const basic = creds?.username && creds.password !== undefined ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
      res = await this.transport.request({ method: 'GET', url, authorization: basic });
    }
    if (res.status === 401 || res.status === 403) {
      res.discard();
      throw creds ? credentialsRefused(host) : loginRequired(host);
    }
    if (res.status !== 200) {
      res.discard();
      throw new KilnError(`the token server of ${host} (${realm.host}) answered ${res.status}`, {
        code: res.status >= 500 || res.status === 429 ? 'unavailable' : 'failed',
        hint: 'try again later; if it persists, check the registry',
      });
    }
    const body = await readBody(res, 1 << 20, () => `the token from ${realm.host}`);
    let parsed: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new KilnError(`the token server of ${host} (${realm.host}) sent something that is not JSON`, { code: 'failed' });
    }
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new KilnError(`the token server of ${host} (${realm.host}) sent no token`, { code: 'failed' });
    const issued = parsed.issued_at ? Date.parse(parsed.issued_at) : NaN;
    const start = Number.isNaN(issued) || issued > Date.now() ? Date.now() : issued;
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    return { token, expiresAt: start + lifetime * 1000 };
  }
}

/** 401 without credentials; `repository` named when known (a registry may hide a missing one behind 401). */
export function loginRequired(host: string, repository?: string): KilnError {
  const which = repository ? ` to access ${host}/${repository} (or it does not exist)` : '';
  return new KilnError(`${host}: authentication required${which}`, { code: 'unauthorized', hint: `log in first: kiln login ${host}` });
}

export function credentialsRefused(host: string): KilnError {
  return new KilnError(`${host}: unauthorized: the registry refused the stored credentials`, {
    code: 'unauthorized',
    hint: `check the user name and password: kiln login ${host}`,
  });
}
