/** Where in a source file (a Dockerfile) an error points. Lines and columns are 1-based. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
  /** The text of the line, for the caret display. */
  sourceLine?: string;
  /** How many characters the caret underline spans (default 1). */
  length?: number;
}

export interface KilnErrorOptions {
  /** An obvious fix, shown as "hint: ...". */
  hint?: string;
  location?: SourceLocation;
  cause?: unknown;
  /** Process exit code the CLI uses for this error (default 1). */
  exitCode?: number;
  /** More lines shown after the location (e.g. the last output of a failed RUN). */
  detail?: string;
}

/**
 * An error a user can cause (bad Dockerfile, missing file, failed RUN, ...).
 * The CLI prints `format()` and exits non-zero; never a stack trace.
 */
export class KilnError extends Error {
  readonly hint?: string;
  readonly location?: SourceLocation;
  readonly exitCode: number;
  readonly detail?: string;

  constructor(message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KilnError';
    this.hint = options.hint;
    this.location = options.location;
    this.exitCode = options.exitCode ?? 1;
    this.detail = options.detail;
  }

  /** "file:line:col: message", the offending line with a caret, then the hint. */
  format(): string {
    const out: string[] = [];
    const loc = this.location;
    out.push(loc ? `${loc.file}:${loc.line}:${loc.column}: ${this.message}` : this.message);
    if (loc?.sourceLine !== undefined) {
      const gutter = String(loc.line);
      out.push(` ${gutter} | ${loc.sourceLine}`);
      const pad = ' '.repeat(gutter.length);
      const caretCol = Math.max(1, loc.column);
      out.push(` ${pad} | ${' '.repeat(caretCol - 1)}${'^'.repeat(Math.max(1, loc.length ?? 1))}`);
    }
    if (this.detail) out.push(this.detail);
    if (this.hint) out.push(`hint: ${this.hint}`);
    return out.join('\n');
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}
