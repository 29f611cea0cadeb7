/**
 * Dockerfile text → syntax tree, with the semantics of BuildKit's Dockerfile parser:
 * parser directives, line continuations, comments inside continuations, per-keyword
 * argument splitting, builder flags, ONBUILD triggers and heredocs.
 */
import { KilnError } from '../errors.js';
import type { Directives, Dockerfile, Heredoc, Instruction, ParseWarning } from './ast.js';
import { isGoSpace, ShellLexer, type EscapeToken } from './shell.js';
import { closestWord } from '../suggest.js';

/** Every instruction keyword BuildKit knows, lower-case. */
export const INSTRUCTION_KEYWORDS: readonly string[] = [
  'add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label',
  'maintainer', 'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir',
];

const HEREDOC_KEYWORDS = new Set(['add', 'copy', 'run']);

/** What a keyword's line parser produced: the values BuildKit chains after the keyword. */
interface ParsedArgs {
  args: string[];
  json: boolean;
  onbuild?: ParsedLine;
}

interface ParsedLine {
  keyword: string;
  /** The keyword as written. */
  rawKeyword: string;
  flags: string[];
  args: string[];
  json: boolean;
  onbuild?: ParsedLine;
}

/** A parse failure inside one line; the caller adds the location. */
class LineError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    /** The keyword is not an instruction (BuildKit fails on it only after reading the whole file). */
    readonly unknownInstruction = false,
  ) {
    super(message);
  }
}

// [\t\v\f\r ]+ as in BuildKit
const WHITESPACE_RUN = /[\t\v\f\r ]+/;
const DIRECTIVE = /^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$/;
const HEREDOC_WORD = /^(\d*)<<(-?)([^<]*)$/;
const VALID_DIRECTIVES = new Set(['syntax', 'escape', 'check']);

function trimLeftSpace(s: string): string {
  let i = 0;
  const chars = Array.from(s);
  let off = 0;
  while (i < chars.length && isGoSpace(chars[i] as string)) {
    off += (chars[i] as string).length;
    i++;
  }
  return s.slice(off);
}

function trimRightSpace(s: string): string {
  const chars = Array.from(s);
  let end = chars.length;
  while (end > 0 && isGoSpace(chars[end - 1] as string)) end--;
  return chars.slice(0, end).join('');
}

/** Go's strings.TrimSpace. */
export function trimSpace(s: string): string {
  return trimRightSpace(trimLeftSpace(s));
}

function trimNewline(s: string): string {
  return s.replace(/[\r\n]+$/, '');
}

function isComment(line: string): boolean {
  return trimLeftSpace(trimNewline(line)).startsWith('#');
}

function continuationRegex(escape: EscapeToken): RegExp {
  const e = escape === '\\' ? '\\\\' : '`';
  return new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
}

/** Splits `KEYWORD [--flags] rest` the way BuildKit does. */
export function splitCommand(line: string): { cmd: string; flags: string[]; rest: string } {
  const trimmed = trimSpace(line);
  const m = WHITESPACE_RUN.exec(trimmed);
  if (!m) return { cmd: trimmed, flags: [], rest: '' };
  const cmd = trimmed.slice(0, m.index);
  const { rest, flags } = extractBuilderFlags(trimmed.slice(m.index + m[0].length));
  return { cmd, flags, rest: trimSpace(rest) };
}

/** Leading `--name[=value]` words; a bare `--` ends them and is dropped. */
function extractBuilderFlags(line: string): { rest: string; flags: string[] } {
  const chars = Array.from(line);
  const offsets = [0];
  for (const c of chars) offsets.push((offsets[offsets.length - 1] as number) + c.length);
  const restAt = (pos: number): string => line.slice(offsets[pos]);
  const flags: string[] = [];
  type Phase = 'spaces' | 'word' | 'quote';
  let phase: Phase = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    const atEnd = pos === chars.length;
    let ch = atEnd ? '' : (chars[pos] as string);
    if (phase === 'spaces') {
      if (atEnd) break;
      if (isGoSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === chars.length || chars[pos + 1] !== '-') return { rest: restAt(pos), flags };
      phase = 'word';
    }
    if (atEnd) {
      if (word !== '--' && (blankOK || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return { rest: restAt(pos), flags };
        if (blankOK || word.length > 0) flags.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === chars.length) continue;
        pos++;
        ch = chars[pos] as string;
      }
      word += ch;
      continue;
    }
    // in a quote
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === '\\') {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      pos++;
      ch = chars[pos] as string;
    }
    word += ch;
  }
  return { rest: '', flags };
}

/** Whitespace-separated words, quotes and escapes kept as written (BuildKit parseWords). */
function parseWords(rest: string, escape: EscapeToken): string[] {
  const chars = Array.from(rest);
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    const atEnd = pos === chars.length;
    let ch = atEnd ? '' : (chars[pos] as string);
    if (phase === 'spaces') {
      if (atEnd) break;
      if (isGoSpace(ch)) continue;
      phase = 'word';
    }
    if (atEnd) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (pos + 1 === chars.length) continue; // an escape at the end is dropped
        word += ch;
        pos++;
        ch = chars[pos] as string;
      }
      word += ch;
      continue;
    }
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      pos++;
      word += ch;
      ch = chars[pos] as string;
    }
    word += ch;
  }
  return words;
}

function splitWhitespace(rest: string): string[] {
  if (rest === '') return [];
  return rest.split(/[\t\v\f\r ]+/);
}

const NOT_STRING_ARRAY = 'when using JSON array syntax, arrays must be comprised of strings only';

/** JSON array of strings, or undefined when `rest` is not a valid JSON array. */
function parseJSONArray(rest: string): string[] | undefined {
  const r = trimLeftSpace(rest);
  if (!r.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(r);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  for (const v of value) {
    if (typeof v !== 'string') {
      throw new LineError(NOT_STRING_ARRAY, 'write every element as a "double-quoted string", or use the shell form');
    }
  }
  return value as string[];
}

function parseMaybeJSON(rest: string): ParsedArgs {
  if (rest === '') return { args: [], json: false };
  const arr = parseJSONArray(rest);
  if (arr) return { args: arr, json: true };
  return { args: [rest], json: false };
}

function parseMaybeJSONToList(rest: string): ParsedArgs {
  const arr = parseJSONArray(rest);
  if (arr) return { args: arr, json: true };
  return { args: splitWhitespace(rest), json: false };
}

/** Splits ENV/LABEL arguments; `legacy` is the old `KEY name value` form. */
export function splitKeyValues(rest: string, keyword: string, escape: EscapeToken): { pairs: [string, string][]; legacy: boolean } {
  const KEY = keyword.toUpperCase();
  const words = parseWords(rest, escape);
  if (words.length === 0) return { pairs: [], legacy: false };
  if (!(words[0] as string).includes('=')) {
    const m = WHITESPACE_RUN.exec(rest);
    if (!m) {
      throw new LineError(`${KEY} must have two arguments`, `write ${KEY} ${rest}=<value>`);
    }
    return { pairs: [[rest.slice(0, m.index), rest.slice(m.index + m[0].length)]], legacy: true };
  }
  const pairs: [string, string][] = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq < 0) {
      throw new LineError(
        `Syntax error - can't find = in ${JSON.stringify(w)}. Must be of the form: name=value`,
        'quote values that contain spaces: name="a value"',
      );
    }
    pairs.push([w.slice(0, eq), w.slice(eq + 1)]);
  }
  return { pairs, legacy: false };
}

function parseHealthcheck(rest: string): ParsedArgs {
  const chars = Array.from(rest);
  let sep = 0;
  while (sep < chars.length && !isGoSpace(chars[sep] as string)) sep++;
  let next = sep;
  while (next < chars.length && isGoSpace(chars[next] as string)) next++;
  if (sep === 0) return { args: [], json: false };
  const typ = chars.slice(0, sep).join('');
  const cmd = parseMaybeJSON(chars.slice(next).join(''));
  return { args: [typ, ...cmd.args], json: cmd.json };
}

/** The instruction keyword `word` is a likely typo of (in the case it was written in), as BuildKit suggests it. */
export function suggestKeyword(word: string): string | undefined {
  return closestWord(word, INSTRUCTION_KEYWORDS.map((k) => k.toUpperCase()), false);
}

function parseLine(line: string, escape: EscapeToken): ParsedLine {
  const { cmd, flags, rest } = splitCommand(line);
  const keyword = cmd.toLowerCase();
  let parsed: ParsedArgs;
  switch (keyword) {
    case 'add':
    case 'copy':
    case 'volume':
      parsed = parseMaybeJSONToList(rest);
      break;
    case 'cmd':
    case 'entrypoint':
    case 'run':
    case 'shell':
      parsed = parseMaybeJSON(rest);
      break;
    case 'arg':
      parsed = { args: parseWords(rest, escape), json: false };
      break;
    case 'env':
    case 'label': {
      const { pairs } = splitKeyValues(rest, keyword, escape);
      parsed = { args: pairs.flat(), json: false };
      break;
    }
    case 'expose':
    case 'from':
      parsed = { args: splitWhitespace(rest), json: false };
      break;
    case 'healthcheck':
      parsed = parseHealthcheck(rest);
      break;
    case 'maintainer':
    case 'stopsignal':
    case 'user':
    case 'workdir':
      parsed = { args: rest === '' ? [] : [rest], json: false };
      break;
    case 'onbuild':
      parsed = rest === '' ? { args: [], json: false } : { args: [rest], json: false, onbuild: parseLine(rest, escape) };
      break;
    default: {
      const suggestion = suggestKeyword(cmd);
      throw new LineError(
        suggestion ? `unknown instruction: ${cmd} (did you mean ${suggestion}?)` : `unknown instruction: ${cmd}`,
        suggestion ? `replace ${cmd} with ${suggestion}` : `instructions are ${INSTRUCTION_KEYWORDS.map((k) => k.toUpperCase()).join(', ')}`,
        true,
      );
    }
  }
  return { keyword, rawKeyword: cmd, flags, ...parsed };
}

/** The heredocs a line announces (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`), in order. */
export function heredocsFromLine(line: string): Omit<Heredoc, 'content'>[] {
  const lex = new ShellLexer('\\');
  lex.rawQuotes = true;
  lex.rawEscapes = true;
  lex.skipUnsetEnv = true;
  let words: string[];
  try {
    words = lex.processWords(line, {});
  } catch {
    return [];
  }
  const docs: Omit<Heredoc, 'content'>[] = [];
  for (const w of words) {
    const doc = parseHeredocWord(w);
    if (doc) docs.push(doc);
  }
  return docs;
}

function parseHeredocWord(word: string): Omit<Heredoc, 'content'> | undefined {
  const m = HEREDOC_WORD.exec(word);
  if (!m) return undefined;
  const fd = m[1] as string;
  const chomp = m[2] === '-';
  const rest = m[3] as string;
  if (rest.length === 0) return undefined;
  const lex = new ShellLexer('\\');
  lex.skipUnsetEnv = true;
  const words = lex.processWords(rest, {});
  if (words.length !== 1) return undefined;
  lex.rawQuotes = true;
  const raw = lex.processWords(rest, {});
  if (raw.length !== 1) throw new LineError(`internal lexing of heredoc produced inconsistent results: ${rest}`);
  const name = words[0] as string;
  const quotes = (s: string): number => s.split(/['"]/).length - 1;
  const doc: Omit<Heredoc, 'content'> = { name, expand: quotes(name) === quotes(raw[0] as string), chomp };
  if (fd !== '') doc.fileDescriptor = Number.parseInt(fd, 10);
  return doc;
}

function canContainHeredoc(p: ParsedLine): boolean {
  const target = p.keyword === 'onbuild' && p.onbuild ? p.onbuild : p;
  return HEREDOC_KEYWORDS.has(target.keyword) && !target.json;
}

function toInstruction(p: ParsedLine, original: string, startLine: number, endLine: number, comments: string[]): Instruction {
  const inst: Instruction = {
    keyword: p.keyword,
    flags: p.flags,
    args: p.args,
    json: p.json,
    original,
    heredocs: [],
    startLine,
    endLine,
    comments,
  };
  if (p.onbuild) {
    inst.onbuild = toInstruction(p.onbuild, p.args[0] as string, startLine, endLine, []);
  }
  return inst;
}

/**
 * A UTF-16 Dockerfile (a byte-order mark, or NUL bytes, which no Dockerfile has) read as
 * UTF-8 is noise to the parser: say what it is instead. A UTF-8 byte-order mark is fine.
 */
function rejectUtf16(text: string, fileName: string): void {
  const head = text.slice(0, 2);
  const bom = head === '\ufffd\ufffd' || head === '\ufeff\u0000' || head === '\ufffe';
  if (!bom && !text.includes('\u0000')) return;
  throw new KilnError(bom || /^(?:[^\u0000]\u0000)+/.test(text) || /^(?:\u0000[^\u0000])+/.test(text) ? 'Dockerfile is UTF-16; save it as UTF-8' : 'Dockerfile contains NUL bytes: it is not a text file', {
    location: { file: fileName, line: 1, column: 1 },
    hint: bom ? `convert it, e.g. iconv -f UTF-16 -t UTF-8 ${fileName} > ${fileName}.utf8, or save it from the editor as "UTF-8"` : 'save it as UTF-8 text',
  });
}

/** Parses a Dockerfile. Throws KilnError (with file:line:col) on a syntax error. */
export function parseDockerfile(text: string, fileName = 'Dockerfile'): Dockerfile {
  const { dockerfile, error } = parseDockerfileUntilError(text, fileName);
  if (error) throw error;
  return dockerfile;
}

/**
 * Parses a Dockerfile as far as BuildKit gets before an unknown instruction: the
 * instructions above it, the parser warnings of the whole file, and the error. BuildKit's
 * line parser reads the whole file first (an unknown keyword is only rejected when the
 * instructions are built), so a syntax error further down still wins and is thrown, as
 * is any other syntax error.
 */
export function parseDockerfileUntilError(text: string, fileName = 'Dockerfile'): { dockerfile: Dockerfile; error?: KilnError } {
  rejectUtf16(text, fileName);
  const rawLines = text.split('\n');
  if (rawLines.length > 0 && rawLines[rawLines.length - 1] === '') rawLines.pop();
  if (rawLines.length > 0 && (rawLines[0] as string).startsWith('\ufeff')) rawLines[0] = (rawLines[0] as string).slice(1);
  const lines = rawLines.map(trimNewline);

  const directives: Directives = { escape: '\\' };
  let escape: EscapeToken = '\\';
  let contRe = continuationRegex(escape);
  let directivesDone = false;
  const seenDirectives = new Set<string>();

  const fail = (message: string, line: number, opts: { column?: number; length?: number; hint?: string } = {}): never => {
    throw located(message, line, opts);
  };
  const located = (message: string, line: number, opts: { column?: number; length?: number; hint?: string } = {}): KilnError =>
    new KilnError(message, {
      hint: opts.hint,
      location: {
        file: fileName,
        line: Math.max(1, line),
        column: opts.column ?? 1,
        sourceLine: lines[Math.max(1, line) - 1],
        length: opts.length,
      },
    });

  /** True when the line is a parser directive (then it is no comment of the next instruction). */
  const possibleDirective = (token: string, lineNo: number): boolean => {
    if (directivesDone) return false;
    const m = DIRECTIVE.exec(token);
    if (!m) {
      directivesDone = true;
      return false;
    }
    const key = (m[1] as string).toLowerCase();
    if (!VALID_DIRECTIVES.has(key)) {
      directivesDone = true;
      return false;
    }
    if (seenDirectives.has(key)) {
      fail(`only one ${key} parser directive can be used`, lineNo, { hint: `remove the repeated "# ${key}=" line` });
    }
    seenDirectives.add(key);
    const value = m[2] as string;
    if (key === 'escape') {
      if (value !== '`' && value !== '\\') {
        fail(`invalid escape token '${value}' does not match \` or \\`, lineNo, { hint: 'use "# escape=\\" or "# escape=`"' });
      }
      escape = value as EscapeToken;
      directives.escape = escape;
      contRe = continuationRegex(escape);
    } else if (key === 'syntax') {
      directives.syntax = value;
    } else {
      directives.check = value;
    }
    return true;
  };

  // trims newline and (optionally) leading space, feeds the directive scanner, drops comments
  const processLine = (raw: string, stripLeft: boolean, lineNo: number): { token: string; directive: boolean } => {
    let token = trimNewline(raw);
    if (stripLeft) token = trimLeftSpace(token);
    const directive = possibleDirective(token, lineNo);
    return { token: token.startsWith('#') ? '' : token, directive };
  };

  const trimContinuation = (line: string): { line: string; end: boolean } => {
    if (contRe.test(line)) return { line: line.replace(contRe, '$1'), end: false };
    return { line, end: true };
  };

  const instructions: Instruction[] = [];
  const warnings: ParseWarning[] = [];
  let comments: string[] = [];
  let unknown: KilnError | undefined; // the first unknown instruction
  let idx = 0; // index of the next raw line to read

  while (idx < rawLines.length) {
    const first = rawLines[idx] as string;
    if (isComment(first)) {
      const comment = trimSpace(trimLeftSpace(trimNewline(first)).slice(1));
      if (comment === '') comments = [];
      else comments.push(comment);
    }
    const { token: bytes, directive } = processLine(first, true, idx + 1);
    if (directive) comments.pop();
    idx++;
    const startLine = idx;
    let { line, end } = trimContinuation(bytes);
    if (end && line === '') continue;

    let emptyContinuation = false;
    while (!end && idx < rawLines.length) {
      const raw = rawLines[idx] as string;
      const cont = processLine(raw, false, idx + 1).token;
      idx++;
      if (isComment(raw)) continue;
      if (trimLeftSpace(cont).length === 0) {
        emptyContinuation = true;
        continue;
      }
      const t = trimContinuation(cont);
      end = t.end;
      line += t.line;
    }
    if (emptyContinuation) {
      warnings.push({ message: `Empty continuation line found in: ${line}`, line: idx, rule: 'NoEmptyContinuation' });
    }

    let parsed: ParsedLine;
    try {
      parsed = parseLine(line, escape);
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      const src = lines[startLine - 1] ?? '';
      const col = src.length - trimLeftSpace(src).length + 1;
      const isUnknown = e.unknownInstruction;
      const kw = isUnknown ? splitCommand(line).cmd : '';
      const error = located(e.message, startLine, { column: col, length: isUnknown ? kw.length : undefined, hint: e.hint });
      // an unknown keyword (not one inside ONBUILD) fails after the whole file is read
      if (!isUnknown || INSTRUCTION_KEYWORDS.includes(kw.toLowerCase())) throw error;
      unknown ??= error;
      comments = [];
      continue;
    }

    const heredocs: Heredoc[] = [];
    if (canContainHeredoc(parsed) && line.includes('<<')) {
      let docs: Omit<Heredoc, 'content'>[];
      try {
        docs = heredocsFromLine(line);
      } catch (e) {
        if (e instanceof LineError || e instanceof KilnError) fail(e.message, startLine);
        throw e;
      }
      for (const doc of docs) {
        let content = '';
        let terminated = false;
        while (idx < rawLines.length) {
          const raw = rawLines[idx] as string;
          idx++;
          let candidate = trimNewline(raw);
          if (doc.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === doc.name) {
            terminated = true;
            break;
          }
          content += raw + '\n';
        }
        if (!terminated) {
          fail(`unterminated heredoc ${doc.name}`, startLine, {
            hint: `end the heredoc with a line containing only ${doc.name}`,
          });
        }
        if (doc.chomp) content = content.replace(/^\t+/gm, '');
        heredocs.push({ ...doc, content });
      }
    }

    const inst = toInstruction(parsed, line, startLine, idx, comments);
    inst.heredocs = heredocs;
    if (inst.onbuild) inst.onbuild.heredocs = heredocs;
    if (!unknown) instructions.push(inst);
    comments = [];
  }

  const dockerfile = { fileName, lines, directives, instructions, warnings };
  if (unknown) return { dockerfile, error: unknown };
  if (instructions.length === 0) {
    fail('file with no instructions', rawLines.length, { hint: 'a Dockerfile needs at least a FROM instruction' });
  }
  return { dockerfile };
}
