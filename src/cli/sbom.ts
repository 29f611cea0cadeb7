import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { writeFile } from 'node:fs/promises';
import { parsePlatform } from '../oci/platform.js';
import { checkSbomFormat, sbomImage, SBOM_FORMATS } from '../sbom/index.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('sbom')
    .description(
      "Print the software bill of materials of an image in the kiln store (SPDX 2.3 or CycloneDX 1.6 JSON): dpkg, apk, npm, Python, Go and Maven packages, each with its purl, licences and the layer and path it came from. When the image carries an SBOM attestation kiln wrote (kiln build --sbom=true), that SBOM is read instead of cataloguing the layers again (--from-layers catalogues anyway); stderr says which happened.",
    )
    .argument('<image>', 'image name, digest or ID')
    .option('--format <format>', `${SBOM_FORMATS.join(' or ')}`, 'spdx-json')
    .option('-o, --output <file>', 'write the document to this file instead of stdout')
    .option('--platform <os/arch>', "the platform to describe in a multi-platform image (default: this machine's)")
    .option('--from-layers', 'catalogue the layers even when an SBOM is attached to the image')
    .action(async (image: string, o: { format: string; output?: string; platform?: string; fromLayers?: boolean }) => {
      checkSbomFormat(o.format);
      const platform = o.platform === undefined ? undefined : parsePlatform(o.platform, '--platform');
      const r = await sbomImage(globals().root, image, { format: o.format, platform, fromLayers: o.fromLayers });
      const text = `${JSON.stringify(r.document, null, 2)}\n`;
      if (o.output && o.output !== '-') await writeFile(o.output, text);
      else process.stdout.write(text);
      if (r.note) process.stderr.write(`note: ${r.note}; catalogued the layers instead\n`);
      process.stderr.write(
        r.source === 'attestation'
          ? `${r.catalog.packages.length} packages, from the SBOM attested for ${r.manifestDigest} (${r.attestation}); --from-layers catalogues the layers instead\n`
          : `${r.catalog.packages.length} packages, catalogued from the layers of ${r.manifestDigest}\n`,
      );
    });
};
