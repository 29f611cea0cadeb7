import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { imageAttestations } from '../attest/index.js';
import { parsePlatform } from '../oci/platform.js';
import { formatTable, humanSize } from './format.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('attestations')
    .description('List the attestations (SBOM, provenance) attached to a stored image, or print one statement')
    .argument('<image>', 'image name, digest or ID')
    .option('--format <format>', 'table or json (json includes each statement)', 'table')
    .option('--predicate-type <uri>', 'print the statement of this predicate type (e.g. https://slsa.dev/provenance/v1, https://spdx.dev/Document)')
    .option('--platform <os/arch>', 'only the attestations of this platform\'s image')
    .action(async (ref: string, o: { format: string; predicateType?: string; platform?: string }) => {
      if (o.format !== 'table' && o.format !== 'json') throw new KilnError(`unknown --format "${o.format}"`, { code: 'invalid', hint: 'use --format table or --format json' });
      const platform = o.platform === undefined ? undefined : parsePlatform(o.platform, '--platform');
      const { name, rows } = await imageAttestations(globals().root, ref, { platform, predicateType: o.predicateType, statements: o.format === 'json' || o.predicateType !== undefined });
      if (o.predicateType !== undefined) {
        if (rows.length === 0) {
          throw new KilnError(`${name} has no attestation of type ${o.predicateType}${o.platform ? ` for ${o.platform}` : ''}`, { code: 'not-found', hint: `kiln attestations ${ref} lists what it has` });
        }
        if (rows.length > 1) {
          throw new KilnError(`${name} has ${rows.length} attestations of type ${o.predicateType} (platforms ${rows.map((r) => r.platform).join(', ')})`, { code: 'invalid', hint: 'choose one with --platform' });
        }
        process.stdout.write(`${JSON.stringify(rows[0].statement, null, 2)}\n`);
        return;
      }
      if (o.format === 'json') {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      if (rows.length === 0) {
        process.stderr.write(`${name} has no attestations (build it with --provenance=mode=max or --sbom=true)\n`);
        return;
      }
      const table = [['PLATFORM', 'PREDICATE TYPE', 'DIGEST', 'SIZE', 'SUBJECT']];
      for (const r of rows) table.push([r.platform, r.predicateType, r.digest, humanSize(r.size), r.subject]);
      process.stdout.write(formatTable(table));
    });
};
