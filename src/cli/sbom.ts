import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { writeFile } from 'node:fs/promises';
import { parsePlatform } from '../oci/platform.js';
import { checkSbomFormat, sbomImage, SBOM_FORMATS } from '../sbom/index.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('sbom')
    .description(
      "Print the software bill of materials of an image in the kiln store (SPDX 2.3 or CycloneDX 1.6 JSON): dpkg, apk, npm, Python, Go and Maven packages, each with its purl, licences and the layer and path it came from. Says on stderr where the packages came from (the image's layers, catalogued now).",
    )
    .argument('<image>', 'image name, digest or ID')
    .option('--format <format>', `${SBOM_FORMATS.join(' or ')}`, 'spdx-json')
    .option('-o, --output <file>', 'write the document to this file instead of stdout')
    .option('--platform <os/arch>', "the platform to describe in a multi-platform image (default: this machine's)")
    .action(async (image: string, o: { format: string; output?: string; platform?: string }) => {
      checkSbomFormat(o.format);
      const platform = o.platform === undefined ? undefined : parsePlatform(o.platform, '--platform');
      const r = await sbomImage(globals().root, image, { format: o.format, platform });
      const text = `${JSON.stringify(r.document, null, 2)}\n`;
      if (o.output && o.output !== '-') await writeFile(o.output, text);
      else process.stdout.write(text);
      process.stderr.write(`${r.catalog.packages.length} packages, catalogued from the layers of ${r.manifestDigest}\n`);
    });
};
