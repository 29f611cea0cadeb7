/**
 * The one platform parser (src/oci/platform.ts), checked against containerd's platforms.Parse
 * followed by platforms.Normalize, which BuildKit applies to --platform and FROM --platform.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPlatform, hostPlatform, parsePlatform, tryParsePlatform } from '../../src/oci/platform.js';
import { parsePlatform as checksParsePlatform } from '../../src/dockerfile/checks/words.js';
import { KilnError } from '../../src/errors.js';
import type { Platform } from '../../src/oci/types.js';

const ARM_HOST: Platform = { os: 'linux', architecture: 'arm', variant: 'v6' };

test('a lone OS takes the host architecture (and variant), as containerd does', () => {
  assert.deepEqual(parsePlatform('linux'), hostPlatform());
  assert.deepEqual(tryParsePlatform('linux', ARM_HOST), { platform: ARM_HOST });
  assert.deepEqual(tryParsePlatform('windows', ARM_HOST), { platform: { ...ARM_HOST, os: 'windows' } });
  assert.deepEqual(tryParsePlatform('macos', { os: 'linux', architecture: 'arm64' }), { platform: { os: 'darwin', architecture: 'arm64' } });
});

test('a lone architecture is linux, normalised', () => {
  assert.deepEqual(parsePlatform('amd64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(parsePlatform('i386'), { os: 'linux', architecture: '386' });
});

test('os/arch[/variant] normalises variants as containerd does', () => {
  const cases: [string, Platform][] = [
    ['linux/arm', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm/7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/armhf', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/armel', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm64/8', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm64/v8.0', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm64/9.0', { os: 'linux', architecture: 'arm64', variant: 'v9' }],
    ['linux/amd64/v1', { os: 'linux', architecture: 'amd64' }],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v3' }],
    ['linux/i386', { os: 'linux', architecture: '386' }],
    ['Linux/AMD64', { os: 'linux', architecture: 'amd64' }],
    ['windows/amd64', { os: 'windows', architecture: 'amd64' }],
    ['macos/arm64', { os: 'darwin', architecture: 'arm64' }],
  ];
  for (const [text, want] of cases) assert.deepEqual(parsePlatform(text), want, text);
  assert.equal(formatPlatform(parsePlatform('linux/arm')), 'linux/arm/v7');
  assert.equal(formatPlatform(parsePlatform('linux/arm64/v8')), 'linux/arm64');
});

test('bad platforms are KilnErrors that say which part is wrong', () => {
  const cases: [string, string][] = [
    ['', 'an os, architecture or variant is empty'],
    ['linux/', 'an os, architecture or variant is empty'],
    ['linux/amd64/v2/x', 'too many parts: expected os/arch[/variant]'],
    ['linux/*', '"*" is not a valid platform component (letters, digits, "_", "." and "-" only)'],
    ['lnux/amd64', 'unknown operating system "lnux" (did you mean linux?)'],
    ['linux/amd65', 'unknown architecture "amd65" (did you mean amd64?)'],
    ['linux/arm/v9', 'unknown variant "v9" for arm'],
    ['bogus', 'unknown architecture "bogus"'],
  ];
  for (const [text, problem] of cases) {
    assert.deepEqual(tryParsePlatform(text), { problem }, text);
    assert.throws(
      () => parsePlatform(text, '--platform'),
      (e: unknown) => e instanceof KilnError && e.message === `invalid --platform "${text}": ${problem}` && /os\/arch\[\/variant\]/.test(e.hint ?? ''),
      text,
    );
  }
});

test('the checks read platforms with the same parser', () => {
  for (const text of ['linux', 'linux/arm', 'arm', 'linux/arm64/v8', 'windows/amd64', 'amd64']) {
    assert.deepEqual(checksParsePlatform(text), parsePlatform(text), text);
  }
  assert.equal(checksParsePlatform('linux/amd65'), undefined);
});
