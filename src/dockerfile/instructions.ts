/**
 * The typed instruction layer, as BuildKit's instructions package shapes it: the parser's
 * generic Instruction (keyword, flags, words) becomes a command with named fields. Which
 * flags each instruction takes, and how its words split, is said here and nowhere else;
 * the build (frontend/) and the checks (dockerfile/checks/) read instructions through it.
 *
 * Two ways in: `parseCommand` validates (unknown or repeated flags, missing arguments, a
 * bad HEALTHCHECK duration...) and throws a KilnError at file:line:col, for the build; the
 * small readers below it (`argPairs`, `keyValuePairs`, `fromWords`, `flagValue`...) never
 * throw, for the checks, which report on what they can read. Words stay as written:
 * variables are expanded when the instruction is dispatched, in its stage's scope.
 */
import { KilnError, type SourceLocation } from '../errors.js';
import type { Heredoc, Instruction } from './ast.js';
import { withSuggestion } from '../suggest.js';

/** What error locations are made from: the file name and its lines (a Dockerfile is one). */
export interface SourceText {
  fileName: string;
  lines: string[];
}

/** The location of an instruction (or of `needle` inside its first line) for error messages. */
export function locate(inst: Instruction, file: string, lines: string[], needle?: string): SourceLocation {
  const sourceLine = lines[inst.startLine - 1] ?? inst.original;
  let column = sourceLine.length - sourceLine.trimStart().length + 1;
  let length = inst.keyword.length;
  if (needle) {
    const at = sourceLine.indexOf(needle);
    if (at !== -1) {
      column = at + 1;
      length = needle.length;
    }
  }
  return { file, line: inst.startLine, column, sourceLine, length };
}

function fail(src: SourceText, inst: Instruction, message: string, hint?: string, needle?: string): KilnError {
  return new KilnError(message, { location: locate(inst, src.fileName, src.lines, needle), hint });
}

// ---------------------------------------------------------------------------
// flags

export type FlagKind = 'string' | 'bool' | 'strings';

/** The flags each instruction accepts (an instruction not listed takes none). */
export const INSTRUCTION_FLAGS: Readonly<Record<string, Readonly<Record<string, FlagKind>>>> = {
  from: { platform: 'string' },
  run: { mount: 'strings', network: 'string', security: 'string' },
  copy: { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' },
  add: { chown: 'string', chmod: 'string', link: 'bool', checksum: 'string', 'keep-git-dir': 'bool', exclude: 'strings', unpack: 'bool' },
  healthcheck: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};

export interface ParsedFlags {
  string(name: string): string | undefined;
  bool(name: string): boolean;
  strings(name: string): string[];
}

/**
 * Parses an instruction's `--name=value` flags against the flags its keyword accepts
 * (INSTRUCTION_FLAGS). An unknown flag, a missing value or a repeated single-valued flag is
 * an error at the flag.
 */
export function parseFlags(inst: Instruction, src: SourceText): ParsedFlags {
  const accepted = INSTRUCTION_FLAGS[inst.keyword] ?? {};
  const values = new Map<string, string[]>();
  for (const raw of inst.flags) {
    const body = raw.replace(/^--/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const value = eq === -1 ? undefined : body.slice(eq + 1);
    const kind = accepted[name];
    if (!kind) {
      const known = Object.keys(accepted);
      throw fail(
        src,
        inst,
        withSuggestion(`unknown flag: --${name}`, name, known),
        known.length ? `${inst.keyword.toUpperCase()} accepts ${known.map((k) => `--${k}`).join(', ')}` : `${inst.keyword.toUpperCase()} takes no flags`,
        raw,
      );
    }
    if (kind === 'bool') {
      if (value !== undefined && value !== 'true' && value !== 'false') {
        throw fail(src, inst, `invalid value for --${name}: expecting true or false, got "${value}"`, `write --${name} (or --${name}=false)`, raw);
      }
      values.set(name, [value ?? 'true']);
      continue;
    }
    if (value === undefined) throw fail(src, inst, `missing a value on flag: --${name}`, `write --${name}=VALUE`, raw);
    const prev = values.get(name);
    if (prev && kind === 'string') throw fail(src, inst, `duplicate flag specified: --${name}`, `give --${name} once`, raw);
    values.set(name, [...(prev ?? []), value]);
  }
  return {
    string: (n) => values.get(n)?.[0],
    bool: (n) => values.get(n)?.[0] === 'true',
    strings: (n) => values.get(n) ?? [],
  };
}

/** The value of `--name=value` (the last one wins), `''` for a bare `--name`, undefined when absent. Never throws. */
export function flagValue(inst: Instruction, name: string): string | undefined {
  let out: string | undefined;
  for (const f of inst.flags) {
    if (f === `--${name}`) out = '';
    else if (f.startsWith(`--${name}=`)) out = f.slice(name.length + 3);
  }
  return out;
}

/** Every value of a repeatable `--name=value`, in order. Never throws. */
export function flagValues(inst: Instruction, name: string): string[] {
  return inst.flags.filter((f) => f.startsWith(`--${name}=`)).map((f) => f.slice(name.length + 3));
}

// ---------------------------------------------------------------------------
// words, read without validation

export interface KeyValue {
  key: string;
  value?: string;
}

/** ARG words: "K=V" or "K". */
export function argPairs(inst: Instruction): KeyValue[] {
  return inst.args.map(splitArg);
}

/** One ARG word: "K=V" or "K". */
export function splitArg(word: string): KeyValue {
  const eq = word.indexOf('=');
  return eq === -1 ? { key: word } : { key: word.slice(0, eq), value: word.slice(eq + 1) };
}

/** ENV/LABEL: the parser's [k1, v1, k2, v2, ...] as pairs. */
export function keyValuePairs(inst: Instruction): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  for (let i = 0; i + 1 < inst.args.length; i += 2) out.push({ key: inst.args[i], value: inst.args[i + 1] });
  return out;
}

/** True when ENV/LABEL uses the legacy `KEY value` form (first word without '='). */
export function isLegacyKeyValue(inst: Instruction): boolean {
  const rest = inst.original.replace(/^\s*\S+\s*/, '');
  const first = /^\S*/.exec(rest)?.[0] ?? '';
  return rest !== '' && !first.includes('=');
}

/** The keyword as written (original casing). */
export function writtenKeyword(inst: Instruction): string {
  const m = /^\s*(\S+)/.exec(inst.original);
  return m ? m[1] : inst.keyword;
}

/** FROM's words: the image, and the stage name after AS (lowercased) when the form is `FROM image AS name`. */
export function fromWords(inst: Instruction): { image: string; stageName?: string; asWord?: string; stageNameAsWritten?: string } {
  const a = inst.args;
  const named = a.length === 3 && a[1].toLowerCase() === 'as';
  return named ? { image: a[0], stageName: a[2].toLowerCase(), asWord: a[1], stageNameAsWritten: a[2] } : { image: a[0] ?? '' };
}

/** A COPY/ADD source word that names one of the instruction's heredocs (`<<EOF`, `<<-"EOF"`, `3<<EOF`): its heredoc. */
export function heredocSource(inst: Instruction, word: string): Heredoc | undefined {
  const m = /^\d*<<-?(["']?)([^\s"']+)\1$/.exec(word);
  return m ? inst.heredocs.find((h) => h.name === m[2]) : undefined;
}

/** The instruction as progress shows it: "RUN make", `CMD ["a", "b"]`. */
export function displayText(inst: Instruction): string {
  return `${inst.keyword.toUpperCase()} ${inst.json ? JSON.stringify(inst.args).replace(/","/g, '", "') : inst.args.join(' ')}`.trim();
}

// ---------------------------------------------------------------------------
// typed commands

export interface FromCommand {
  keyword: 'from';
  inst: Instruction;
  /** Base image (or stage) as written, unexpanded. */
  image: string;
  /** `AS name`, lowercased. */
  stageName?: string;
  /** --platform as written, unexpanded. */
  platform?: string;
}

export interface ArgCommand {
  keyword: 'arg';
  inst: Instruction;
  args: KeyValue[];
}

export interface KeyValueCommand {
  keyword: 'env' | 'label';
  inst: Instruction;
  /** Unexpanded keys and values. */
  pairs: Array<{ key: string; value: string }>;
  /** Written `ENV key value` (one pair, the rest of the line is the value). */
  legacy: boolean;
}

export interface RunCommand {
  keyword: 'run';
  inst: Instruction;
  /** Exec form: the JSON items, run as they are. */
  json: boolean;
  /** Exec form: the argv; shell form: one string, the command line (heredoc words included). */
  command: string[];
  heredocs: Heredoc[];
  /** --mount values as written (parsed at dispatch, in the stage's scope: frontend/mounts.ts). */
  mounts: string[];
  network: 'default' | 'none' | 'host';
  security?: 'sandbox' | 'insecure';
}

export interface CopySourceWord {
  /** The word as written. */
  word: string;
  /** Set when the word names a heredoc of this instruction. */
  heredoc?: Heredoc;
}

export interface CopyCommand {
  keyword: 'copy' | 'add';
  inst: Instruction;
  sources: CopySourceWord[];
  dest: string;
  heredocs: Heredoc[];
  /** COPY --from as written. */
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  /** ADD --checksum as written (unexpanded). */
  checksum?: string;
  /** ADD --keep-git-dir. */
  keepGitDir: boolean;
  /** ADD --unpack: undefined when not given. */
  unpack?: boolean;
}

export interface ExecFormCommand {
  keyword: 'cmd' | 'entrypoint';
  inst: Instruction;
  json: boolean;
  /** Exec form: the argv; shell form: one string. */
  args: string[];
}

export interface ShellCommand {
  keyword: 'shell';
  inst: Instruction;
  shell: string[];
}

export interface ExposeCommand {
  keyword: 'expose';
  inst: Instruction;
  /** Port words as written ("80/tcp", "$PORT"). */
  ports: string[];
}

export interface VolumeCommand {
  keyword: 'volume';
  inst: Instruction;
  json: boolean;
  paths: string[];
}

/** USER, WORKDIR, STOPSIGNAL, MAINTAINER: one value, the rest of the line. */
export interface ValueCommand {
  keyword: 'user' | 'workdir' | 'stopsignal' | 'maintainer';
  inst: Instruction;
  value: string;
}

export type HealthcheckCommand =
  | { keyword: 'healthcheck'; inst: Instruction; test: 'none' }
  | {
      keyword: 'healthcheck';
      inst: Instruction;
      test: 'cmd';
      json: boolean;
      /** Exec form: the argv; shell form: one string. */
      command: string[];
      /** Durations in nanoseconds, when given. */
      interval?: number;
      timeout?: number;
      startPeriod?: number;
      startInterval?: number;
      /** Given and not 0. */
      retries?: number;
    };

export interface OnbuildCommand {
  keyword: 'onbuild';
  inst: Instruction;
  trigger: Instruction;
  /** What the image config records: the trigger as written, heredoc bodies appended. */
  expression: string;
}

export type Command =
  | FromCommand
  | ArgCommand
  | KeyValueCommand
  | RunCommand
  | CopyCommand
  | ExecFormCommand
  | ShellCommand
  | ExposeCommand
  | VolumeCommand
  | ValueCommand
  | HealthcheckCommand
  | OnbuildCommand;

/** Instructions BuildKit rejects without arguments, and what a use looks like. */
export const NEEDS_ARGUMENTS: Readonly<Record<string, string>> = {
  env: 'ENV NAME=value',
  label: 'LABEL key=value',
  arg: 'ARG NAME[=default]',
  expose: 'EXPOSE 80/tcp',
  volume: 'VOLUME /data',
  healthcheck: 'HEALTHCHECK CMD command, or HEALTHCHECK NONE',
};

const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

/**
 * FROM's words, validated: one word, or three with AS and a valid stage name. Flags are not
 * read (parseCommand does that when the stage is built).
 */
export function parseFromWords(inst: Instruction, src: SourceText): { image: string; stageName?: string } {
  const args = inst.args;
  if (args.length === 1) return { image: args[0] };
  if (args.length === 3 && args[1].toLowerCase() === 'as') {
    const name = args[2].toLowerCase();
    if (!STAGE_NAME.test(name)) {
      throw fail(
        src,
        inst,
        `invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`,
        'start the name with a letter; use letters, digits, "-", "_" and "."',
        args[2],
      );
    }
    return { image: args[0], stageName: name };
  }
  throw fail(src, inst, 'FROM requires either one or three arguments: FROM <image> [AS <name>]', 'write FROM busybox:latest or FROM busybox:latest AS build');
}

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration, returning nanoseconds, or undefined when invalid. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    total += Number(m[1]) * UNIT_NS[m[2]];
    pos = re.lastIndex;
  }
  if (pos === 0 || pos !== text.length) return undefined;
  return Math.round(total);
}

/**
 * The typed command for an instruction, validated as BuildKit's instructions.Parse does
 * before dispatch: the arguments an instruction needs, its flags, and what can be checked
 * without the stage's variables. Throws a KilnError at the instruction (or the flag).
 */
export function parseCommand(inst: Instruction, src: SourceText): Command {
  if (inst.keyword === 'from') return parseFrom(inst, src);
  return parseStepCommand(inst, src);
}

/** FROM, validated: its words (parseFromWords) and its flags. */
export function parseFrom(inst: Instruction, src: SourceText): FromCommand {
  const { image, stageName } = parseFromWords(inst, src);
  return { keyword: 'from', inst, image, stageName, platform: parseFlags(inst, src).string('platform') };
}

/** An instruction inside a stage (or an ONBUILD trigger), validated: anything but FROM, which starts a stage. */
export function parseStepCommand(inst: Instruction, src: SourceText): Exclude<Command, FromCommand> {
  const usage = NEEDS_ARGUMENTS[inst.keyword];
  if (usage !== undefined && inst.args.length === 0) {
    throw fail(src, inst, `${inst.keyword.toUpperCase()} requires at least one argument`, `write ${usage}`);
  }
  if (inst.keyword === 'from') throw fail(src, inst, 'FROM is not allowed here', 'FROM starts a stage; it cannot be triggered or nested');
  const flags = parseFlags(inst, src);
  switch (inst.keyword) {
    case 'arg':
      return { keyword: 'arg', inst, args: argPairs(inst) };
    case 'env':
    case 'label':
      return { keyword: inst.keyword, inst, pairs: keyValuePairs(inst), legacy: isLegacyKeyValue(inst) };
    case 'user':
    case 'workdir':
    case 'stopsignal':
      return { keyword: inst.keyword, inst, value: inst.args[0] ?? '' };
    case 'maintainer':
      return { keyword: 'maintainer', inst, value: inst.args.join(' ') };
    case 'expose':
      return { keyword: 'expose', inst, ports: [...inst.args] };
    case 'volume':
      return { keyword: 'volume', inst, json: inst.json, paths: [...inst.args] };
    case 'cmd':
    case 'entrypoint':
      return { keyword: inst.keyword, inst, json: inst.json, args: [...inst.args] };
    case 'shell':
      if (!inst.json) {
        throw fail(src, inst, 'SHELL requires the arguments to be in JSON form', `write SHELL ${JSON.stringify(inst.args.join(' ').split(/\s+/).filter(Boolean))}`);
      }
      if (inst.args.length === 0) throw fail(src, inst, 'SHELL requires at least one argument', 'write SHELL ["/bin/sh", "-c"]');
      return { keyword: 'shell', inst, shell: [...inst.args] };
    case 'healthcheck':
      return parseHealthcheck(inst, src, flags);
    case 'onbuild':
      return parseOnbuild(inst, src);
    case 'run':
      return parseRun(inst, src, flags);
    case 'copy':
    case 'add':
      return {
        keyword: inst.keyword,
        inst,
        sources: inst.args.slice(0, -1).map((word) => ({ word, heredoc: heredocSource(inst, word) })),
        dest: inst.args[inst.args.length - 1] ?? '',
        heredocs: inst.heredocs,
        from: flags.string('from'),
        chown: flags.string('chown'),
        chmod: flags.string('chmod'),
        link: flags.bool('link'),
        parents: flags.bool('parents'),
        exclude: flags.strings('exclude'),
        checksum: flags.string('checksum'),
        keepGitDir: flags.bool('keep-git-dir'),
        unpack: flags.string('unpack') === undefined ? undefined : flags.bool('unpack'),
      };
    default:
      throw fail(src, inst, `unknown instruction: ${inst.keyword.toUpperCase()}`);
  }
}

function parseRun(inst: Instruction, src: SourceText, flags: ParsedFlags): RunCommand {
  const network = flags.string('network') ?? 'default';
  if (network !== 'default' && network !== 'none' && network !== 'host') {
    throw fail(src, inst, `unsupported network mode "${network}"`, 'use --network=default, none or host', '--network');
  }
  const security = flags.string('security');
  if (security !== undefined && security !== 'sandbox' && security !== 'insecure') {
    throw fail(src, inst, `unsupported security mode "${security}"`, 'use --security=sandbox or --security=insecure (the latter with --allow security.insecure)', '--security');
  }
  return { keyword: 'run', inst, json: inst.json, command: [...inst.args], heredocs: inst.heredocs, mounts: flags.strings('mount'), network, security };
}

function parseHealthcheck(inst: Instruction, src: SourceText, flags: ParsedFlags): HealthcheckCommand {
  const first = (inst.args[0] ?? '').toUpperCase();
  if (first === 'NONE') {
    if (inst.args.length > 1 || inst.flags.length > 0) {
      throw fail(src, inst, 'HEALTHCHECK NONE takes no arguments', 'write just HEALTHCHECK NONE to disable the inherited check');
    }
    return { keyword: 'healthcheck', inst, test: 'none' };
  }
  if (first !== 'CMD') {
    throw fail(src, inst, `Unknown type "${inst.args[0] ?? ''}" in HEALTHCHECK (try CMD)`, 'write HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE', inst.args[0] || undefined);
  }
  const command = inst.args.slice(1);
  if (command.length === 0 || (command.length === 1 && command[0].trim() === '')) {
    throw fail(src, inst, 'HEALTHCHECK CMD requires a command', 'write HEALTHCHECK CMD curl -f http://localhost/ || exit 1');
  }
  const duration = (name: string): number | undefined => {
    const raw = flags.string(name);
    if (raw === undefined) return undefined;
    const ns = parseDuration(raw);
    if (ns === undefined) {
      throw fail(src, inst, `invalid duration for --${name}: "${raw}"`, 'use a Go duration: a number with a unit, such as 30s, 1m30s or 500ms', `--${name}`);
    }
    if (ns !== 0 && ns < 1_000_000) throw fail(src, inst, `Interval "${name}" cannot be less than 1ms`, 'use 1ms or more, or 0 for the default', `--${name}`);
    if (ns < 0) throw fail(src, inst, `--${name} cannot be negative`, undefined, `--${name}`);
    return ns;
  };
  const interval = duration('interval');
  const timeout = duration('timeout');
  const startPeriod = duration('start-period');
  const startInterval = duration('start-interval');
  let retries: number | undefined;
  const rawRetries = flags.string('retries');
  if (rawRetries !== undefined) {
    if (!/^[+-]?\d+$/.test(rawRetries)) throw fail(src, inst, `invalid value for --retries: "${rawRetries}"`, 'use a whole number such as 3', '--retries');
    const n = Number(rawRetries);
    if (n < 0) throw fail(src, inst, '--retries cannot be negative', 'use 0 (the default) or more', '--retries');
    if (n !== 0) retries = n;
  }
  return { keyword: 'healthcheck', inst, test: 'cmd', json: inst.json, command, interval, timeout, startPeriod, startInterval, retries };
}

function parseOnbuild(inst: Instruction, src: SourceText): OnbuildCommand {
  const trigger = inst.onbuild;
  if (!trigger) throw fail(src, inst, 'ONBUILD requires an instruction to trigger', 'write ONBUILD RUN ... (or another instruction)');
  if (trigger.keyword === 'onbuild') {
    throw fail(src, inst, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", 'write ONBUILD once, followed by the instruction to trigger', trigger.keyword.toUpperCase());
  }
  if (trigger.keyword === 'from' || trigger.keyword === 'maintainer') {
    throw fail(
      src,
      inst,
      `${trigger.keyword.toUpperCase()} isn't allowed as an ONBUILD trigger`,
      'ONBUILD can trigger any instruction but FROM, MAINTAINER and ONBUILD',
      trigger.keyword.toUpperCase(),
    );
  }
  // A heredoc trigger keeps its bodies, so the child build can parse it whole.
  const expression = inst.original.replace(/^\s*onbuild\s*/i, '') + inst.heredocs.map((h) => `\n${h.content}${h.name}`).join('');
  return { keyword: 'onbuild', inst, trigger, expression };
}
