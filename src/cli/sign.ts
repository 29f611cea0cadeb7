import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { generateKeyPair, keyNeedsPassword, loadPrivateKey } from '../sign/keys.js';
import { readKeyFile, signImage, verifyImage } from '../sign/index.js';
import { keyPassword as password } from './password.js';

const KEYLESS = 'Keyless signing (Fulcio certificates, Rekor transparency log) needs those services on the internet and is not supported: sign with a key pair (kiln generate-key-pair).';


function collect(value: string, acc: string[]): string[] {
  return [...acc, value];
}

function parseAnnotations(pairs: string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new KilnError(`-a ${JSON.stringify(p)} is not KEY=VALUE`, { code: 'invalid', hint: 'e.g. -a team=platform (repeatable)' });
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

export const register: Registrar = (program: Command, globals) => {
  // one module for three command words: registered once when all commands load (help)
  if (program.commands.some((c) => c.name() === 'sign')) return;
  program
    .command('generate-key-pair')
    .summary('Write a cosign-compatible key pair (cosign.key encrypted, cosign.pub)')
    .description(`Write a cosign-compatible key pair: PREFIX.key (ECDSA P-256, encrypted with a password, mode 0600) and PREFIX.pub. The password comes from KILN_PASSWORD or COSIGN_PASSWORD, else it is asked twice on the terminal. ${KEYLESS}`)
    .option('--output-key-prefix <prefix>', 'file names: PREFIX.key and PREFIX.pub', 'cosign')
    .option('--force', 'overwrite existing files')
    .action(async (o: { outputKeyPrefix: string; force?: boolean }) => {
      const keyFile = `${o.outputKeyPrefix}.key`;
      const pubFile = `${o.outputKeyPrefix}.pub`;
      for (const f of [keyFile, pubFile]) {
        if (existsSync(f) && !o.force) throw new KilnError(`${f} exists`, { code: 'exists', hint: 'pass --force to overwrite it, or choose another --output-key-prefix' });
      }
      const pair = generateKeyPair(await password(keyFile, true));
      await writeFile(keyFile, pair.privatePem, { mode: 0o600 });
      await chmod(keyFile, 0o600);
      await writeFile(pubFile, pair.publicPem, { mode: 0o644 });
      process.stderr.write(`Private key written to ${keyFile}\nPublic key written to ${pubFile}\n`);
    });

  program
    .command('sign')
    .summary('Sign an image in a registry with a key, as cosign sign --key does')
    .description(`Sign an image in a registry as cosign sign --key does: the payload under the sha256-<digest>.sig tag of its repository, and an OCI 1.1 referrer. A tag is resolved in the registry and that digest signed. ${KEYLESS}`)
    .argument('<ref>', 'HOST/REPO[:TAG|@DIGEST], or docker://REF')
    .requiredOption('--key <file>', 'private key: kiln or cosign generate-key-pair (password from KILN_PASSWORD, COSIGN_PASSWORD or the terminal), or a PKCS#8 / EC PEM key')
    .option('--attestations', 'also sign every attestation manifest of the image index')
    .option('-a, --annotations <key=value>', 'a claim in the payload\'s "optional" section (repeatable)', collect, [] as string[])
    .action(async (ref: string, o: { key: string; attestations?: boolean; annotations: string[] }) => {
      const { root, insecureRegistries } = globals();
      const annotations = parseAnnotations(o.annotations);
      const pem = await readKeyFile(o.key, 'private key');
      const key = loadPrivateKey(pem, keyNeedsPassword(pem) ? await password(o.key) : undefined, o.key);
      const result = await signImage({ root, ref, key, attestations: o.attestations, annotations, insecureRegistries });
      for (const w of result.warnings) process.stderr.write(`WARNING: ${w}\n`);
      process.stderr.write(`Pushing signature to: ${result.repository}\n`);
      for (const s of result.signed) {
        process.stdout.write(`${result.repository}:${s.pushed.tag}@${s.pushed.manifest.digest}\n`);
        process.stderr.write(`Signed ${s.kind === 'image' ? 'image' : `attestation manifest${s.describes ? ` (of ${s.describes})` : ''}`} ${s.digest}${s.pushed.added ? '' : ' (the same signature was there already)'}\n`);
      }
    });

  program
    .command('verify')
    .summary("Verify an image's cosign signatures with a public key")
    .description(`Verify an image's cosign signatures with a public key: a signature under its sha256-<digest>.sig tag must verify and name this digest and repository. Prints the verified payloads as JSON (as cosign verify does); exits 1 with the reason otherwise. ${KEYLESS}`)
    .argument('<ref>', 'HOST/REPO[:TAG|@DIGEST], or docker://REF')
    .requiredOption('--key <file>', 'public key (PEM), e.g. cosign.pub')
    .option('--attestations', 'also verify a signature of every attestation manifest of the image index')
    .option('-o, --output <format>', 'json (the verified payloads, as cosign prints them) or text', 'json')
    .action(async (ref: string, o: { key: string; attestations?: boolean; output: string }) => {
      if (o.output !== 'json' && o.output !== 'text') throw new KilnError(`--output ${o.output}: choose json or text`, { code: 'invalid' });
      const { root, insecureRegistries } = globals();
      const result = await verifyImage({ root, ref, publicKey: o.key, attestations: o.attestations, insecureRegistries });
      if (o.output === 'text') {
        for (const v of result.verified) process.stdout.write(`Verified ${v.kind === 'image' ? 'image' : 'attestation manifest'} ${v.digest} in ${v.payload.critical.identity['docker-reference']} with ${o.key}\n`);
        return;
      }
      process.stderr.write(
        `\nVerification for ${ref} --\nThe following checks were performed on each of these signatures:\n  - The cosign claims were validated\n  - The signatures were verified against the specified public key\n`,
      );
      process.stdout.write(`${JSON.stringify(result.verified.map((v) => JSON.parse(v.payloadBytes.toString('utf8')) as unknown))}\n`);
    });
};
