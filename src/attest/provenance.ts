/**
 * SLSA provenance v1 (https://slsa.dev/provenance/v1) of one platform image of a kiln build.
 *
 * The shape follows BuildKit's (docs/attestations/slsa-definitions.md) where the two builders
 * agree: `externalParameters.configSource` (the Dockerfile: path and sha256) and
 * `externalParameters.request` (frontend, args keyed `build-arg:NAME` / `label:NAME` / `target`
 * / `platform`, secrets and ssh ids without values, locals), `internalParameters.builderPlatform`,
 * `resolvedDependencies` as package URLs with digests. kiln runs no LLB, so the build steps of
 * `mode=max` are kiln's own (`internalParameters.buildConfig.steps`), and the build type is kiln's
 * own URI (KILN_BUILD_TYPE, described in docs/provenance.md): a consumer reading BuildKit's build
 * type would expect an LLB definition there.
 *
 * What is never in it: a secret's value (only its id, and only with mode=max), a credential in
 * a remote's URL. mode=min leaves out build-arg and label values, secrets and ssh, as BuildKit's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { formatPlatform } from '../oci/platform.js';
import type { Descriptor, Platform } from '../oci/types.js';
import { VERSION } from '../version.js';
import { publicRemote } from '../vcs.js';
import { imagePurl } from './intoto.js';

export const KILN_BUILD_TYPE = 'https://kiln.invalid/attestations/build-type/dockerfile/v1';

export interface BaseImageUse {
  /** As the Dockerfile (or --build-context) named it: "busybox", "busybox:1.36@sha256:…". */
  ref: string;
  platform: Platform;
  /** The manifest digest it resolved to (the platform's manifest). */
  digest: string;
}

export interface ProvenanceStep {
  name: string;
  /** The step's vertex digest (its definition, inputs included). */
  digest: string;
  /** Its cache key. */
  cacheKey: string;
  cached: boolean;
  stage?: string;
}

export interface ProvenanceInput {
  mode: 'min' | 'max';
  /** The Dockerfile as the build named it, relative to the context when inside it ("Dockerfile"). */
  dockerfilePath: string;
  /** sha256 of the Dockerfile's bytes ("sha256:…"). */
  dockerfileDigest: string;
  target?: string;
  /** Every platform the build was asked for (the request's `platform`). */
  platforms: Platform[];
  builderPlatform: Platform;
  /** --build-arg values as given (the environment's SOURCE_DATE_EPOCH included). */
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  /** Secret ids (--secret id=…); never their values. */
  secrets: string[];
  /** ssh ids (--ssh ID). */
  ssh: string[];
  /** Named contexts (--build-context NAME=…), by name. */
  namedContexts: string[];
  bases: BaseImageUse[];
  /** The context's git checkout, when it is one. */
  vcs?: { revision?: string; source?: string };
  /** Shared by every platform of one build. */
  invocationId: string;
  startedOn: string;
  finishedOn: string;
  /** mode=max: the steps this platform's image was built by. */
  steps?: ProvenanceStep[];
  /** mode=max: the image's layers. */
  layers?: Descriptor[];
  /** The image's times come from SOURCE_DATE_EPOCH. */
  reproducible?: boolean;
  /** runDetails.builder.id (default: the CI run when kiln knows it, else "" as BuildKit). */
  builderId?: string;
}

/** A build's invocation id: random, or (with SOURCE_DATE_EPOCH) derived from what the build was asked, so its attestations are reproducible. */
export function invocationId(seed?: string): string {
  const bytes = seed === undefined ? randomBytes(16) : createHash('sha256').update(seed).digest().subarray(0, 16);
  return BigInt(`0x${bytes.toString('hex')}`).toString(36).padStart(25, '0');
}

/** The run URL of a GitHub Actions job, as buildx derives its builder id; else "". */
export function defaultBuilderId(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GITHUB_ACTIONS === 'true' && env.GITHUB_SERVER_URL && env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID) {
    return `${env.GITHUB_SERVER_URL}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}${env.GITHUB_RUN_ATTEMPT ? `/attempts/${env.GITHUB_RUN_ATTEMPT}` : ''}`;
  }
  return '';
}

function sorted<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The provenance predicate (see the module comment). */
export function provenancePredicate(input: ProvenanceInput): Record<string, unknown> {
  const max = input.mode === 'max';
  const args: Record<string, string> = {};
  if (input.target) args.target = input.target;
  if (input.platforms.length) args.platform = input.platforms.map(formatPlatform).join(',');
  for (const name of input.namedContexts) args[`context:${name}`] = '';
  if (max) {
    for (const [k, v] of Object.entries(input.buildArgs)) args[`build-arg:${k}`] = v;
    for (const [k, v] of Object.entries(input.labels)) args[`label:${k}`] = v;
  }
  const request: Record<string, unknown> = {
    frontend: 'dockerfile.v0',
    args: sorted(args),
    locals: [{ name: 'context' }, { name: 'dockerfile' }],
  };
  if (max) {
    request.secrets = [...new Set(input.secrets)].sort().map((id) => ({ id }));
    request.ssh = [...new Set(input.ssh)].sort().map((id) => ({ id }));
  }
  const deps: Array<Record<string, unknown>> = [];
  const seen = new Set<string>();
  for (const b of input.bases) {
    const uri = imagePurl(b.ref, b.platform);
    const key = `${uri}\0${b.digest}`;
    if (seen.has(key)) continue;
    seen.add(key);
    deps.push({ uri, digest: { sha256: b.digest.replace(/^sha256:/, '') } });
  }
  const source = input.vcs?.source ? publicRemote(input.vcs.source) : undefined;
  if (input.vcs?.revision) {
    const algorithm = input.vcs.revision.length === 64 ? 'sha256' : 'sha1';
    deps.push({ ...(source ? { uri: source } : {}), name: 'context', digest: { [algorithm]: input.vcs.revision } });
  }
  const internal: Record<string, unknown> = { builderPlatform: formatPlatform(input.builderPlatform), kilnVersion: VERSION };
  if (max && input.steps) {
    internal.buildConfig = {
      steps: input.steps.map((s) => ({ name: s.name, ...(s.stage ? { stage: s.stage } : {}), digest: s.digest, cacheKey: s.cacheKey, cached: s.cached })),
    };
  }
  const metadata: Record<string, unknown> = {
    invocationId: input.invocationId,
    startedOn: input.startedOn,
    finishedOn: input.finishedOn,
    kiln_reproducible: input.reproducible === true,
    kiln_completeness: { request: max, resolvedDependencies: false },
  };
  const kilnMeta: Record<string, unknown> = {};
  if (source || input.vcs?.revision) kilnMeta.vcs = { ...(input.vcs?.revision ? { revision: input.vcs.revision } : {}), ...(source ? { source } : {}) };
  if (max) {
    kilnMeta.source = { infos: [{ filename: input.dockerfilePath, digest: input.dockerfileDigest }] };
    if (input.layers) kilnMeta.layers = input.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
  }
  metadata.kiln_metadata = kilnMeta;
  return {
    buildDefinition: {
      buildType: KILN_BUILD_TYPE,
      externalParameters: {
        configSource: { path: input.dockerfilePath, digest: { sha256: input.dockerfileDigest.replace(/^sha256:/, '') } },
        request,
      },
      internalParameters: internal,
      resolvedDependencies: deps,
    },
    runDetails: {
      builder: { id: input.builderId ?? defaultBuilderId(), version: { kiln: VERSION } },
      metadata,
    },
  };
}
