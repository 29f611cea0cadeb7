/**
 * `kiln scan` end to end on images kiln built: busybox with crafted package records (a dpkg
 * status file in one layer, an npm package in node_modules in another, os-release in a
 * third), scanned against schema-checked OSV fixtures in a directory and in a zip.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { multiPlatformBusybox, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { ContentStore } from '../../src/oci/store.js';
import type { ImageIndex } from '../../src/oci/types.js';
import { zipSync } from 'fflate';
import { advisory, fixedIn, writeOsvDir, writeOsvZip } from './osv-fixtures.js';
import type { OsvRecord } from '../../src/scan/osv.js';

const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';

function stanza(name: string, version: string, extra = ''): string {
  return `Package: ${name}\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 100\nMaintainer: Someone <someone@example.org>\nArchitecture: amd64\n${extra}Version: ${version}\nDescription: ${name}\n the ${name} package\n`;
}

const STATUS = [stanza('libc6', '2.36-9+deb12u4', 'Source: glibc\n'), stanza('zlib1g', '1:1.2.13.dfsg-1', 'Source: zlib\n'), stanza('tar', '1.34+dfsg-1.2+deb12u1')].join('\n');

const DOCKERFILE = [
  'FROM busybox:latest',
  'COPY os-release /etc/os-release',
  'COPY status /var/lib/dpkg/status',
  'COPY node_modules/ /app/node_modules/',
  '',
].join('\n');

const CVSS_CRITICAL = [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }];
const CVSS_MEDIUM = [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N' }];

const RECORDS: OsvRecord[] = [
  advisory('DSA-5001-1', [fixedIn('Debian:12', 'glibc', '2.36-9+deb12u7')], { aliases: ['CVE-2026-1001'], severity: CVSS_CRITICAL, summary: 'glibc: crafted overflow' }),
  advisory('DSA-5002-1', [fixedIn('Debian:12', 'glibc', '2.36-9+deb12u3')], { summary: 'fixed below the installed version' }),
  advisory('DSA-5003-1', [fixedIn('Debian:12', 'glibc', '2.36-9+deb12u9')], { withdrawn: '2026-01-05T00:00:00Z', summary: 'withdrawn' }),
  advisory('DEBIAN-CVE-2026-1004', [{ ...fixedIn('Debian:12', 'zlib', undefined), ecosystem_specific: { urgency: 'low' } }], { summary: 'zlib: not fixed yet' }),
  advisory('GHSA-35jh-r3h4-6jhm', [fixedIn('npm', 'lodash', '4.17.21', 'SEMVER')], { aliases: ['CVE-2021-23337'], severity: CVSS_MEDIUM, summary: 'lodash: command injection' }),
  advisory('GHSA-p6mc-m468-83gw', [fixedIn('npm', 'lodash', '4.17.19', 'SEMVER')], { summary: 'fixed below' }),
];

interface JsonReport {
  schemaVersion: number;
  image: { name: string; manifestDigest: string; os?: { id: string; versionId?: string } };
  db: { records: number; skipped: string[] };
  summary: Record<string, number>;
  findings: Array<{ id: string; aliases: string[]; severity: string; score?: number; installed: string; fixed?: string; package: { name: string; ecosystem: string; sourceName?: string }; layer: { index: number; diffId: string; path: string; createdBy?: string } }>;
}

describe('kiln scan on busybox images with crafted package records', () => {
  let ws: Workspace;
  let db = '';
  let zip = '';
  let diffIds: string[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    ws = await workspace();
    const ctx = await ws.context({
      Dockerfile: DOCKERFILE,
      'os-release': OS_RELEASE,
      status: STATUS,
      'node_modules/lodash/package.json': JSON.stringify({ name: 'lodash', version: '4.17.20', license: 'MIT' }),
    });
    const b = await runKiln(['build', '-t', 'app:1', ctx], { root: ws.root, timeoutMs: 300_000 });
    assert.equal(b.code, 0, b.stderr);
    const i = await runKiln(['inspect', 'app:1'], { root: ws.root });
    diffIds = (JSON.parse(i.stdout) as { config: { rootfs: { diff_ids: string[] } } }).config.rootfs.diff_ids;
    const t = await tempDir('kiln-scan-db-');
    cleanups.push(t.cleanup);
    db = await writeOsvDir(path.join(t.dir, 'osv'), RECORDS);
    zip = await writeOsvZip(path.join(t.dir, 'all.zip'), RECORDS);
  });
  after(async () => {
    for (const c of cleanups) await c();
    await ws?.cleanup();
  });

  const scan = (args: string[], cwd?: string) => runKiln(['scan', 'app:1', ...args], { root: ws.root, cwd });

  it('reports the advisories that affect the packages, with the fixed version and the layer that brought each in', async () => {
    const r = await scan(['--db', db, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as JsonReport;
    assert.equal(rep.schemaVersion, 1);
    assert.deepEqual(rep.image.os?.versionId, '12');
    assert.equal(rep.db.records, RECORDS.length);
    assert.deepEqual(
      rep.findings.map((f) => [f.package.name, f.id, f.severity, f.installed, f.fixed ?? null, f.layer.index, f.layer.path]),
      [
        ['libc6', 'DSA-5001-1', 'CRITICAL', '2.36-9+deb12u4', '2.36-9+deb12u7', 2, '/var/lib/dpkg/status'],
        ['lodash', 'GHSA-35jh-r3h4-6jhm', 'MEDIUM', '4.17.20', '4.17.21', 3, '/app/node_modules/lodash/package.json'],
        ['zlib1g', 'DEBIAN-CVE-2026-1004', 'LOW', '1:1.2.13.dfsg-1', null, 2, '/var/lib/dpkg/status'],
      ],
      'fixed below: none; withdrawn: none',
    );
    const [glibc, lodash] = rep.findings;
    assert.deepEqual(glibc.aliases, ['CVE-2026-1001']);
    assert.equal(glibc.score, 9.8);
    assert.equal(glibc.package.sourceName, 'glibc');
    assert.equal(glibc.layer.diffId, diffIds[2]);
    assert.match(glibc.layer.createdBy ?? '', /COPY status \/var\/lib\/dpkg\/status/);
    assert.equal(lodash.layer.diffId, diffIds[3]);
    assert.deepEqual(rep.summary, { total: 3, CRITICAL: 1, HIGH: 0, MEDIUM: 1, LOW: 1, UNKNOWN: 0 });
  });

  it('the table shows package, installed, advisory, severity, fixed version and layer, and a summary line; a zip database gives the same', async () => {
    const r = await scan(['--db', zip]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0], /^app:1 \(debian 12\)$/);
    assert.equal(lines[1], 'Total: 3 (CRITICAL: 1, HIGH: 0, MEDIUM: 1, LOW: 1, UNKNOWN: 0)');
    const header = lines.find((l) => l.startsWith('PACKAGE'))!;
    assert.match(header, /^PACKAGE\s+INSTALLED\s+ADVISORY\s+SEVERITY\s+FIXED\s+LAYER$/);
    const row = lines.find((l) => l.includes('DSA-5001-1'))!;
    assert.match(row, /^libc6 \(glibc\)\s+2\.36-9\+deb12u4\s+DSA-5001-1\s+CRITICAL 9\.8\s+2\.36-9\+deb12u7\s+/);
    assert.ok(row.includes(`${diffIds[2].slice(7, 19)} COPY status /var/lib/dpkg/status`), row);
    const dirTable = await scan(['--db', db]);
    assert.equal(dirTable.stdout, r.stdout, 'directory and zip databases give the same report');
  });

  it('--severity, --ignore-unfixed and --exit-code', async () => {
    const high = await scan(['--db', db, '--severity', 'CRITICAL,HIGH', '--exit-code', '3']);
    assert.equal(high.code, 3, high.stderr);
    assert.match(high.stdout, /Total: 1 \(CRITICAL: 1, HIGH: 0\)/);
    assert.doesNotMatch(high.stdout, /lodash/);
    const none = await scan(['--db', db, '--severity', 'HIGH', '--exit-code', '3']);
    assert.equal(none.code, 0, 'no finding at the asked severities: the exit code does not apply');
    assert.match(none.stdout, /no vulnerabilities found/);
    const fixedOnly = JSON.parse((await scan(['--db', db, '--ignore-unfixed', '--format', 'json'])).stdout) as JsonReport;
    assert.deepEqual(fixedOnly.findings.map((f) => f.id), ['DSA-5001-1', 'GHSA-35jh-r3h4-6jhm']);
    const bad = await scan(['--db', db, '--severity', 'SEVERE']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"SEVERE" is not a severity/);
  });

  it('./.trivyignore is read by default (ids and aliases, expired entries no longer ignore); --ignorefile names another', async () => {
    const t = await tempDir('kiln-scan-cwd-');
    cleanups.push(t.cleanup);
    await fs.writeFile(path.join(t.dir, '.trivyignore'), '# reviewed\nCVE-2026-1001\nGHSA-35jh-r3h4-6jhm exp:2020-01-01\n');
    const r = await scan(['--db', db, '--format', 'json'], t.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as JsonReport).findings.map((f) => f.id), ['GHSA-35jh-r3h4-6jhm', 'DEBIAN-CVE-2026-1004']);
    const other = path.join(t.dir, 'ignore-lodash');
    await fs.writeFile(other, 'GHSA-35jh-r3h4-6jhm exp:2999-01-01\n');
    const r2 = await scan(['--db', db, '--format', 'json', '--ignorefile', other], t.dir);
    assert.deepEqual((JSON.parse(r2.stdout) as JsonReport).findings.map((f) => f.id), ['DSA-5001-1', 'DEBIAN-CVE-2026-1004']);
  });

  it('SARIF 2.1.0: version, runs[].tool.driver with one rule per advisory, results with levels and the package path as location; -o writes a file', async () => {
    const t = await tempDir('kiln-scan-out-');
    cleanups.push(t.cleanup);
    const out = path.join(t.dir, 'scan.sarif');
    const r = await scan(['--db', db, '--format', 'sarif', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const log = JSON.parse(await fs.readFile(out, 'utf8')) as {
      version: string;
      $schema: string;
      runs: Array<{ tool: { driver: { name: string; version: string; rules: Array<{ id: string; shortDescription: { text: string }; properties: Record<string, unknown> }> } }; results: Array<{ ruleId: string; ruleIndex: number; level: string; message: { text: string }; locations: Array<{ physicalLocation: { artifactLocation: { uri: string } } }> }> }>;
    };
    assert.equal(log.version, '2.1.0');
    assert.match(log.$schema, /sarif-2\.1\.0/);
    assert.equal(log.runs.length, 1);
    const run = log.runs[0];
    assert.equal(run.tool.driver.name, 'kiln');
    assert.deepEqual(run.tool.driver.rules.map((x) => x.id), ['DSA-5001-1', 'GHSA-35jh-r3h4-6jhm', 'DEBIAN-CVE-2026-1004']);
    assert.equal(run.tool.driver.rules[0].properties['security-severity'], '9.8');
    assert.deepEqual(run.results.map((x) => [x.ruleId, run.tool.driver.rules[x.ruleIndex].id, x.level, x.locations[0].physicalLocation.artifactLocation.uri]), [
      ['DSA-5001-1', 'DSA-5001-1', 'error', 'var/lib/dpkg/status'],
      ['GHSA-35jh-r3h4-6jhm', 'GHSA-35jh-r3h4-6jhm', 'warning', 'app/node_modules/lodash/package.json'],
      ['DEBIAN-CVE-2026-1004', 'DEBIAN-CVE-2026-1004', 'note', 'var/lib/dpkg/status'],
    ]);
    assert.match(run.results[0].message.text, /Fixed Version: 2\.36-9\+deb12u7/);
  });

  it('--secrets: the secret scan of the image (a .env file a later layer deleted still ships), in table, json and sarif, with --exit-code', async () => {
    const ctx = await ws.context({
      Dockerfile: 'FROM busybox:latest\nCOPY .env /app/.env\nRUN rm /app/.env\n',
      '.env': 'GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789\n',
    });
    const b = await runKiln(['build', '-t', 'secret:1', ctx], { root: ws.root, timeoutMs: 300_000 });
    assert.equal(b.code, 0, b.stderr);
    const table = await runKiln(['scan', '--secrets', 'secret:1', '--exit-code', '5'], { root: ws.root });
    assert.equal(table.code, 5, table.stderr);
    assert.match(table.stdout, /^secret:1 \(secrets\)\nTotal: 1 \(CRITICAL: 0, HIGH: 1, MEDIUM: 0, LOW: 0\)/);
    assert.match(table.stdout, /layer 1 \([0-9a-f]{12}\) \/app\/\.env:1 \(deleted later\)/);
    assert.doesNotMatch(table.stdout, /ghp_abcdefghijklmnopqrstuvwxyz0123456789/, 'the secret is never printed whole');
    const json = await runKiln(['scan', '--secrets', 'secret:1', '--format', 'json'], { root: ws.root });
    assert.equal(json.code, 0, 'without --exit-code a finding does not fail the command');
    const doc = JSON.parse(json.stdout) as { secrets: Array<{ path: string; deleted?: boolean; layer: number }> };
    assert.deepEqual(doc.secrets.map((s) => [s.path, s.layer, s.deleted]), [['/app/.env', 1, true]]);
    const sarif = JSON.parse((await runKiln(['scan', '--secrets', 'secret:1', '--format', 'sarif'], { root: ws.root })).stdout) as { version: string; runs: Array<{ tool: { driver: { name: string; rules: Array<{ id: string }> } }; results: Array<{ ruleId: string; level: string; locations: Array<{ physicalLocation: { artifactLocation: { uri: string } } }> }> }> };
    assert.equal(sarif.version, '2.1.0');
    assert.equal(sarif.runs[0].tool.driver.name, 'kiln secrets');
    assert.deepEqual(sarif.runs[0].results.map((r) => [r.ruleId, r.level, r.locations[0].physicalLocation.artifactLocation.uri]), [[sarif.runs[0].tool.driver.rules[0].id, 'error', 'app/.env']]);
    // both scans at once: two runs
    const both = JSON.parse((await scan(['--db', db, '--secrets', '--format', 'sarif'])).stdout) as { runs: unknown[] };
    assert.equal(both.runs.length, 2);
  });

  it('Alpine (by origin, Alpine:v<major.minor>), PyPI (normalised names) and Maven (group:artifact, from a jar) packages of a built image', async () => {
    const ctx = await ws.context({
      Dockerfile: 'FROM busybox:latest\nCOPY os-release /etc/os-release\nCOPY installed /lib/apk/db/installed\nCOPY site/ /usr/lib/python3.11/site-packages/\nCOPY app.jar /app/app.jar\n',
      'os-release': 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n',
      installed: 'C:Q1abc=\nP:libcrypto3\nV:3.1.4-r4\nA:x86_64\no:openssl\nL:Apache-2.0\n\nC:Q1def=\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n\n',
      'site/Foo_Bar-1.9.dist-info/METADATA': 'Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.9\n',
    });
    const pom = 'groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n';
    await fs.writeFile(path.join(ctx, 'app.jar'), zipSync({ 'META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties': Buffer.from(pom) }));
    const b = await runKiln(['build', '-t', 'mixed:1', ctx], { root: ws.root, timeoutMs: 300_000 });
    assert.equal(b.code, 0, b.stderr);
    const t = await tempDir('kiln-scan-mixed-');
    cleanups.push(t.cleanup);
    const mixedDb = await writeOsvDir(t.dir, [
      advisory('ALPINE-CVE-2026-0001', [fixedIn('Alpine:v3.19', 'openssl', '3.1.4-r5')]),
      advisory('ALPINE-CVE-2026-0002', [fixedIn('Alpine:v3.18', 'openssl', '3.1.4-r9')]),
      advisory('ALPINE-CVE-2026-0003', [fixedIn('Alpine:v3.19', 'busybox', '1.36.1-r2')]),
      advisory('PYSEC-2026-1', [fixedIn('PyPI', 'foo-bar', '2.0')]),
      advisory('GHSA-jfh8-c2jp-5v3q', [fixedIn('Maven', 'org.apache.logging.log4j:log4j-core', '2.15.0', 'ECOSYSTEM', '2.0-beta9')], { aliases: ['CVE-2021-44228'] }),
    ]);
    const r = await runKiln(['scan', 'mixed:1', '--db', mixedDb, '--format', 'json'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as JsonReport;
    assert.deepEqual(rep.findings.map((f) => [f.package.ecosystem, f.package.name, f.id, f.installed, f.fixed, f.layer.path]).sort(), [
      ['apk', 'libcrypto3', 'ALPINE-CVE-2026-0001', '3.1.4-r4', '3.1.4-r5', '/lib/apk/db/installed'],
      ['maven', 'org.apache.logging.log4j:log4j-core', 'GHSA-jfh8-c2jp-5v3q', '2.14.1', '2.15.0', '/app/app.jar'],
      ['pypi', 'Foo_Bar', 'PYSEC-2026-1', '1.9', '2.0', '/usr/lib/python3.11/site-packages/Foo_Bar-1.9.dist-info/METADATA'],
    ]);
  });

  it('--platform scans that platform of a multi-platform image', async () => {
    const index = await multiPlatformBusybox(ws.root, 'multi:1');
    const store = await ContentStore.open(ws.root);
    const arm64 = (await store.readJSON<ImageIndex>(index.digest)).manifests.find((m) => m.platform?.architecture === 'arm64')!;
    const r = await runKiln(['scan', 'multi:1', '--platform', 'linux/arm64', '--db', db, '--format', 'json'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as JsonReport & { image: { platform?: string } };
    assert.equal(rep.image.manifestDigest, arm64.digest);
    assert.equal(rep.image.platform, 'linux/arm64');
    assert.deepEqual(rep.findings, []);
  });

  it('a database with a malformed file warns and names it; a missing database and a missing --db are clear errors', async () => {
    const t = await tempDir('kiln-scan-baddb-');
    cleanups.push(t.cleanup);
    const bad = await writeOsvDir(path.join(t.dir, 'osv'), RECORDS);
    await fs.writeFile(path.join(bad, 'truncated.json'), '{"id": "DSA-1');
    const r = await scan(['--db', bad, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: advisory database .*skipped 1 file.*\n.*truncated\.json: not valid JSON/);
    assert.equal((JSON.parse(r.stdout) as JsonReport).findings.length, 3);
    const missing = await scan(['--db', path.join(t.dir, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: advisory database .*nope does not exist/);
    const noDb = await scan([]);
    assert.equal(noDb.code, 1);
    assert.match(noDb.stderr, /needs an advisory database \(--db DIR\|ZIP\) or --secrets/);
    const noImage = await runKiln(['scan', 'nope:1', '--db', db], { root: ws.root });
    assert.equal(noImage.code, 1);
    assert.match(noImage.stderr, /^error: image nope:1 not found in the store/);
    const badFormat = await scan(['--db', db, '--format', 'xml']);
    assert.equal(badFormat.code, 1);
    assert.match(badFormat.stderr, /"xml" is not a format/);
    const badExit = await scan(['--db', db, '--exit-code', 'x']);
    assert.match(badExit.stderr, /"x" is not an exit code/);
  });
});
