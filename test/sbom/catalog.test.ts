import { test } from 'node:test';
import assert from 'node:assert/strict';
import { catalogImage } from '../../src/sbom/catalog.js';
import { craftImage, dpkgStanza, rawTar, tempDir } from './util.js';

const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';
const DEP5 = 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: someone\nLicense: GPL-2+\n\nFiles: lib/*\nLicense: Expat\n';

test('dpkg: installed packages with source, arch, DEP-5 licences and distro purls; the OS through the os-release symlink', async (t) => {
  const status = [
    dpkgStanza('bash', '5.2.15-2+b2'),
    dpkgStanza('libc6', '2.36-9+deb12u4', 'Source: glibc\n'),
    dpkgStanza('libgcc-s1', '12.2.0-14', 'Source: gcc-12 (12.2.0-14)\n'),
    dpkgStanza('gone', '1.0').replace('install ok installed', 'deinstall ok config-files'),
    dpkgStanza('halfway', '1.0').replace('install ok installed', 'install ok half-configured'),
    dpkgStanza('epoch', '1:2.3-4', 'Source: epochsrc (1:2.3-1)\n'),
  ].join('\n');
  const { store, manifest, diffIds } = await craftImage(tempDir(t), [
    {
      '/etc': 'dir',
      '/etc/os-release': { link: '../usr/lib/os-release' },
      '/usr/lib/os-release': OS_RELEASE,
      '/var/lib/dpkg/status': status,
      '/usr/share/doc/bash/copyright': DEP5,
      '/usr/share/doc/libc6/copyright': 'This is not machine-readable.\nOn Debian systems see /usr/share/common-licenses/LGPL-2.1 for the licence;\nyou may use any later version.\n',
      '/usr/share/doc/libgcc-s1': { link: 'gcc-12-base' },
      '/usr/share/doc/gcc-12-base/copyright': DEP5.replace('GPL-2+', 'GPL-3+ with GCC-exception-3.1 exception'),
    },
  ]);
  const c = await catalogImage(store, manifest);
  assert.deepEqual(c.os, { id: 'debian', versionId: '12', versionCodename: 'bookworm', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
  assert.deepEqual(c.platform, { os: 'linux', architecture: 'amd64' });
  assert.equal(c.manifestDigest, manifest.digest);
  assert.deepEqual(c.diffIds, diffIds);
  assert.deepEqual(
    c.packages.map((p) => `${p.name}@${p.version}`),
    ['bash@5.2.15-2+b2', 'epoch@1:2.3-4', 'libc6@2.36-9+deb12u4', 'libgcc-s1@12.2.0-14'],
    'sorted; config-files and half-configured packages are not installed',
  );
  const [bash, epoch, libc, libgcc] = c.packages;
  assert.equal(bash.purl, 'pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12'.replace('%2B', '+'));
  assert.deepEqual(bash.licenses, ['GPL-2.0-or-later', 'MIT']);
  assert.deepEqual(bash.locations, [{ layer: 0, diffId: diffIds[0], path: '/var/lib/dpkg/status' }]);
  assert.equal(bash.arch, 'amd64');
  assert.equal(bash.sourceName, undefined);
  assert.equal(libc.purl, 'pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12&upstream=glibc');
  assert.equal(libc.sourceName, 'glibc');
  assert.equal(libc.sourceVersion, '2.36-9+deb12u4');
  assert.deepEqual(libc.licenses, ['LGPL-2.1-or-later'], 'the fallback reads the common-licenses name and "any later version"');
  assert.equal(libgcc.sourceName, 'gcc-12');
  assert.deepEqual(libgcc.licenses, ['GPL-3.0-or-later WITH GCC-exception-3.1', 'MIT'], 'the doc directory symlink is followed inside the image');
  assert.equal(epoch.purl, 'pkg:deb/debian/epoch@1:2.3-4?arch=amd64&distro=debian-12&upstream=epochsrc%401%3A2.3-1');
});

test('distroless status.d/ entries count as installed; md5sums are not packages', async (t) => {
  const { store, manifest } = await craftImage(tempDir(t), [
    {
      '/etc/os-release': OS_RELEASE,
      '/var/lib/dpkg/status.d/base-files': dpkgStanza('base-files', '12.4').replace('Status: install ok installed\n', ''),
      '/var/lib/dpkg/status.d/base-files.md5sums': 'abc  etc/issue\n',
      '/var/lib/dpkg/status.d/tzdata': dpkgStanza('tzdata', '2024a-0+deb12u1'),
    },
  ]);
  const c = await catalogImage(store, manifest);
  assert.deepEqual(
    c.packages.map((p) => [p.name, p.locations[0].path]),
    [
      ['base-files', '/var/lib/dpkg/status.d/base-files'],
      ['tzdata', '/var/lib/dpkg/status.d/tzdata'],
    ],
  );
});

test('layer attribution: a package keeps the layer it came from while later layers rewrite the status file; new and upgraded ones get the rewriting layer', async (t) => {
  const base = [dpkgStanza('bash', '5.2'), dpkgStanza('zlib1g', '1.2.13'), dpkgStanza('perl', '5.36')].join('\n');
  const afterInstall = [dpkgStanza('bash', '5.2'), dpkgStanza('curl', '7.88'), dpkgStanza('zlib1g', '1.2.13'), dpkgStanza('perl', '5.36')].join('\n');
  const afterUpgrade = [dpkgStanza('bash', '5.2'), dpkgStanza('curl', '7.88'), dpkgStanza('zlib1g', '1.3')].join('\n');
  const { store, manifest, diffIds } = await craftImage(tempDir(t), [
    { '/etc/os-release': OS_RELEASE, '/var/lib/dpkg/status': base },
    { '/var/lib/dpkg/status': afterInstall },
    { '/etc/motd': 'hello\n' },
    { '/var/lib/dpkg/status': afterUpgrade },
  ]);
  const c = await catalogImage(store, manifest);
  const layers = Object.fromEntries(c.packages.map((p) => [`${p.name}@${p.version}`, p.locations.map((l) => [l.layer, l.diffId])]));
  assert.deepEqual(layers, {
    'bash@5.2': [[0, diffIds[0]]],
    'curl@7.88': [[1, diffIds[1]]],
    'zlib1g@1.3': [[3, diffIds[3]]],
  }, 'perl (removed by the last layer) is absent');
});

test('whiteouts: a deleted status file, a deleted package directory and an opaque node_modules remove what they hid', async (t) => {
  const pkg = (name: string, version: string, license = 'MIT'): string => JSON.stringify({ name, version, license });
  const { store, manifest, diffIds } = await craftImage(tempDir(t), [
    {
      '/etc/os-release': OS_RELEASE,
      '/var/lib/dpkg/status': dpkgStanza('bash', '5.2'),
      '/app/node_modules/left-pad/package.json': pkg('left-pad', '1.3.0', 'WTFPL'),
      '/app/node_modules/@types/node/package.json': pkg('@types/node', '20.1.0'),
      '/app/node_modules/@types/node/lib/package.json': '{"type":"module"}',
      '/app/node_modules/debug/package.json': pkg('debug', '4.3.4'),
      '/app/node_modules/debug/node_modules/ms/package.json': pkg('ms', '2.1.2'),
      '/app/node_modules/debug/test/fixtures/node_modules/fake/package.json': pkg('fake', '0.0.1'),
      '/srv/node_modules/kept/package.json': pkg('kept', '1.0.0'),
      '/srv/node_modules/gone/package.json': pkg('gone', '1.0.0'),
    },
    {
      '/var/lib/dpkg/.wh.status': '',
      '/app/node_modules/.wh..wh..opq': '',
      '/app/node_modules/express/package.json': pkg('express', '4.18.2'),
      '/srv/node_modules/.wh.gone': '',
    },
  ]);
  const c = await catalogImage(store, manifest);
  assert.deepEqual(
    c.packages.map((p) => `${p.ecosystem}:${p.name}@${p.version} ${p.locations[0].layer} ${p.locations[0].path}`),
    ['npm:express@4.18.2 1 /app/node_modules/express/package.json', 'npm:kept@1.0.0 0 /srv/node_modules/kept/package.json'],
  );
  assert.equal(c.packages[0].locations[0].diffId, diffIds[1]);
  assert.equal(c.packages[0].purl, 'pkg:npm/express@4.18.2');
});

test('npm: scoped names, nested node_modules, merged locations, licences; a lock file counts only where nothing is installed', async (t) => {
  const pkg = (name: string, version: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ name, version, ...extra });
  const lock = JSON.stringify({
    name: 'svc',
    lockfileVersion: 3,
    packages: {
      '': { name: 'svc', version: '1.0.0' },
      'node_modules/lodash': { version: '4.17.21', license: 'MIT' },
      'node_modules/@babel/core': { version: '7.23.0' },
      'node_modules/a/node_modules/b': { version: '2.0.0' },
      'packages/ws': { name: 'ws-local', version: '0.0.0' },
      'node_modules/ws-local': { link: true, resolved: 'packages/ws' },
    },
  });
  const { store, manifest } = await craftImage(tempDir(t), [
    {
      '/app/package.json': pkg('app', '1.0.0'),
      '/app/package-lock.json': JSON.stringify({ lockfileVersion: 3, packages: { 'node_modules/not-installed': { version: '9.9.9' } } }),
      '/app/node_modules/@scope/thing/package.json': pkg('@scope/thing', '1.0.0', { license: { type: 'Apache-2.0' } }),
      '/app/node_modules/debug/package.json': pkg('debug', '4.3.4', { licenses: [{ type: 'MIT' }] }),
      '/app/node_modules/other/node_modules/debug/package.json': pkg('debug', '4.3.4', { license: 'MIT' }),
      '/app/node_modules/weird/package.json': pkg('weird', '1.0.0', { license: 'SEE LICENSE IN LICENSE.md' }),
      '/app/node_modules/.package-lock.json': JSON.stringify({ packages: { 'node_modules/x': { version: '1.0.0' } } }),
      '/svc/package-lock.json': lock,
    },
  ]);
  const c = await catalogImage(store, manifest);
  const got = c.packages.map((p) => [p.purl, p.licenses, p.locations.map((l) => l.path)]);
  assert.deepEqual(got, [
    ['pkg:npm/%40babel/core@7.23.0', [], ['/svc/package-lock.json']],
    ['pkg:npm/%40scope/thing@1.0.0', ['Apache-2.0'], ['/app/node_modules/@scope/thing/package.json']],
    ['pkg:npm/b@2.0.0', [], ['/svc/package-lock.json']],
    ['pkg:npm/debug@4.3.4', ['MIT'], ['/app/node_modules/debug/package.json', '/app/node_modules/other/node_modules/debug/package.json']],
    ['pkg:npm/lodash@4.17.21', ['MIT'], ['/svc/package-lock.json']],
    ['pkg:npm/weird@1.0.0', ['SEE LICENSE IN LICENSE.md'], ['/app/node_modules/weird/package.json']],
  ]);
});

test('a layer cannot reach outside the image: absolute and escaping symlinks resolve inside it, ".." names are ignored', async (t) => {
  const { store, manifest } = await craftImage(tempDir(t), [
    await rawTar([
      { name: 'etc/os-release', type: 'symlink', linkname: '../../../../../usr/lib/os-release' },
      { name: 'usr/lib/os-release', content: 'ID=inside\n' },
      { name: '../../../usr/lib/os-release', content: 'ID=outside\n' },
      { name: 'var/lib/dpkg/status', content: dpkgStanza('bash', '5.2') },
      { name: '../var/lib/dpkg/status', content: dpkgStanza('evil', '6.6.6') },
      { name: 'usr/share/doc/bash', type: 'symlink', linkname: '/../../../../../etc' },
    ]),
  ]);
  const c = await catalogImage(store, manifest);
  assert.equal(c.os?.id, 'inside', "a symlink climbing above the root stays at the image's root (as in a chroot)");
  assert.deepEqual(c.packages.map((p) => p.name), ['bash'], 'entries named above the root are ignored');
  assert.deepEqual(c.packages[0].licenses, [], "/etc/copyright of the host is never read");
});
