import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { checkOutputFile, collect, parseKeyValues, readStdin, writeOutputFile } from './options.js';
import { build, buildContextFlags, parseCacheFrom, parseCacheTo } from '../build.js';
import { KilnError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { checkCommand } from './check.js';
import { loadSecrets } from './secrets.js';
import { progressRenderer, type ProgressMode } from './progress.js';
import { outputExporters, parseAnnotationFlag, parseOutput, registryExporter } from '../export/index.js';
import { transferRenderer } from './transfer.js';
import { registryClient } from '../registry/settings.js';
import { parseMemory, parseUlimit } from '../exec/index.js';
import type { BuildOptions } from '../build.js';
import { parseAttestationFlags } from '../attest/options.js';
import { gateFromFlags } from './gate.js';

const ENTITLEMENTS = ['network.host', 'security.insecure'];

/** --allow, --network, --ulimit and --memory as build options. */
function sandboxOptions(o: Record<string, unknown>): Pick<BuildOptions, 'entitlements' | 'network' | 'ulimits' | 'memory'> {
  const allow = o.allow as string[];
  for (const a of allow) {
    if (!ENTITLEMENTS.includes(a)) throw new KilnError(`unknown entitlement "${a}" (--allow)`, { code: 'invalid', hint: `use --allow ${ENTITLEMENTS.join(' or --allow ')}` });
  }
  const network = o.network as string | undefined;
  if (network !== undefined && !['default', 'none', 'host'].includes(network)) {
    throw new KilnError(`unknown --network "${network}"`, { code: 'invalid', hint: 'use --network default (sandboxed), none or host' });
  }
  return {
    entitlements: allow,
    network: network as BuildOptions['network'],
    ulimits: (o.ulimit as string[]).map(parseUlimit),
    memory: o.memory === undefined ? undefined : parseMemory(o.memory as string),
  };
}
import { parseSshSpec } from '../exec/index.js';

/** --platform values (each may be a comma-separated list, as buildx's) as one list of platform texts. */
export function platformFlags(values: string[]): string[] {
  const out = values.flatMap((v) => v.split(',')).map((v) => v.trim());
  if (out.some((v) => v === '')) throw new KilnError(`--platform ${values.join(',')} has an empty platform`, { code: 'invalid', hint: 'write --platform linux/amd64,linux/arm64' });
  return out;
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('build')
    .description('Build an image from a Dockerfile and a context directory')
    .argument('<context>', 'build context directory')
    .option('-f, --file <path>', 'Dockerfile (default: <context>/Dockerfile; "-" reads stdin)')
    .option('-t, --tag <name>', 'name and tag the image (repeatable)', collect, [])
    .option('--build-arg <k=v>', 'set a build-time variable (repeatable)', collect, [])
    .option('--target <stage>', 'build this stage and what it needs, not the last one')
    .option('--platform <os/arch[,os/arch…]>', 'target platforms, comma-separated (repeatable); several give an image index (default: this machine\'s)', collect, [])
    .option('--no-cache', 'run every step, ignoring cached results')
    .option('--no-cache-filter <stage>', 'ignore the cache for this stage (repeatable)', collect, [])
    .option('--parallel <n>', 'at most this many steps at once (default: number of cores)')
    .option('--secret <id=ID,src=PATH>', 'expose a secret (a file, or env=VAR) to RUN --mount=type=secret (repeatable)', collect, [])
    .option('--label <k=v>', 'set an image label (repeatable)', collect, [])
    .option('--progress <mode>', 'progress output: auto, plain, tty, json, quiet', 'auto')
    .option('-q, --quiet', 'print only the image id')
    .option('--iidfile <file>', 'write the image id to a file')
    .option('--metadata-file <file>', 'write build result metadata (digests, names) as JSON')
    .option('--cache-to <spec>', 'export the build cache: type=local,dest=DIR | type=registry,ref=REF | type=inline, [mode=min|max] [compression=gzip|uncompressed] [ignore-error=true|false] [cache-mounts=ID,…|all] (repeatable)', collect, [])
    .option('--cache-from <spec>', 'use a cache: type=local,src=DIR | type=registry,ref=REF | REF (repeatable)', collect, [])
    .option('--check', 'run the build checks (kiln check) and stop before building')
    .option('--pull', 'always re-resolve base image tags against their registry and pull what changed')
    .option('--push', 'push the image to the registry each -t names')
    .option('--explain', 'say why each executed step missed the cache, compared with the previous build')
    .option('--allow <entitlement>', 'grant an entitlement: network.host (RUN --network=host), security.insecure (RUN --security=insecure) (repeatable)', collect, [])
    .option('--network <mode>', 'network of RUN steps without --network: default (sandboxed, outbound only), none, host (needs --allow network.host)')
    .option('--ulimit <name=soft[:hard]>', 'resource limit of every RUN, e.g. nofile=1024:2048 (repeatable)', collect, [])
    .option('--memory <bytes>', 'memory limit of every RUN, e.g. 512m (needs the cgroup memory controller)')
    .option('--build-context <name=value>', 'a named context for FROM, COPY --from and RUN --mount from=: NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG][@sha256:DIGEST] (repeatable)', collect, [])
    .option('-o, --output <spec>', 'where the result goes: type=image|registry|oci|docker|local|tar,dest=PATH|-,name=…,push=true, compression=gzip|zstd|uncompressed, oci-mediatypes=true|false, annotation.KEY=VALUE, tar=false (oci); DIR is type=local,dest=DIR, - a tar on stdout (repeatable)', collect, [])
    .option('--load', 'hand the image to the docker engine ($DOCKER_HOST, default its unix socket), as -o type=docker')
    .option('--annotation <[TYPE[,TYPE][[PLATFORM]]:]KEY=VALUE>', 'annotate the image: manifest (default), manifest-descriptor, index, index-descriptor (repeatable)', collect, [])
    .option('--ssh <default|ID[=PATH[,PATH]]>', 'expose an ssh agent to RUN --mount=type=ssh: $SSH_AUTH_SOCK, an agent socket, or key files (repeatable)', collect, [])
    .option('--sbom [bool]', 'attach an SPDX SBOM of each platform image as an in-toto attestation: --sbom=true|false (default false)')
    .option('--provenance [value]', 'attach SLSA v1 provenance: --provenance=true|false|mode=min|max[,builder-id=URI] (default off; true is mode=min)')
    .option('--attest <type=sbom|provenance[,mode=min|max][,disabled=true]>', 'attach an attestation, as buildx --attest (repeatable)', collect, [])
    .option('--sign-key <file>', 'gate: sign the pushed image (and its attestation manifests) with this cosign key, loaded before the build; password from KILN_PASSWORD/COSIGN_PASSWORD or a prompt (keyless signing needs Fulcio/Rekor on the internet: not supported)')
    .option('--scan-db <dir|zip>', 'gate: scan every platform against this OSV advisory database before anything is pushed')
    .option('--scan-secrets', 'gate: scan every layer (deleted files too), env, labels and history for secrets before anything is pushed')
    .option('--scan-severity <list>', 'gate: severities that fail it, comma-separated (default: all): CRITICAL,HIGH,MEDIUM,LOW,UNKNOWN')
    .option('--scan-exit-code <n>', 'gate: exit code when it fails (default 1); 0 reports the findings and pushes anyway')
    .option('--scan-ignorefile <file>', 'gate: advisory ids and secret rule ids to accept (.trivyignore format)')
    .option('--scan-ignore-unfixed', 'gate: advisories without a fixed version do not fail it')
    .action(async (contextDir: string, o: Record<string, unknown>) => {
      const { root, insecureRegistries } = globals();
      if (o.check) {
        const { output, failed } = await checkCommand(contextDir, { file: o.file, format: 'text', target: o.target, buildArg: o.buildArg, platform: platformFlags(o.platform as string[])[0], skip: [] }, root);
        process.stdout.write(output);
        if (failed) process.exitCode = 1;
        return;
      }
      const mode = (o.quiet ? 'quiet' : o.progress) as ProgressMode;
      if (!['auto', 'plain', 'tty', 'json', 'quiet'].includes(mode)) {
        throw new KilnError(`unknown --progress mode "${mode}"`, { hint: 'use --progress auto, plain, tty, json or quiet' });
      }
      const attestations = parseAttestationFlags({ sbom: o.sbom as string | boolean | undefined, provenance: o.provenance as string | boolean | undefined, attest: o.attest as string[] });
      if (o.iidfile !== undefined) await checkOutputFile(o.iidfile as string, '--iidfile');
      if (o.metadataFile !== undefined) await checkOutputFile(o.metadataFile as string, '--metadata-file');
      if (o.push && (o.tag as string[]).length === 0) throw new KilnError('--push needs a name to push to', { code: 'invalid', hint: 'add -t REGISTRY/REPOSITORY:TAG' });
      // push progress as lines (the build's own renderer owns a terminal while it runs)
      const annotations = (o.annotation as string[]).flatMap(parseAnnotationFlag);
      const outputs = (o.output as string[]).map(parseOutput);
      const pushLines = (o.push || outputs.some((s) => s.push)) && mode !== 'quiet' && mode !== 'json' ? transferRenderer('plain') : undefined;
      const pushTo = (names?: string[]) => registryExporter({ names, client: registryClient({ root, insecureRegistries }), progress: pushLines?.onEvent, warn: (m) => process.stderr.write(`WARNING: ${m}\n`) });
      if (o.load) outputs.push({ type: 'docker', annotations: [] });
      if (outputs.some((s) => s.rewriteTimestamp) && process.env.SOURCE_DATE_EPOCH === undefined && !(o.buildArg as string[]).some((a) => a.startsWith('SOURCE_DATE_EPOCH='))) {
        process.stderr.write('WARNING: rewrite-timestamp=true has no effect without SOURCE_DATE_EPOCH (set it in the environment or as --build-arg)\n');
      }
      const gate = await gateFromFlags(o, { root, insecureRegistries, push: o.push === true, names: o.tag as string[], progress: pushLines?.onEvent, warn: (m) => process.stderr.write(`WARNING: ${m}\n`), outputPushes: outputs.some((s) => s.push) });
      // with a gate, the gate pushes (signed, after the scans)
      const exporters = [...(o.push && !gate ? [pushTo()] : []), ...outputExporters(outputs, { tags: o.tag as string[], registry: (names) => pushTo(names), annotations })];
      const cacheTo = (o.cacheTo as string[]).map(parseCacheTo);
      const cacheFrom = (o.cacheFrom as string[]).map(parseCacheFrom);
      const renderer = progressRenderer(mode);
      const secrets = await loadSecrets(o.secret as string[]);
      let dockerfileText: string | undefined;
      let dockerfile = o.file as string | undefined;
      if (dockerfile === '-') {
        dockerfileText = await readStdin();
        dockerfile = undefined;
      }
      const parallel = o.parallel === undefined ? (await import('node:os')).availableParallelism() : Number(o.parallel);
      if (!Number.isInteger(parallel) || parallel < 1) throw new KilnError(`--parallel must be a positive whole number, got "${String(o.parallel)}"`, { hint: 'write --parallel 1 to run one step at a time, or leave it out for one per core' });
      // SIGINT, SIGTERM and SIGHUP are handled for every command in main.ts
      const started = Date.now();
      let finished = false;
      try {
        const result = await build({
          root,
          contextDir,
          dockerfile,
          dockerfileText,
          tags: o.tag as string[],
          buildArgs: parseKeyValues(o.buildArg as string[], '--build-arg'),
          target: o.target as string | undefined,
          platforms: platformFlags(o.platform as string[]).map((p) => parsePlatform(p, '--platform')),
          noCache: o.cache === false,
          noCacheFilter: o.cacheFilter as string[], // commander names "--no-cache-filter" cacheFilter
          parallelism: parallel,
          secrets,
          labels: parseKeyValues(o.label as string[], '--label'),
          progress: renderer.onEvent,
          warn: (m) => process.stderr.write(m.startsWith('[Warning]') ? `${m}\n` : `WARNING: ${m}\n`),
          explain: o.explain === true,
          pull: o.pull === true,
          insecureRegistries,
          exporters,
          cacheTo,
          cacheFrom,
          ...sandboxOptions(o),
          buildContexts: buildContextFlags(o.buildContext as string[]),
          ssh: (o.ssh as string[]).map(parseSshSpec),
          annotations,
          ...attestations,
          gate,
        });
        renderer.finish();
        finished = true;
        if (o.iidfile !== undefined) await writeOutputFile(o.iidfile as string, result.imageId, '--iidfile');
        const pushed = result.exports.find((e) => e.type === 'registry');
        if (o.metadataFile !== undefined) {
          // as buildx: an index has no one config, so a multi-platform result has no config digest
          const meta = {
            ...(result.platforms ? {} : { 'containerimage.config.digest': result.configDescriptor.digest }),
            'containerimage.digest': (pushed?.descriptor ?? result.manifestDescriptor).digest,
            'containerimage.descriptor': pushed?.descriptor ?? result.manifestDescriptor,
            'image.name': result.names.join(','),
          };
          await writeOutputFile(o.metadataFile as string, `${JSON.stringify(meta, null, 2)}\n`, '--metadata-file');
        }
        if (result.explanations) {
          const ran = result.explanations.filter((x) => !x.cached);
          process.stderr.write(ran.length === 0 ? 'explain: every step came from the cache\n' : 'explain: why steps ran:\n');
          for (const x of ran) process.stderr.write(`  ${x.step}\n${x.reasons.map((r) => `    - ${r}\n`).join('')}`);
        }
        if (mode === 'quiet') {
          // an archive on stdout (dest=-) owns it: the id goes to stderr then
          (outputs.some((s) => s.dest === '-') ? process.stderr : process.stdout).write(`${result.imageId}\n`);
        } else {
          const secs = ((Date.now() - started) / 1000).toFixed(1);
          process.stderr.write(`writing image ${result.imageId} done (${secs}s)\n`);
          for (const n of result.names) process.stderr.write(`naming to ${n} done\n`);
          for (const e of result.exports) {
            if (e.type === 'registry') for (const r of e.names ?? []) process.stderr.write(`pushed ${r}\n`);
            else if (e.type === 'docker' && e.dest?.includes('://')) process.stderr.write(`loaded ${e.names?.join(', ') || e.descriptor?.digest} into the docker engine at ${e.dest}\n`);
            else if (e.dest !== undefined && e.dest !== '-') process.stderr.write(`exported ${e.type} to ${e.dest}\n`);
          }
        }
      } finally {
        if (!finished) renderer.finish();
      }
    });
};
