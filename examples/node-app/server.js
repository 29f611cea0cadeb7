// A small HTTP server: GET / answers with a greeting page, GET /health with "ok".
// `node server.js --once` starts it on a free port, fetches / from itself, prints the page and
// exits (what the tests and `kiln run` show without publishing a port).
'use strict';
const http = require('node:http');
const escapeHtml = require('escape-html');
const createDebug = require('debug');
const debug = createDebug('app');
const { greeting } = require('./src/greeting.js');

const started = Date.now();

function page(name) {
  return `<h1>${escapeHtml(greeting(name))}</h1>\n<p>node ${process.version}, up ${createDebug.humanize(Date.now() - started)}</p>\n`;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  debug('%s %s', req.method, url.pathname);
  if (url.pathname === '/health') {
    res.end('ok\n');
    return;
  }
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(page(url.searchParams.get('name') ?? 'world'));
});

const once = process.argv.includes('--once');
server.listen(once ? 0 : Number(process.env.PORT ?? 3000), once ? '127.0.0.1' : '0.0.0.0', () => {
  const { port } = server.address();
  if (!once) {
    console.log(`listening on :${port}`);
    return;
  }
  http.get({ host: '127.0.0.1', port, path: '/?name=<kiln>' }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (body += c));
    res.on('end', () => {
      process.stdout.write(body);
      server.close();
    });
  });
});
