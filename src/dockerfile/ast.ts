/**
 * The Dockerfile syntax tree, as BuildKit's parser shapes it: one Instruction per
 * instruction line (continuations joined), arguments split the way BuildKit splits
 * them for that instruction, nothing expanded yet.
 */

export interface Heredoc {
  /** Delimiter word, e.g. "EOF". */
  name: string;
  /** Body text, lines joined with "\n", ending with "\n" when non-empty. Tabs already stripped for <<-. */
  content: string;
  /** False when the delimiter was quoted ('EOF' or "EOF"): no expansion inside. */
  expand: boolean;
  /** True for <<- (leading tabs stripped). */
  chomp: boolean;
  /** File descriptor prefix such as 3 in `3<<EOF`, when given. */
  fileDescriptor?: number;
}

export interface Instruction {
  /** Instruction keyword, lower-cased: "from", "run", "copy", ... */
  keyword: string;
  /** Flags exactly as written, e.g. ["--from=build", "--chown=1:1"] (no "--" terminator). */
  flags: string[];
  /**
   * Arguments as BuildKit's parser splits them for this keyword (the values its debug
   * dump prints): JSON form → the array items; ENV/LABEL → [k1, v1, k2, v2, ...];
   * shell form RUN/CMD/ENTRYPOINT → a single string; FROM/COPY/... → whitespace-split words.
   * For ONBUILD the args hold the trigger instruction text and `onbuild` holds it parsed.
   */
  args: string[];
  /** True when written in JSON (exec) form. */
  json: boolean;
  /** The instruction's full text as written (continuations joined as BuildKit does). */
  original: string;
  /** Heredocs attached to this instruction, in order. */
  heredocs: Heredoc[];
  /** 1-based first and last line in the file. */
  startLine: number;
  endLine: number;
  /** Comment lines directly above the instruction, without '#'. */
  comments: string[];
  /** For ONBUILD: the trigger, parsed. */
  onbuild?: Instruction;
}

export interface Directives {
  syntax?: string;
  escape: '\\' | '`';
  /** Raw value of `# check=...`. */
  check?: string;
}

export interface ParseWarning {
  message: string;
  line: number;
  /** Rule name when the warning corresponds to a build-check rule. */
  rule?: string;
}

export interface Dockerfile {
  /** The file name used in error messages ("Dockerfile" or the -f path). */
  fileName: string;
  /** The source split into lines (no line terminators), for caret displays. */
  lines: string[];
  directives: Directives;
  instructions: Instruction[];
  warnings: ParseWarning[];
}
