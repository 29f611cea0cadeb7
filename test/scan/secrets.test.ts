import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeImage } from '../../src/oci/image.js';
import { writeLayer, type LayerEntry } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import type { ImageConfig } from '../../src/oci/types.js';
import { formatSecretFindings, redact, scanSecrets, SECRET_RULES, type SecretFinding } from '../../src/scan/secrets.js';
import { tempDir } from '../oci/util.js';
import { importBase, skipExamples } from '../examples/examples.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Random characters of `alphabet`: every secret here is made when the test runs. */
function rand(n: number, alphabet = ALNUM): string {
  const bytes = randomBytes(n);
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
}
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

const file = (p: string, content: string | Buffer): LayerEntry => ({ path: p, type: 'file', mode: 0o600, uid: 0, gid: 0, mtime: 0, content: Buffer.from(content) });
const dir = (p: string): LayerEntry => ({ path: p, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 });

function sshKey(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'kiln-sshkey-'));
  try {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'k')]);
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
    return readFileSync(path.join(d, 'k'), 'utf8');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

test('secrets in every layer (deleted ones marked), credential files, env, labels and history are found, and never printed whole', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string;
  const encrypted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
  const openssh = sshKey();
  const s = {
    akia: `AKIA${rand(16, UPPER)}`,
    awsSecret: `${rand(12)}/${rand(13)}+${rand(13)}`,
    ghp: `ghp_${rand(36)}`,
    pat: `github_pat_${rand(22)}_${rand(59)}`,
    glpat: `glpat-${rand(20)}`,
    slack: `xoxb-${rand(12, '0123456789')}-${rand(12, '0123456789')}-${rand(24)}`,
    google: `AIza${rand(35)}`,
    npm: `npm_${rand(36)}`,
    pypi: `pypi-AgEIcHlwaS5vcmc${rand(60)}`,
    jwt: `eyJ${rand(20)}.eyJ${rand(30)}.${rand(43)}`,
    dbPassword: `pw-${rand(20)}`,
    apiKey: rand(32),
    dockerAuth: Buffer.from(`kiln:${rand(16)}`).toString('base64'),
    gitPassword: rand(24),
    npmrcToken: rand(30),
    envToken: `ghp_${rand(36)}`,
    envPassword: rand(18),
    labelSecret: rand(26),
    buildArg: `npm_${rand(36)}`,
    binaryToken: `ghp_${rand(36)}`,
    bigToken: `ghp_${rand(36)}`,
    docToken: `ghp_${rand(36)}`,
  };
  const l0 = await writeLayer(store, [
    dir('app'),
    file('app/.env', `# settings\nDB_HOST=db\nDB_PASSWORD=${s.dbPassword}\nAPI_KEY="${s.apiKey}"\nEMPTY_TOKEN=\nREF_TOKEN=\${OUTER_TOKEN}\nSESSION_SECRET=changeme\n`),
    file('app/config.js', `module.exports = {\n  gh: '${s.ghp}',\n  pat: "${s.pat}",\n  gl: '${s.glpat}',\n  slack: '${s.slack}',\n  google: '${s.google}',\n  npm: '${s.npm}',\n  pypi: '${s.pypi}',\n  jwt: '${s.jwt}',\n  example: 'AKIAIOSFODNN7EXAMPLE',\n};\n`),
    file('app/big.txt', `${'x'.repeat(5000)}\n${s.bigToken}\n`),
    file('app/tool.bin', Buffer.concat([Buffer.from('\x7fELF\0\0\0'), Buffer.from(s.binaryToken)])),
    dir('root'),
    dir('root/.ssh'),
    file('root/.ssh/id_rsa', rsa),
    file('root/.ssh/id_ed25519', openssh),
    file('root/.aws/credentials', `[default]\naws_access_key_id = ${s.akia}\naws_secret_access_key = ${s.awsSecret}\n`),
    file('root/.docker/config.json', JSON.stringify({ auths: { 'registry.example.org': { auth: s.dockerAuth } }, credHelpers: { 'gcr.io': 'gcloud' } }, null, 2)),
    file('root/.git-credentials', `https://kiln:${s.gitPassword}@git.example.org\nhttps://anonymous@git.example.org\n`),
    file('root/.npmrc', `registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=${s.npmrcToken}\n//other/:_authToken=\${NPM_TOKEN}\n`),
    dir('secrets'),
    file('secrets/ec.pem', ec),
    file('srv/key.pem', encrypted),
    file('usr/share/doc/pkg/token.txt', `${s.docToken}\n`),
    file('src/tests/fixture.env', `API_TOKEN=${rand(30)}\n`),
  ]);
  // the layer above deletes the RSA key (a whiteout) and the secrets directory's contents (opaque)
  const l1 = await writeLayer(store, [dir('root'), dir('root/.ssh'), file('root/.ssh/.wh.id_rsa', ''), dir('secrets'), file('secrets/.wh..wh..opq', ''), file('app/readme.txt', 'nothing here\n')]);
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/bin:/usr/bin', `GITHUB_TOKEN=${s.envToken}`, `DB_PASSWORD=${s.envPassword}`, 'GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D', 'TOKEN_FILE=/run/secrets/token'],
      Labels: { 'org.example.api-token': s.labelSecret, 'org.opencontainers.image.version': '1.0' },
    },
    rootfs: { type: 'layers', diff_ids: [l0.diffId, l1.diffId] },
    history: [{ created_by: 'ADD rootfs.tar / # buildkit' }, { created_by: `RUN |1 NPM_TOKEN=${s.buildArg} /bin/sh -c npm ci # buildkit` }],
  };
  const { manifestDescriptor } = await writeImage(store, { config, layers: [l0.descriptor, l1.descriptor] }, ['secrets:1']);
  const skipped: string[] = [];
  const findings = await scanSecrets(store, manifestDescriptor, undefined, { maxFileSize: 4096, onSkipped: (e) => skipped.push(`${e.path} ${e.why}`) });

  const key = (f: SecretFinding): string => `${f.where} ${f.layer ?? ''} ${f.path ?? ''}:${f.line ?? ''} ${f.rule}${f.deleted ? ' deleted' : ''}`;
  assert.deepEqual(findings.map(key).sort(), [
    'env  DB_PASSWORD: secret-assignment',
    'env  GITHUB_TOKEN: github-token',
    'history 1 :1 npm-token',
    'label  org.example.api-token: secret-assignment',
    'layer 0 /app/.env:3 env-file',
    'layer 0 /app/.env:4 env-file',
    'layer 0 /app/config.js:2 github-token',
    'layer 0 /app/config.js:3 github-token',
    'layer 0 /app/config.js:4 gitlab-token',
    'layer 0 /app/config.js:5 slack-token',
    'layer 0 /app/config.js:6 google-api-key',
    'layer 0 /app/config.js:7 npm-token',
    'layer 0 /app/config.js:8 pypi-token',
    'layer 0 /app/config.js:9 jwt',
    'layer 0 /root/.aws/credentials:2 aws-access-key-id',
    'layer 0 /root/.aws/credentials:3 aws-credentials-file',
    'layer 0 /root/.docker/config.json:4 docker-config-auth',
    'layer 0 /root/.git-credentials:1 git-credentials',
    'layer 0 /root/.npmrc:2 npmrc-auth',
    'layer 0 /root/.ssh/id_ed25519:1 private-key',
    'layer 0 /root/.ssh/id_rsa:1 private-key deleted',
    'layer 0 /secrets/ec.pem:1 private-key deleted',
    'layer 0 /srv/key.pem:1 private-key',
  ].sort());
  assert.deepEqual(skipped.sort(), ['/app/big.txt size', '/app/tool.bin binary']);
  const layerFinding = findings.find((f) => f.path === '/root/.ssh/id_rsa')!;
  assert.equal(layerFinding.diffId, l0.diffId);
  assert.equal(layerFinding.severity, 'HIGH');
  assert.match(layerFinding.match, /^-----BEGIN RSA PRIVATE KEY----- MII\S\*+$/);
  assert.equal(findings.find((f) => f.rule === 'aws-access-key-id')!.severity, 'CRITICAL');

  // the secrets never appear whole, in the findings, the table or the JSON
  const outputs = [formatSecretFindings(findings, 'table'), formatSecretFindings(findings, 'json'), JSON.stringify(findings)];
  const all = [...Object.values(s), ...[rsa, ec, encrypted, openssh].map((pem) => pem.split('\n').find((l) => l.length >= 40)!)];
  for (const out of outputs) for (const secret of all) assert.ok(!out.includes(secret), `output holds the secret ${secret.slice(0, 6)}…`);
  assert.match(outputs[0], /CRITICAL\s+github-token\s+layer 0 \(\w{12}\) \/app\/config\.js:2\s+ghp_\*+/);
  assert.match(outputs[0], /HIGH\s+private-key\s+layer 0 \(\w{12}\) \/root\/\.ssh\/id_rsa:1 \(deleted later\)/);
});

test('redact keeps a short prefix and hides the length; every rule has an id, a title and a severity', () => {
  assert.equal(redact('ghp_abcdefghijklmnopqrstuvwxyz0123456789'), 'ghp_********');
  assert.equal(redact('abcdefghij'), 'ab********');
  assert.equal(redact('short'), '********');
  const ids = SECRET_RULES.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const r of SECRET_RULES) assert.ok(r.title && ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'].includes(r.severity), r.id);
});

test('marker text without a key body, placeholders and AWS example keys are not findings', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const l0 = await writeLayer(store, [
    file('usr/lib/python3/dist-packages/paramiko/rsakey.py', 'HEADER = "-----BEGIN RSA PRIVATE KEY-----"\nif line.startswith("-----BEGIN OPENSSH PRIVATE KEY-----"):\n    pass\n'),
    file('etc/app/aws.ini', 'aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n'),
    file('app/.env', 'PASSWORD=\nTOKEN=${TOKEN}\nAPI_KEY=<your key>\nSECRET_KEY_FILE=/run/secrets/key\n'),
    file('usr/lib/node_modules/tool/config.json', JSON.stringify({ server: { auth: 'basic', port: 80 } })),
  ]);
  const config: ImageConfig = { architecture: 'amd64', os: 'linux', config: { Env: ['GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D', 'NODE_VERSION=18.20.4'] }, rootfs: { type: 'layers', diff_ids: [l0.diffId] } };
  const { manifestDescriptor } = await writeImage(store, { config, layers: [l0.descriptor] }, []);
  assert.deepEqual(await scanSecrets(store, manifestDescriptor), []);
});

test('debian:bookworm: the clean base has no findings (time and counts printed)', { skip: skipExamples }, async (t) => {
  const root = tempDir(t, 'kiln-secrets-base-');
  await importBase(root, 'debian:bookworm');
  const store = await ContentStore.open(root);
  const top = (await store.resolve('debian:bookworm'))!;
  const manifest = top.mediaType.includes('index') ? (await store.readJSON<{ manifests: Array<typeof top> }>(top.digest)).manifests[0] : top;
  let binary = 0;
  let size = 0;
  const started = Date.now();
  const findings = await scanSecrets(store, manifest, undefined, { onSkipped: (e) => (e.why === 'binary' ? binary++ : size++) });
  t.diagnostic(`debian:bookworm secret scan: ${Date.now() - started} ms, ${findings.length} findings, ${binary} binaries and ${size} large files skipped`);
  for (const f of findings) t.diagnostic(`${f.rule} ${f.path}:${f.line} ${f.match}`);
  assert.deepEqual(findings.map((f) => `${f.rule} ${f.path}`), []);
});

test('adversarial layers: symlinks and hard links are not followed, `..` names stay names, a huge file is skipped unread', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const token = `ghp_${rand(36)}`;
  const huge = 64 << 20;
  const l0 = await writeLayer(store, [
    dir('app'),
    { path: 'app/.env', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, linkname: '/etc/shadow' },
    { path: 'app/creds', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, linkname: '../../../../root/.git-credentials' },
    file('app/real.txt', `${token}\n`),
    { path: 'app/link.txt', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtime: 0, linkname: 'app/real.txt' },
    // a file of 64 MiB of zeros, streamed: over the limit, so skipped without being buffered
    { path: 'app/huge.bin', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: huge, contentStream: (async function* () { for (let i = 0; i < 64; i++) yield Buffer.alloc(1 << 20); })() },
  ]);
  const config: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [l0.diffId] } };
  const { manifestDescriptor } = await writeImage(store, { config, layers: [l0.descriptor] }, []);
  const skipped: string[] = [];
  const findings = await scanSecrets(store, manifestDescriptor, undefined, { onSkipped: (e) => skipped.push(`${e.path} ${e.why}`) });
  assert.deepEqual(findings.map((f) => `${f.path}:${f.line} ${f.rule}`), ['/app/real.txt:1 github-token']);
  assert.deepEqual(skipped, ['/app/huge.bin size']);
});
