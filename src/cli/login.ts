/**
 * kiln login and kiln logout, as docker login/logout: the credentials are checked against the
 * registry before anything is stored, and stored where docker keeps them (config.json, or the
 * credential helper it names), so docker and kiln share one login.
 */
import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import type { Registrar } from './main.js';
import { KilnError, errorCode, isKilnError } from '../errors.js';
import { checkRegistryHost, registryClient } from '../registry/settings.js';
import { dockerCredentials, fixedCredentials, registryHostname } from '../registry/credentials.js';
import type { Credentials } from '../registry/types.js';

interface LoginFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

/** The registry host a login/logout argument names (docker.io when none), checked. */
export function loginHost(server: string | undefined): string {
  if (server === undefined || server.trim() === '') return 'docker.io';
  return checkRegistryHost(registryHostname(server), "the server to log in to or out of");
}

/** All of stdin, its one trailing newline (\n or \r\n) removed, as docker login --password-stdin does. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** A line typed at the terminal, echoed. */
function askLine(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      resolve(answer);
    });
  });
}

/** A line typed at the terminal without echo (the terminal in raw mode; ^C cancels): login's password. */
function askHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of String(chunk)) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new KilnError('cancelled at the prompt', { code: 'cancelled', exitCode: 130 }));
        if (ch === '\u0004') {
          if (text === '') return finish();
        } else if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    // no echo before the prompt shows: what is typed after it is never displayed
    stdin.setRawMode(true);
    process.stderr.write(question);
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** Checks `credentials` against `host`: the registry's /v2/ with them, nothing stored. */
async function verify(root: string, insecure: string[], host: string, credentials: Credentials): Promise<void> {
  const client = registryClient({ root, insecureRegistries: insecure, credentials: fixedCredentials(host, credentials) });
  try {
    await client.ping(host);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'unauthorized') {
      throw new KilnError(`unauthorized: incorrect username or password for ${host}`, {
        code: 'unauthorized',
        cause: err,
        hint: `check the username and password (or access token) for ${host}; nothing was stored`,
      });
    }
    if (code === 'unavailable' || code === 'not-found') {
      throw new KilnError(`cannot reach registry ${host}: ${isKilnError(err) ? err.message : (err as Error).message}`, {
        code: 'unavailable',
        cause: err,
        hint: `check the host name and port and that the registry is running (plain HTTP needs --insecure-registry ${host} unless it is a loopback address); nothing was stored`,
      });
    }
    throw err;
  } finally {
    client.close();
  }
}

async function login(server: string | undefined, flags: LoginFlags, root: string, insecure: string[]): Promise<void> {
  const host = loginHost(server);
  if (flags.password !== undefined && flags.passwordStdin) {
    throw new KilnError('--password and --password-stdin cannot be used together', { code: 'invalid', hint: 'use --password-stdin alone' });
  }
  if (flags.password !== undefined) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  const store = dockerCredentials();
  let username = flags.username;
  let password = flags.password;
  if (flags.passwordStdin) {
    if (!username) throw new KilnError('--password-stdin needs a username: add -u USER', { code: 'invalid', hint: `e.g. printf '%s' "$TOKEN" | kiln login -u USER --password-stdin ${host}` });
    password = await readStdin();
    if (password === '') throw new KilnError('--password-stdin read an empty password', { code: 'invalid', hint: 'pipe the password (or token) into kiln login' });
  }
  if (username === undefined && password === undefined) {
    // as docker: stored credentials that still work are a login
    const existing = await store.get(host);
    if (existing?.username && existing.password) {
      process.stderr.write('Authenticating with existing credentials...\n');
      try {
        await verify(root, insecure, host, existing);
        process.stdout.write('Login Succeeded\n');
        return;
      } catch (err) {
        if (errorCode(err) !== 'unauthorized') throw err;
        process.stderr.write(`Login did not succeed with the stored credentials for ${host}\n`);
      }
    }
    username = existing?.username;
    if (!process.stdin.isTTY) throw noTty(host);
    const typed = (await askLine(username ? `Username (${username}): ` : 'Username: ')).trim();
    if (typed !== '') username = typed;
  } else if (password === undefined && !process.stdin.isTTY) throw noTty(host);
  if (!username) throw new KilnError('a username is required', { code: 'invalid', hint: `kiln login -u USER --password-stdin ${host}` });
  if (password === undefined) password = await askHidden('Password: ');
  if (password === '') throw new KilnError('a password is required', { code: 'invalid', hint: `kiln login -u ${username} --password-stdin ${host}` });
  const credentials: Credentials = { username, password };
  await verify(root, insecure, host, credentials);
  await store.store(host, credentials);
  const where = await store.location(host);
  if (!where.helper) {
    process.stderr.write(`WARNING! Your password is stored unencrypted in ${where.file}.\nConfigure a credential helper (credsStore in that file) to remove this warning.\n`);
  }
  process.stdout.write('Login Succeeded\n');
}

function noTty(host: string): KilnError {
  return new KilnError('cannot ask for a username and password: stdin is not a terminal', {
    code: 'invalid',
    hint: `pass them: printf '%s' "$PASSWORD" | kiln login -u USER --password-stdin ${host}`,
  });
}

async function logout(server: string | undefined): Promise<void> {
  const host = loginHost(server);
  const erased = await dockerCredentials().erase(host);
  process.stdout.write(erased ? `Removing login credentials for ${host}\n` : `Not logged in to ${host}\n`);
}

export const register: Registrar = (program: Command, globals) => {
  // both words load this file: `kiln help` loads every command file, this one twice
  if (program.commands.some((c) => c.name() === 'login')) return;
  program
    .command('login')
    .description("Log in to a registry: the credentials are checked, then kept where docker keeps them (config.json or its credential helper)")
    .argument('[server]', 'registry host[:port] (default docker.io)')
    .option('-u, --username <user>', 'username')
    .option('-p, --password <password>', 'password (insecure: it shows in the process list and shell history; use --password-stdin)')
    .option('--password-stdin', 'read the password (or token) from stdin')
    .action(async (server: string | undefined, flags: LoginFlags) => {
      const g = globals();
      await login(server, flags, g.root, g.insecureRegistries);
    });
  program
    .command('logout')
    .description('Remove the credentials stored for a registry')
    .argument('[server]', 'registry host[:port] (default docker.io)')
    .action(async (server: string | undefined) => {
      await logout(server);
    });
};
