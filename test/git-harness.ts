/**
 * Git servers for ADD tests, each on 127.0.0.1 and a port of its own: a repository made by
 * running git commands, served over dumb http (a node static file server, as BuildKit's
 * tests serve `.git`), over smart http (`git http-backend` as CGI behind a node server) and
 * over git:// (`git daemon`). Every server is stopped by its close().
 */
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';

export interface Served {
  /** The URL the repository's .git is served at (`<url>` ends in .git). */
  url: string;
  /** Smart http: while true, object fetches are held unanswered (a stalled network). */
  hold?: boolean;
  /** Smart http: ends the requests held so far. */
  releaseHeld?(): void;
  /** Requests the server answered (path and query; smart http: and ` fetch` for an object fetch), in order. */
  requests: string[];
  close(): Promise<void>;
}

const gitEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 'test@example.com', GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 'test@example.com', GIT_ALLOW_PROTOCOL: 'file:http:https:git' };

/**
 * Runs shell commands in `dir` (a repository being made); throws with their output on
 * failure. Asynchronous: git may fetch from a server of this very process (a submodule).
 */
export function sh(dir: string, ...commands: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-ec', commands.join('\n')], { cwd: dir, env: gitEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${commands.join('; ')}: ${out}`))));
  });
}

export async function revParse(dir: string, ref: string): Promise<string> {
  return (await sh(dir, `git rev-parse ${ref}`)).trim();
}

/** Whether the host's git makes sha256 repositories. */
export function gitSupportsSha256(): boolean {
  const d = spawnSync('sh', ['-c', 'd=$(mktemp -d) && git init -q --object-format=sha256 "$d" && rm -rf "$d"'], { env: gitEnv });
  return d.status === 0;
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closer(server: http.Server): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

/** Serves the files of `dir` (a work tree whose .git had `git update-server-info`) over dumb http. */
export async function serveDumb(dir: string): Promise<Served> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(dir, path.posix.normalize(`/${rel}`));
    fs.stat(file)
      .catch(() => undefined)
      .then((st) => {
        if (!st?.isFile()) {
          res.writeHead(404);
          res.end();
          return;
        }
        res.writeHead(200, { 'content-length': st.size });
        createReadStream(file).pipe(res);
      });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}/.git`, requests, close: closer(server) };
}

/**
 * Serves the repositories under `projectRoot` over smart http: `git http-backend` run as a
 * CGI per request. `url` names `<projectRoot>/<name>` (a bare repository or a .git dir).
 */
export async function serveSmart(projectRoot: string, name: string, tls?: { key: Buffer; cert: Buffer }): Promise<Served> {
  const requests: string[] = [];
  const held: http.ServerResponse[] = [];
  const handler: http.RequestListener = (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const i = requests.push(req.url ?? '') - 1;
    // protocol v2 asks for refs (ls-refs) and objects (fetch) by POST to one path: tell them
    // apart by the body (read whole first: these requests are small)
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      const all = Buffer.concat(body);
      const isFetch = /command=fetch|want [0-9a-f]{40}/.test(all.toString('latin1'));
      if (isFetch) requests[i] += ' fetch';
      if (isFetch && served.hold) held.push(res);
      else backend(req, res, u, all);
    });
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  const backend = (req: http.IncomingMessage, res: http.ServerResponse, u: URL, body: Buffer): void => {
    const cgi = spawn('git', ['http-backend'], {
      env: {
        ...gitEnv,
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
        REMOTE_ADDR: '127.0.0.1',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    cgi.stdin.end(body);
    // CGI output: headers, a blank line, the body
    let head = Buffer.alloc(0);
    let inBody = false;
    cgi.stdout.on('data', (c: Buffer) => {
      if (inBody) {
        res.write(c);
        return;
      }
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
        else res.setHeader(k, v);
      }
      res.writeHead(status);
      inBody = true;
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => res.end());
  };
  const port = await listen(server);
  const served: Served = {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/${name}`,
    requests,
    hold: false,
    releaseHeld: () => held.splice(0).forEach((r) => r.destroy()),
    close: closer(server),
  };
  return served;
}

async function freePort(): Promise<number> {
  const s = http.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

/** Serves the repositories under `base` with `git daemon` on 127.0.0.1: `url` is git://…/<name>. */
export async function gitDaemon(base: string, name: string): Promise<Served> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const p = spawn('git', ['daemon', '--reuseaddr', '--export-all', '--listen=127.0.0.1', `--port=${port}`, `--base-path=${base}`, base], { env: gitEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const up = await waitForPort(port, p);
    const close = async () => {
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await exited;
      }
    };
    if (up) return { url: `git://127.0.0.1:${port}/${name}`, requests: [], close };
    await close();
    if (attempt >= 3) throw new Error(`git daemon did not start: ${err}`);
  }
}

async function waitForPort(port: number, p: ReturnType<typeof spawn>): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (p.exitCode !== null) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
