import type { KilnError } from '../../errors.js';

/** One rule violation found by `runChecks`. Lines are 1-based. */
export interface CheckFinding {
  /** Rule id, e.g. "JSONArgsRecommended" (BuildKit's names) or "AptListsNotCleaned" (kiln's). */
  rule: string;
  /** What is wrong here, worded like BuildKit's message for the rule. */
  message: string;
  line: number;
  endLine: number;
  column?: number;
  /** "error" when the check configuration turns findings into errors (`error=true`). */
  severity: 'warning' | 'error';
  url?: string;
  /** Why it matters and what to do. */
  description: string;
}

/** The parts of a base image's config some rules use (env for UndefinedVar, user for FinalStageRunsAsRoot). */
export interface BaseImageConfig {
  env?: string[];
  user?: string;
}

export interface CheckOptions {
  /** Rules to skip, in addition to the Dockerfile's `# check=skip=...`; "all" skips every non-experimental rule. */
  skip?: string[];
  /** Overrides the directive's `error=`: findings make the check fail. */
  errorOnWarnings?: boolean;
  /** Experimental rules to enable (BuildKit's `experimental=`); "all" enables every experimental rule. */
  experimental?: string[];
  /** `--build-arg` values. BUILDKIT_DOCKERFILE_CHECK here replaces the `# check=` directive, as in BuildKit. */
  buildArgs?: Record<string, string>;
  /** The stage being built (`--target`); default the last stage. Dispatch-time rules then only see reachable stages. */
  target?: string;
  /** Target platform ("linux/amd64"); default the host's. */
  platform?: string;
  /** Whether the build context has a .dockerignore file; `undefined` means unknown (context rules stay quiet). */
  hasDockerignore?: boolean;
  /** The .dockerignore patterns (lines of the file), for CopyIgnoredFile. */
  dockerignorePatterns?: string[];
  /** Run only the rules BuildKit runs before a parse error (the Dockerfile holds the instructions above it). */
  parseTimeOnly?: boolean;
  /** Config of an external base image, when the caller has it (after resolving); undefined when unknown. */
  imageConfig?: (ref: string) => BaseImageConfig | undefined;
}

export interface CheckResult {
  findings: CheckFinding[];
  /** True when the configuration says findings are errors (`error=true`) and there are findings, or on `error`. */
  failed: boolean;
  /** The error the build fails with where the checks stop as BuildKit's do (a FROM whose base name or platform is empty). */
  error?: KilnError;
}

export type CheckFormat = 'text' | 'json' | 'sarif';
