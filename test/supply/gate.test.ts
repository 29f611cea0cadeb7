/**
 * The build's gate flags without the whole pipeline: the secret gate (its exit code, the
 * redacted table, nothing pushed), the ignore file and --scan-exit-code 0 letting an image
 * through, and the flag errors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { arm64Workspace, haveTool, kilnBin, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { generateKeyPair } from '../../src/sign/keys.js';
import { haveRegistry, startRegistry, type Registry } from '../registry/harness.js';
import { registryTags } from '../registry/push-fixtures.js';

describe('kiln build gate flags', { skip: haveRegistry() ? false : 'needs docker-registry' }, () => {
  let reg: Registry;
  let ws: Workspace;
  let dir: string;
  let cleanupDir: () => Promise<void>;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  let ctx: string;

  before(async () => {
    reg = await startRegistry();
    ws = await workspace();
    ({ dir, cleanup: cleanupDir } = await tempDir('kiln-gate-'));
    // the secret lives in a layer; a later layer deletes it, and it still ships
    ctx = await ws.context({
      Dockerfile: 'FROM busybox\nCOPY .env /app/.env\nRUN rm /app/.env\n',
      '.env': `DB_HOST=db\nDB_PASSWORD=${password}\n`,
    });
  });
  after(async () => {
    await reg?.stop();
    await ws?.cleanup();
    await cleanupDir?.();
  });

  test('--scan-secrets: a secret in a deleted file fails the gate with --scan-exit-code, redacted, and nothing is pushed', async () => {
    const ref = `${reg.host}/gate/secret:1`;
    const b = await runKiln(['build', '--progress', 'plain', '--push', '--scan-secrets', '--scan-exit-code', '4', '-t', ref, ctx], { root: ws.root });
    assert.equal(b.code, 4, b.stderr);
    assert.match(b.stderr, /failed the gate: 1 secret; nothing was pushed/);
    assert.match(b.stderr, /linux\/amd64\s+HIGH\s+env-file\s+DB_PASSWORD=pw-\w\*+\s+-\s+-\s+layer 1 \(\w{12}\) \/app\/\.env:2 \(deleted later\)/);
    assert.ok(!b.stderr.includes(password) && !b.stdout.includes(password));
    assert.deepEqual(await registryTags(reg.url, 'gate/secret'), []);
  });

  test('--scan-ignorefile accepts a secret rule; --scan-exit-code 0 reports and pushes', async () => {
    const ignore = path.join(dir, '.trivyignore');
    await fs.writeFile(ignore, '# accepted for this test\nenv-file\n');
    const ref = `${reg.host}/gate/ignored:1`;
    const b = await runKiln(['build', '--progress', 'plain', '--push', '--scan-secrets', '--scan-ignorefile', ignore, '-t', ref, ctx], { root: ws.root });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /gate: 1 platform scanned, nothing at the severities that fail/);
    assert.deepEqual(await registryTags(reg.url, 'gate/ignored'), ['1']);

    const let0 = `${reg.host}/gate/let-through:1`;
    const c = await runKiln(['build', '--progress', 'plain', '--push', '--scan-secrets', '--scan-exit-code', '0', '-t', let0, ctx], { root: ws.root });
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /gate: 1 finding\(s\), let through \(--scan-exit-code 0\)/);
    assert.match(c.stderr, /env-file\s+DB_PASSWORD=pw-\w\*+/);
    assert.ok(!c.stderr.includes(password));
    assert.deepEqual(await registryTags(reg.url, 'gate/let-through'), ['1']);

    // a severity the secret does not have lets it through too
    const crit = await runKiln(['build', '--progress', 'quiet', '--scan-secrets', '--scan-severity', 'critical', ctx], { root: ws.root });
    assert.equal(crit.code, 0, crit.stderr);
  });

  test('every platform of an index is scanned: a secret in both fails the gate for both, and nothing is pushed', async (t) => {
    let multi: Workspace;
    try {
      multi = await arm64Workspace();
    } catch (e) {
      t.skip(`no arm64 busybox here: ${(e as Error).message.slice(0, 200)}`);
      return;
    }
    t.after(() => multi.cleanup());
    const mctx = await multi.context({ Dockerfile: 'FROM busybox\nCOPY .env /app/.env\n', '.env': `API_TOKEN=${password}\n` });
    const ref = `${reg.host}/gate/multi:1`;
    const b = await runKiln(['build', '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64', '--push', '--scan-secrets', '-t', ref, mctx], { root: multi.root });
    assert.equal(b.code, 1, b.stderr);
    assert.match(b.stderr, /failed the gate: 2 secrets; nothing was pushed/);
    assert.match(b.stderr, /^linux\/amd64\s+HIGH\s+env-file\s+API_TOKEN=/m);
    assert.match(b.stderr, /^linux\/arm64\s+HIGH\s+env-file\s+API_TOKEN=/m);
    assert.deepEqual(await registryTags(reg.url, 'gate/multi'), []);
  });

  test('without KILN_PASSWORD the key password is asked at the terminal, not echoed, before the build', { skip: haveTool('script') ? false : 'needs script (util-linux) for a terminal' }, async () => {
    const keyFile = path.join(dir, 'prompt.key');
    await fs.writeFile(keyFile, generateKeyPair('the right one').privatePem, { mode: 0o600 });
    const typed = `typed-${randomBytes(6).toString('hex')}`;
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.KILN_PASSWORD;
    delete env.COSIGN_PASSWORD;
    const command = [process.execPath, kilnBin, '--root', ws.root, 'build', '--progress', 'plain', '--push', '--sign-key', keyFile, '-t', `${reg.host}/gate/prompt:1`, ctx].map((a) => `'${a}'`).join(' ');
    // script(1) gives kiln a terminal; the password is typed once the prompt shows
    const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
      const p = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let text = '';
      let sent = false;
      const onData = (c: Buffer) => {
        text += String(c);
        if (!sent && text.includes('Enter password for private key')) {
          sent = true;
          p.stdin.write(`${typed}\r`);
        }
      };
      p.stdout.on('data', onData);
      p.stderr.on('data', onData);
      // never left running: a prompt that does not come ends the test
      const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
      p.on('error', reject);
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, text });
      });
    });
    assert.notEqual(out.code, 0, out.text);
    assert.match(out.text, /Enter password for private key .*prompt\.key: /);
    assert.match(out.text, /wrong password for .*prompt\.key/);
    assert.ok(!out.text.includes(typed), out.text);
    assert.doesNotMatch(out.text, /writing image/);
    assert.deepEqual(await registryTags(reg.url, 'gate/prompt'), []);
  });

  test('gate flags that cannot apply are errors before the build', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--sign-key', path.join(dir, 'missing.key')], /--sign-key signs what is pushed, and this build pushes nothing/],
      [['--push', '-t', `${reg.host}/gate/x:1`, '--sign-key', path.join(dir, 'missing.key')], /cannot read the signing key .*missing\.key: no such file/],
      [['--scan-severity', 'HIGH'], /--scan-severity needs a scan to apply to/],
      [['--scan-secrets', '--scan-severity', 'SEVERE'], /unknown severity "SEVERE"/],
      [['--scan-secrets', '--scan-exit-code', 'x'], /--scan-exit-code must be a whole number/],
      [['--scan-db', path.join(dir, 'no-db')], /no-db/],
      [['--scan-secrets', '-o', `type=registry,name=${reg.host}/gate/x:1`], /the gate pushes with --push only/],
    ];
    for (const [flags, message] of cases) {
      const b = await runKiln(['build', '--progress', 'plain', ...flags, ctx], { root: ws.root });
      assert.notEqual(b.code, 0, flags.join(' '));
      assert.match(b.stderr, message, flags.join(' '));
      assert.doesNotMatch(b.stderr, /writing image/, flags.join(' '));
    }
  });
});
