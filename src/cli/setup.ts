import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { collect } from './options.js';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import { setupBinfmt, type BinfmtChange } from '../setup.js';

/** The words `kiln setup binfmt` prints for what it did to one handler. */
function describe(c: BinfmtChange): string {
  const p = formatPlatform(c.platform);
  const how = c.interpreter ? ` (interpreter ${c.interpreter}, flags ${c.flags || 'none'})` : '';
  switch (c.action) {
    case 'registered':
      return `registered ${c.name} for ${p}${how}`;
    case 'replaced':
      return `registered ${c.name} for ${p} again, with the F flag${how}`;
    case 'enabled':
      return `enabled ${c.name} for ${p}${how}`;
    case 'present':
      return `${c.name} for ${p} already registered${how}`;
    case 'removed':
      return `removed ${c.name} for ${p}`;
    case 'absent':
      return `${c.name} for ${p} was not registered`;
    case 'native':
      return `${p} runs natively on this machine: no handler needed`;
  }
}

export const register: Registrar = (program: Command) => {
  const setup = program.command('setup').description('Set up this host for kiln (needs root)');
  setup
    .command('binfmt')
    .description(
      "Register Debian's qemu-user-static binfmt_misc handlers with the F (fix-binary) flag, so RUN steps of foreign platforms run under QEMU user emulation (mounts binfmt_misc when needed; idempotent)",
    )
    .option('--platform <list>', 'platforms to register, comma-separated (repeatable; default: every foreign one qemu-user-static emulates)', collect, [])
    .option('--uninstall', 'remove the handlers of those platforms instead')
    .action((o: { platform: string[]; uninstall?: boolean }) => {
      const list = o.platform.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
      const platforms = list.length > 0 ? list.map((s) => parsePlatform(s)) : undefined;
      const changes = setupBinfmt({ platforms, uninstall: o.uninstall === true });
      for (const c of changes) process.stdout.write(`${describe(c)}\n`);
    });
};
