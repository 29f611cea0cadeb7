/**
 * The rule catalogue: BuildKit's build-check rules (same names, descriptions and message
 * wording as docs.docker.com/reference/build-checks) and kiln's own practice rules.
 */

export interface RuleInfo {
  name: string;
  /** One-line description (BuildKit's own for its rules). */
  short: string;
  /** Why it matters and what to do. */
  explanation: string;
  url?: string;
  /** Experimental rules run only when enabled with `experimental=` (BuildKit semantics). */
  experimental?: boolean;
  origin: 'buildkit' | 'kiln';
}

const docs = (slug: string): string => `https://docs.docker.com/go/dockerfile/rule/${slug}/`;
// kiln's own rules have no web address; they are documented in docs/checks.md.

const list: RuleInfo[] = [
  {
    name: 'StageNameCasing',
    short: 'Stage names should be lowercase',
    explanation:
      'Stage names are case-insensitive and compared in lowercase; mixed case is misleading next to instruction keywords. Write the name in lowercase.',
    url: docs('stage-name-casing'),
    origin: 'buildkit',
  },
  {
    name: 'FromAsCasing',
    short: "The 'as' keyword should match the case of the 'from' keyword",
    explanation: 'Mixing `FROM ... as` or `from ... AS` hurts readability. Write AS in the same case as FROM.',
    url: docs('from-as-casing'),
    origin: 'buildkit',
  },
  {
    name: 'NoEmptyContinuation',
    short: 'Empty continuation lines will become errors in a future release',
    explanation:
      'An empty line inside a backslash-continued instruction is skipped today but will be an error later. Remove the empty line, or end the instruction before it.',
    url: docs('no-empty-continuation'),
    origin: 'buildkit',
  },
  {
    name: 'ConsistentInstructionCasing',
    short: 'All commands within the Dockerfile should use the same casing (either upper or lower)',
    explanation:
      'Instruction keywords are case-insensitive, but mixing cases makes the file harder to scan. Use the casing most of the file already uses (uppercase is conventional).',
    url: docs('consistent-instruction-casing'),
    origin: 'buildkit',
  },
  {
    name: 'DuplicateStageName',
    short: 'Stage names should be unique',
    explanation:
      'When two stages share a name, `--target` and `COPY --from` refer to only one of them, which is easy to get wrong. Rename one of the stages.',
    url: docs('duplicate-stage-name'),
    origin: 'buildkit',
  },
  {
    name: 'ReservedStageName',
    short: 'Reserved words should not be used as stage names',
    explanation:
      '"scratch" and "context" have fixed meanings in FROM and COPY --from; a stage with that name shadows or conflicts with them. Pick another name.',
    url: docs('reserved-stage-name'),
    origin: 'buildkit',
  },
  {
    name: 'JSONArgsRecommended',
    short: 'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals',
    explanation:
      'In shell form the program runs as a child of /bin/sh -c, which does not forward SIGTERM, so `docker stop` waits and then kills it. Use the exec form, e.g. CMD ["app", "--flag"], or set SHELL explicitly if a shell is really wanted.',
    url: docs('json-args-recommended'),
    origin: 'buildkit',
  },
  {
    name: 'MaintainerDeprecated',
    short: 'The MAINTAINER instruction is deprecated, use a label instead to define an image author',
    explanation: 'MAINTAINER is deprecated. Use LABEL org.opencontainers.image.authors="name <email>" instead.',
    url: docs('maintainer-deprecated'),
    origin: 'buildkit',
  },
  {
    name: 'UndefinedArgInFrom',
    short: 'FROM command must use declared ARGs',
    explanation:
      'FROM can only use ARGs declared before the first FROM (or predefined platform ARGs); anything else expands to an empty string. Declare the ARG at the top of the file, or fix the name.',
    url: docs('undefined-arg-in-from'),
    origin: 'buildkit',
  },
  {
    name: 'WorkdirRelativePath',
    short:
      'Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes',
    explanation:
      "A relative WORKDIR is resolved against the base image's working directory, which can change upstream without notice. Start the path with / (or set an absolute WORKDIR first).",
    url: docs('workdir-relative-path'),
    origin: 'buildkit',
  },
  {
    name: 'UndefinedVar',
    short: 'Variables should be defined before their use',
    explanation:
      'The variable is not set by ARG or ENV in this stage (or its base), so it expands to an empty string, which is rarely intended and often a typo. Declare it with ARG/ENV before use, or fix the name.',
    url: docs('undefined-var'),
    origin: 'buildkit',
  },
  {
    name: 'MultipleInstructionsDisallowed',
    short: 'Multiple instructions of the same type should not be used in the same stage',
    explanation:
      'Only the last CMD, ENTRYPOINT or HEALTHCHECK of a stage takes effect; earlier ones are silently ignored. Remove the extra instructions.',
    url: docs('multiple-instructions-disallowed'),
    origin: 'buildkit',
  },
  {
    name: 'LegacyKeyValueFormat',
    short: 'Legacy key/value format with whitespace separator should not be used',
    explanation:
      'The `ENV key value` form is deprecated and ambiguous (one pair per line, the rest of the line is the value). Write `ENV key=value`.',
    url: docs('legacy-key-value-format'),
    origin: 'buildkit',
  },
  {
    name: 'RedundantTargetPlatform',
    short: 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
    explanation: 'FROM already uses the target platform by default. Remove the --platform flag.',
    url: docs('redundant-target-platform'),
    origin: 'buildkit',
  },
  {
    name: 'SecretsUsedInArgOrEnv',
    short: 'Sensitive data should not be used in the ARG or ENV commands',
    explanation:
      'ARG and ENV values are stored in the image config and history, where anyone with the image can read them. Pass secrets with RUN --mount=type=secret instead.',
    url: docs('secrets-used-in-arg-or-env'),
    origin: 'buildkit',
  },
  {
    name: 'InvalidDefaultArgInFrom',
    short: 'Default value for global ARG results in an empty or invalid base image name',
    explanation:
      'Without --build-arg, the ARG defaults make the FROM image reference empty or invalid, so the build only works when the argument is passed. Give the ARG a default value.',
    url: docs('invalid-default-arg-in-from'),
    origin: 'buildkit',
  },
  {
    name: 'FromPlatformFlagConstDisallowed',
    short: 'FROM --platform flag should not use a constant value',
    explanation:
      'A constant --platform pins the stage to one platform and breaks multi-platform builds. Use $BUILDPLATFORM (for build tools) or pass --platform on the command line; or name the stage after the platform.',
    url: docs('from-platform-flag-const-disallowed'),
    origin: 'buildkit',
  },
  {
    name: 'CopyIgnoredFile',
    short: 'Attempting to Copy file that is excluded by .dockerignore',
    explanation:
      'Files matched by .dockerignore are not in the build context, so this COPY/ADD fails or copies nothing. Remove the pattern from .dockerignore or the path from the instruction.',
    url: docs('copy-ignored-file'),
    origin: 'buildkit',
  },
  {
    name: 'InvalidDefinitionDescription',
    short:
      'Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.',
    explanation:
      'A comment directly above a named stage or an ARG is read as its description when it starts with the name. Start the comment with the stage or argument name, or separate it from the instruction with an empty `#` line.',
    url: docs('invalid-definition-description'),
    experimental: true,
    origin: 'buildkit',
  },
  {
    name: 'ExposeProtoCasing',
    short: 'Protocol in EXPOSE instruction should be lowercase',
    explanation: 'Write the protocol as tcp, udp or sctp in lowercase, e.g. EXPOSE 80/tcp.',
    url: docs('expose-proto-casing'),
    origin: 'buildkit',
  },
  {
    name: 'ExposeInvalidFormat',
    short:
      'IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release',
    explanation:
      'EXPOSE documents container ports only; host IPs and host ports are chosen at run time (docker run -p). Write just the port and protocol, e.g. EXPOSE 80/tcp.',
    url: docs('expose-invalid-format'),
    origin: 'buildkit',
  },
  // kiln's own practice rules
  {
    name: 'DependencyInstallAfterCopyAll',
    short: 'Dependencies should be installed before copying the whole source tree',
    explanation:
      'After `COPY . .`, any source change invalidates the cache of the dependency install that follows, so every build reinstalls everything. Copy only the manifests first (e.g. COPY package*.json ./), install, then COPY the rest.',
    origin: 'kiln',
  },
  {
    name: 'AptListsNotCleaned',
    short: 'apt-get install should remove /var/lib/apt/lists in the same RUN',
    explanation:
      'The apt package lists (tens of MB) stay in the layer unless removed in the same RUN. Append `&& rm -rf /var/lib/apt/lists/*`, or use a cache mount for /var/lib/apt.',
    origin: 'kiln',
  },
  {
    name: 'BaseImageUnpinned',
    short: 'Base images should be pinned to a tag or digest',
    explanation:
      'Without a tag (or with :latest) the base image changes underneath you and builds are not reproducible. Pin a version tag, ideally with a digest (image:1.2@sha256:...).',
    origin: 'kiln',
  },
  {
    name: 'FinalStageRunsAsRoot',
    short: 'The final image should not run as root',
    explanation:
      'A container running as root turns any application compromise into root in the container. Create an unprivileged user and switch to it with USER in the final stage.',
    origin: 'kiln',
  },
  {
    name: 'AddInsteadOfCopy',
    short: 'COPY should be used instead of ADD for local files',
    explanation:
      'ADD also fetches URLs and unpacks archives, which makes its effect harder to predict. For plain local files and directories use COPY; keep ADD for URLs, git sources and local tar archives.',
    origin: 'kiln',
  },
  {
    name: 'CopyAllWithoutDockerignore',
    short: 'Copying the whole context without a .dockerignore',
    explanation:
      'Without a .dockerignore, `COPY .` sends and copies everything: .git, node_modules, build output, local secrets. That bloats the image, busts the cache on unrelated changes and can leak credentials. Add a .dockerignore.',
    origin: 'kiln',
  },
];

export const RULES: readonly RuleInfo[] = list;
export const RULES_BY_NAME: ReadonlyMap<string, RuleInfo> = new Map(list.map((r) => [r.name, r]));

export function ruleInfo(name: string): RuleInfo {
  const r = RULES_BY_NAME.get(name);
  if (!r) throw new Error(`unknown check rule ${name}`);
  return r;
}
