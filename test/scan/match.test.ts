import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Catalog, CatalogPackage, Ecosystem } from '../../src/sbom/types.js';
import { loadAdvisoryDb, type OsvRecord } from '../../src/scan/osv.js';
import { matchCatalog, inRange } from '../../src/scan/match.js';
import { parseIgnoreFile, readIgnoreFile } from '../../src/scan/ignore.js';
import { cvssBaseScore, advisorySeverity } from '../../src/scan/severity.js';
import { compareVersions } from '../../src/scan/versions/index.js';
import { KilnError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';
import { advisory, fixedIn, osvSchemaErrors, writeOsvDir, writeOsvZip } from './osv-fixtures.js';

const D0 = 'sha256:' + '0'.repeat(64);
const D1 = 'sha256:' + '1'.repeat(64);

function pkg(ecosystem: Ecosystem, name: string, version: string, extra: Partial<CatalogPackage> = {}): CatalogPackage {
  return { name, version, ecosystem, purl: `pkg:${ecosystem}/${name}@${version}`, licenses: [], locations: [{ layer: 0, diffId: D0, path: '/var/lib/dpkg/status' }], ...extra };
}

function catalog(packages: CatalogPackage[], os: Catalog['os'] = { id: 'debian', versionId: '12', versionCodename: 'bookworm' }): Catalog {
  return { manifestDigest: D1, diffIds: [D0, D1], os, packages };
}

async function dbOf(t: { after(fn: () => Promise<void>): void }, records: OsvRecord[]) {
  const dir = await tempDir('kiln-osv-');
  t.after(dir.cleanup);
  await writeOsvDir(dir.dir, records);
  return loadAdvisoryDb(dir.dir);
}

const ids = (fs: Array<{ id: string }>): string[] => fs.map((f) => f.id);

test('Debian advisories match the source package and version; the fixed version is the lowest above the installed', async (t) => {
  const libssl = pkg('deb', 'libssl3', '3.0.11-1~deb12u2+b1', { sourceName: 'openssl', sourceVersion: '3.0.11-1~deb12u2' });
  const tar = pkg('deb', 'tar', '1.34+dfsg-1.2+deb12u1');
  const db = await dbOf(t, [
    advisory('DSA-0001-1', [fixedIn('Debian:12', 'openssl', '3.0.13-1~deb12u1')]),
    advisory('DSA-0002-1', [fixedIn('Debian:12', 'openssl', '3.0.11-1~deb12u2')], { summary: 'fixed exactly at the installed source version' }),
    advisory('DSA-0003-1', [fixedIn('Debian:11', 'openssl', '9.9')], { summary: 'another release' }),
    advisory('DSA-0004-1', [fixedIn('Debian:12', 'libssl3', '9.9')], { summary: 'a binary name: Debian advisories name source packages' }),
    advisory('DEBIAN-CVE-2026-0005', [
      {
        package: { ecosystem: 'Debian:12', name: 'tar' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.34+dfsg-1.2+deb12u2' }, { introduced: '1.35' }, { fixed: '1.35+dfsg-2' }] }],
      },
      { package: { ecosystem: 'Debian:12', name: 'tar' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '1.30' }, { fixed: '1.34+dfsg-1.2+deb12u3' }] }] },
    ]),
  ]);
  const found = matchCatalog(catalog([libssl, tar]), db);
  assert.deepEqual(ids(found), ['DSA-0001-1', 'DEBIAN-CVE-2026-0005']);
  const [ssl, t1] = found;
  assert.equal(ssl.package.name, 'libssl3');
  assert.equal(ssl.installed, '3.0.11-1~deb12u2', 'the source version is what the advisory talks about');
  assert.equal(ssl.fixed, '3.0.13-1~deb12u1');
  assert.equal(ssl.ecosystem, 'Debian:12');
  assert.equal(ssl.matchedName, 'openssl');
  assert.deepEqual(ssl.layer, libssl.locations[0]);
  assert.equal(t1.fixed, '1.34+dfsg-1.2+deb12u2', 'the smallest fixed above the installed, over every range');
  // without a source version, the binary's version is the installed one
  const noSrcVersion = pkg('deb', 'libssl3', '3.0.14-1~deb12u1', { sourceName: 'openssl' });
  assert.deepEqual(ids(matchCatalog(catalog([noSrcVersion]), db)), []);
  // no os-release: the release is unknown, only release-less advisories could match
  assert.deepEqual(ids(matchCatalog({ ...catalog([libssl]), os: undefined }, db)), []);
});

test('every range kind: introduced/fixed, last_affected, limit, versions lists, SEMVER; GIT ranges are not versions', () => {
  const cmp = (a: string, b: string): number => compareVersions('npm', a, b);
  const r = (events: Array<Record<string, string>>) => ({ type: 'ECOSYSTEM', events });
  assert.ok(inRange('1.0.0', r([{ introduced: '0' }, { fixed: '1.0.1' }]), cmp));
  assert.ok(!inRange('1.0.1', r([{ introduced: '0' }, { fixed: '1.0.1' }]), cmp));
  assert.ok(!inRange('0.9.0', r([{ introduced: '1.0.0' }, { fixed: '1.0.1' }]), cmp));
  assert.ok(inRange('1.2.0', r([{ introduced: '1.0.0' }, { last_affected: '1.2.0' }]), cmp), 'last_affected is affected');
  assert.ok(!inRange('1.2.1', r([{ introduced: '1.0.0' }, { last_affected: '1.2.0' }]), cmp));
  assert.ok(inRange('1.5.0', r([{ introduced: '0' }, { limit: '2.0.0' }]), cmp));
  assert.ok(!inRange('2.5.0', r([{ introduced: '0' }, { limit: '2.0.0' }]), cmp), 'at or above the limit: outside');
  assert.ok(inRange('9.0.0', r([{ introduced: '0' }, { limit: '*' }]), cmp));
  const two = r([{ introduced: '1.0.0' }, { fixed: '1.5.0' }, { introduced: '2.0.0' }, { fixed: '2.5.0' }]);
  assert.deepEqual(['0.1.0', '1.0.0', '1.4.9', '1.5.0', '1.9.0', '2.0.0', '2.4.0', '2.5.0'].map((v) => inRange(v, two, cmp)), [false, true, true, false, false, true, true, false]);
  assert.ok(inRange('5.0.0', r([{ introduced: '0' }]), cmp), 'never fixed');
});

test('npm, PyPI (normalised names), Go, Maven (group:artifact) and Alpine (origin) packages', async (t) => {
  const db = await dbOf(t, [
    advisory('GHSA-aaaa-bbbb-cccc', [fixedIn('npm', 'lodash', '4.17.21', 'SEMVER')], { aliases: ['CVE-2021-23337'] }),
    advisory('GHSA-dddd-eeee-ffff', [{ package: { ecosystem: 'npm', name: 'minimist' }, versions: ['1.2.5', '1.2.0'] }]),
    advisory('PYSEC-2026-1', [fixedIn('PyPI', 'Foo.Bar', '2.0.0')]),
    advisory('GO-2026-0001', [fixedIn('Go', 'golang.org/x/net', '0.17.0', 'SEMVER')]),
    advisory('GHSA-gggg-hhhh-jjjj', [fixedIn('Maven', 'org.apache.logging.log4j:log4j-core', '2.17.1', 'ECOSYSTEM', '2.0-beta9')]),
    advisory('ALPINE-CVE-2026-0001', [fixedIn('Alpine:v3.19', 'openssl', '3.1.4-r5')]),
    advisory('OSV-2026-GIT', [{ package: { ecosystem: 'npm', name: 'express' }, ranges: [{ type: 'GIT', repo: 'https://example.invalid/x.git', events: [{ introduced: '0' }, { fixed: 'a'.repeat(40) }] }] }]),
  ]);
  const packages = [
    pkg('npm', 'lodash', '4.17.20', { locations: [{ layer: 1, diffId: D1, path: '/app/node_modules/lodash/package.json' }] }),
    pkg('npm', 'minimist', '1.2.5'),
    pkg('npm', 'express', '4.0.0'),
    pkg('pypi', 'foo_bar', '1.9'),
    pkg('golang', 'golang.org/x/net', 'v0.15.0'),
    pkg('maven', 'org.apache.logging.log4j:log4j-core', '2.14.1', { groupId: 'org.apache.logging.log4j' }),
    pkg('apk', 'libcrypto3', '3.1.4-r4', { sourceName: 'openssl' }),
  ];
  const alpine = matchCatalog(catalog(packages.slice(6), { id: 'alpine', versionId: '3.19.1' }), db);
  assert.deepEqual(ids(alpine), ['ALPINE-CVE-2026-0001']);
  assert.equal(alpine[0].ecosystem, 'Alpine:v3.19');
  assert.equal(alpine[0].fixed, '3.1.4-r5');
  const found = matchCatalog(catalog(packages.slice(0, 6)), db);
  assert.deepEqual(ids(found).sort(), ['GHSA-aaaa-bbbb-cccc', 'GHSA-dddd-eeee-ffff', 'GHSA-gggg-hhhh-jjjj', 'GO-2026-0001', 'PYSEC-2026-1']);
  const lodash = found.find((f) => f.id === 'GHSA-aaaa-bbbb-cccc')!;
  assert.deepEqual(lodash.aliases, ['CVE-2021-23337']);
  assert.equal(lodash.layer.layer, 1);
  assert.equal(found.find((f) => f.id === 'GHSA-dddd-eeee-ffff')!.fixed, undefined, 'a versions list gives no fix');
  assert.equal(found.find((f) => f.id === 'GO-2026-0001')!.fixed, '0.17.0');
});

test('withdrawn advisories are skipped; one finding per (advisory, package, place)', async (t) => {
  const two = pkg('npm', 'lodash', '4.17.20', {
    locations: [
      { layer: 0, diffId: D0, path: '/a/node_modules/lodash/package.json' },
      { layer: 1, diffId: D1, path: '/b/node_modules/lodash/package.json' },
      { layer: 1, diffId: D1, path: '/a/node_modules/lodash/package.json' },
    ],
  });
  const db = await dbOf(t, [
    advisory('GHSA-aaaa-bbbb-cccc', [fixedIn('npm', 'lodash', '4.17.21')]),
    advisory('GHSA-wwww-wwww-wwww', [fixedIn('npm', 'lodash', '4.17.21')], { withdrawn: '2026-01-02T00:00:00Z' }),
  ]);
  const found = matchCatalog(catalog([two]), db);
  assert.deepEqual(found.map((f) => `${f.id} ${f.layer.layer} ${f.layer.path}`), ['GHSA-aaaa-bbbb-cccc 0 /a/node_modules/lodash/package.json', 'GHSA-aaaa-bbbb-cccc 1 /b/node_modules/lodash/package.json']);
});

test('severity from CVSS v3/v4 vectors, else the database word, else UNKNOWN; --severity and --ignore-unfixed filter', async (t) => {
  // FIRST's examples: CVSS v3.1 specification examples and the v4.0 calculator
  assert.equal(cvssBaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
  assert.equal(cvssBaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N'), 6.1);
  assert.equal(cvssBaseScore('CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H'), 7.8);
  assert.equal(cvssBaseScore('CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N'), 9.3);
  assert.equal(cvssBaseScore('not a vector'), undefined);
  const v3 = (score: string) => [{ type: 'CVSS_V3', score }];
  const p = pkg('npm', 'left-pad', '1.0.0');
  const records = [
    advisory('GHSA-crit-crit-crit', [fixedIn('npm', 'left-pad', '1.0.1')], { severity: v3('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H') }),
    advisory('GHSA-high-high-high', [fixedIn('npm', 'left-pad', '1.0.2')], { severity: v3('CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H') }),
    advisory('GHSA-v4v4-v4v4-v4v4', [{ ...fixedIn('npm', 'left-pad', '1.0.3'), severity: [{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' }] }]),
    advisory('GHSA-word-word-word', [fixedIn('npm', 'left-pad', '1.0.4')], { database_specific: { severity: 'MODERATE' } }),
    advisory('DEBIAN-CVE-2026-1', [{ ...fixedIn('npm', 'left-pad', undefined), ecosystem_specific: { urgency: 'low' } }]),
    advisory('GHSA-none-none-none', [fixedIn('npm', 'left-pad', undefined)]),
  ];
  const db = await dbOf(t, records);
  const all = matchCatalog(catalog([p]), db);
  assert.deepEqual(all.map((f) => `${f.id} ${f.severity} ${f.score ?? '-'}`), [
    'GHSA-crit-crit-crit CRITICAL 9.8',
    'GHSA-v4v4-v4v4-v4v4 CRITICAL 9.3',
    'GHSA-high-high-high HIGH 7.8',
    'GHSA-word-word-word MEDIUM -',
    'DEBIAN-CVE-2026-1 LOW -',
    'GHSA-none-none-none UNKNOWN -',
  ]);
  assert.deepEqual(ids(matchCatalog(catalog([p]), db, { severities: ['HIGH', 'CRITICAL'] })), ['GHSA-crit-crit-crit', 'GHSA-v4v4-v4v4-v4v4', 'GHSA-high-high-high']);
  assert.deepEqual(ids(matchCatalog(catalog([p]), db, { ignoreUnfixed: true })), ['GHSA-crit-crit-crit', 'GHSA-v4v4-v4v4-v4v4', 'GHSA-high-high-high', 'GHSA-word-word-word']);
  assert.equal(advisorySeverity(advisory('x_1', []), undefined).severity, 'UNKNOWN');
});

test('.trivyignore: ids and aliases, comments, exp: dates (an expired entry no longer ignores)', async (t) => {
  const tmp = await tempDir('kiln-ignore-');
  t.after(tmp.cleanup);
  const file = path.join(tmp.dir, '.trivyignore');
  await fs.writeFile(file, ['# accepted risks', 'GHSA-aaaa-bbbb-cccc', '', 'CVE-2026-2222   # by alias', 'GHSA-old0-old0-old0 exp:2026-06-30', 'GHSA-new0-new0-new0 exp:2027-01-01', ''].join('\n'));
  const list = await readIgnoreFile(file);
  assert.deepEqual(list.entries.map((e) => [e.id, e.expires]), [['GHSA-aaaa-bbbb-cccc', undefined], ['CVE-2026-2222', undefined], ['GHSA-old0-old0-old0', '2026-06-30'], ['GHSA-new0-new0-new0', '2027-01-01']]);
  const p = pkg('npm', 'left-pad', '1.0.0');
  const db = await dbOf(t, [
    advisory('GHSA-aaaa-bbbb-cccc', [fixedIn('npm', 'left-pad', '1.0.1')]),
    advisory('GHSA-alia-alia-alia', [fixedIn('npm', 'left-pad', '1.0.1')], { aliases: ['CVE-2026-2222'] }),
    advisory('GHSA-old0-old0-old0', [fixedIn('npm', 'left-pad', '1.0.1')]),
    advisory('GHSA-new0-new0-new0', [fixedIn('npm', 'left-pad', '1.0.1')]),
    advisory('GHSA-kept-kept-kept', [fixedIn('npm', 'left-pad', '1.0.1')]),
  ]);
  const now = Date.UTC(2026, 11, 2);
  assert.deepEqual(ids(matchCatalog(catalog([p]), db, { ignore: list, now })), ['GHSA-kept-kept-kept', 'GHSA-old0-old0-old0']);
  // before the expiry date, the dated entry still ignores; from 00:00 UTC that day it does not
  assert.deepEqual(ids(matchCatalog(catalog([p]), db, { ignore: list, now: Date.UTC(2026, 5, 29, 23, 59) })), ['GHSA-kept-kept-kept']);
  assert.deepEqual(ids(matchCatalog(catalog([p]), db, { ignore: list, now: Date.UTC(2026, 5, 30) })), ['GHSA-kept-kept-kept', 'GHSA-old0-old0-old0']);
  assert.throws(() => parseIgnoreFile('CVE-1 exp:2026-02-30\n', 'x'), (e: unknown) => e instanceof KilnError && /x:1/.test(e.message));
  await assert.rejects(readIgnoreFile(path.join(tmp.dir, 'missing')), (e: unknown) => e instanceof KilnError && e.code === 'not-found');
});

test('loadAdvisoryDb: directory trees and zips; a malformed file is skipped with a warning naming it; unusable paths are errors', async (t) => {
  const tmp = await tempDir('kiln-osvdb-');
  t.after(tmp.cleanup);
  const records = [advisory('GHSA-aaaa-bbbb-cccc', [fixedIn('npm', 'lodash', '4.17.21')]), advisory('DSA-0001-1', [fixedIn('Debian:12', 'openssl', '3.0.13-1~deb12u1')])];
  const dir = await writeOsvDir(path.join(tmp.dir, 'tree'), records);
  await fs.mkdir(path.join(dir, 'deep', 'er'), { recursive: true });
  await fs.writeFile(path.join(dir, 'deep', 'er', 'broken.json'), '{"id": ');
  await fs.writeFile(path.join(dir, 'deep', 'not-osv.json'), '{"hello": "world"}');
  await fs.writeFile(path.join(dir, 'README.md'), 'not json, not read');
  const db = await loadAdvisoryDb(dir);
  assert.equal(db.records.length, 2);
  assert.deepEqual(db.ecosystems(), ['Debian:12', 'npm']);
  assert.equal(db.warnings.length, 2);
  assert.match(db.warnings.join('\n'), /deep\/er\/broken\.json: not valid JSON/);
  assert.match(db.warnings.join('\n'), /deep\/not-osv\.json: not an OSV record: no "id"/);
  assert.equal(db.lookup('npm', 'lodash').length, 1);

  const zip = await writeOsvZip(path.join(tmp.dir, 'all.zip'), records);
  const zdb = await loadAdvisoryDb(zip);
  assert.equal(zdb.records.length, 2);
  assert.equal(zdb.lookup('Debian:12', 'openssl')[0].record.id, 'DSA-0001-1');

  await assert.rejects(loadAdvisoryDb(path.join(tmp.dir, 'nope')), (e: unknown) => e instanceof KilnError && e.code === 'not-found' && /does not exist/.test(e.message));
  await fs.writeFile(path.join(tmp.dir, 'junk.zip'), 'this is not a zip');
  await assert.rejects(loadAdvisoryDb(path.join(tmp.dir, 'junk.zip')), (e: unknown) => e instanceof KilnError && /neither a directory nor a readable zip/.test(e.message));
  const empty = path.join(tmp.dir, 'empty');
  await fs.mkdir(empty);
  await fs.writeFile(path.join(empty, 'bad.json'), '[]');
  await assert.rejects(loadAdvisoryDb(empty), (e: unknown) => e instanceof KilnError && /holds no OSV record.*bad\.json/.test(e.message));
});

test('the fixture builder only writes schema-valid records (the schema check itself rejects bad ones)', () => {
  assert.deepEqual(osvSchemaErrors(advisory('GHSA-aaaa-bbbb-cccc', [fixedIn('npm', 'x', '1.0.0')])), []);
  assert.notDeepEqual(osvSchemaErrors({ id: 'GHSA-x', modified: 'yesterday' }), []);
  assert.notDeepEqual(osvSchemaErrors(advisory('GHSA-aaaa-bbbb-cccc', [{ package: { ecosystem: 'NotAnEcosystem', name: 'x' } }])), []);
  assert.notDeepEqual(osvSchemaErrors(advisory('GHSA-aaaa-bbbb-cccc', [{ package: { ecosystem: 'npm', name: 'x' }, ranges: [{ type: 'SEMVER', events: [{ fixed: '1' }] }] }])), [], 'events need an introduced');
});
