/**
 * Shell-word expansion with BuildKit's semantics (its `shell.Lex`): quotes, escapes,
 * `$var`, `${var}` and the `${var<modifier>word}` forms, plus word splitting for
 * instructions that take several words. Nothing is executed: `$(...)` and backquotes
 * are plain text.
 */
import { KilnError } from '../errors.js';

export type EscapeToken = '\\' | '`';

export interface ShellOptions {
  escapeToken?: EscapeToken;
  /** Keep quote characters in the result (BuildKit RawQuotes). */
  rawQuotes?: boolean;
  /** Keep escape tokens in the result (BuildKit RawEscapes). */
  rawEscapes?: boolean;
  /** Leave references to unset variables as written (BuildKit SkipUnsetEnv). */
  skipUnsetEnv?: boolean;
  /** Treat quotes as ordinary characters (BuildKit SkipProcessQuotes). */
  skipProcessQuotes?: boolean;
}

export interface ProcessWordResult {
  result: string;
  /** Variables referenced that were set. */
  matched: Set<string>;
  /** Variables referenced that were not set. */
  unmatched: Set<string>;
}

/** Go's unicode.IsSpace. */
export function isGoSpace(ch: string): boolean {
  switch (ch) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ': case '\u0085': case '\u00a0':
      return true;
  }
  const cp = ch.codePointAt(0) ?? 0;
  if (cp < 0x1680) return false;
  return cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 ||
    cp === 0x202f || cp === 0x205f || cp === 0x3000;
}

const LETTER = /^\p{L}$/u;
const DIGIT = /^\p{Nd}$/u;

function isSpecialParam(ch: string): boolean {
  return ch === '@' || ch === '*' || ch === '#' || ch === '?' || ch === '-' || ch === '$' || ch === '!' || ch === '0';
}

/** Thrown inside the lexer; wrapped into a KilnError naming the word. */
class ShellSyntaxError extends Error {
  /** The stop character the word ended before finding, for "unexpected end of statement". */
  constructor(message: string, readonly unterminated?: string) {
    super(message);
  }
}

class WordSplitter {
  word = '';
  words: string[] = [];
  inWord = false;

  addChar(ch: string): void {
    if (isGoSpace(ch)) {
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class ShellWord {
  private readonly chars: string[];
  private pos = 0;
  private rawEscapes: boolean;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();

  constructor(
    word: string,
    private readonly env: Record<string, string>,
    private readonly opts: Required<ShellOptions>,
  ) {
    this.chars = Array.from(word);
    this.rawEscapes = opts.rawEscapes;
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private next(): string | undefined {
    const ch = this.chars[this.pos];
    if (ch !== undefined) this.pos++;
    return ch;
  }
  private atEOF(): boolean {
    return this.pos >= this.chars.length;
  }

  run(): { result: string; words: string[] } {
    return this.processStopOn(undefined, this.opts.rawEscapes);
  }

  private processStopOn(stopChar: string | undefined, rawEscapes: boolean): { result: string; words: string[] } {
    let result = '';
    const words = new WordSplitter();
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      const esc = this.opts.escapeToken;
      while (!this.atEOF()) {
        const ch = this.peek() as string;
        if (stopChar !== undefined && ch === stopChar) {
          this.next();
          return { result, words: words.getWords() };
        }
        if (ch === '$') {
          const tmp = this.processDollar();
          result += tmp;
          words.addString(tmp);
        } else if (!this.opts.skipProcessQuotes && (ch === "'" || ch === '"')) {
          const tmp = ch === "'" ? this.processSingleQuote() : this.processDoubleQuote();
          result += tmp;
          words.addRawString(tmp);
        } else {
          let c = this.next() as string;
          if (c === esc) {
            if (this.rawEscapes) {
              words.addRawChar(c);
              result += c;
            }
            const n = this.next();
            if (n === undefined) break;
            c = n;
            words.addRawChar(c);
          } else {
            words.addChar(c);
          }
          result += c;
        }
      }
      if (stopChar !== undefined) {
        throw new ShellSyntaxError(`unexpected end of statement while looking for matching ${stopChar}`, stopChar);
      }
      return { result, words: words.getWords() };
    } finally {
      this.rawEscapes = saved;
    }
  }

  private processSingleQuote(): string {
    let result = '';
    const open = this.next() as string;
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new ShellSyntaxError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (this.opts.rawQuotes) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    let result = '';
    const open = this.next() as string;
    if (this.opts.rawQuotes) result += open;
    const esc = this.opts.escapeToken;
    for (;;) {
      const p = this.peek();
      if (p === undefined) throw new ShellSyntaxError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        this.next();
        if (this.opts.rawQuotes) result += p;
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next() as string;
      if (ch === esc) {
        if (this.rawEscapes) result += ch;
        const after = this.peek();
        if (after === undefined) continue; // an escape at the very end is dropped
        if (after === '"' || after === '$' || after === esc) ch = this.next() as string;
      }
      result += ch;
    }
  }

  private getEnv(name: string): { value: string; set: boolean } {
    if (Object.prototype.hasOwnProperty.call(this.env, name)) {
      this.matched.add(name);
      return { value: this.env[name] as string, set: true };
    }
    this.unmatched.add(name);
    return { value: '', set: false };
  }

  private processName(): string {
    let name = '';
    while (!this.atEOF()) {
      const ch = this.peek() as string;
      if (name.length === 0 && DIGIT.test(ch)) {
        while (!this.atEOF() && DIGIT.test(this.peek() as string)) name += this.next();
        return name;
      }
      if (name.length === 0 && isSpecialParam(ch)) {
        this.next();
        return ch;
      }
      if (!LETTER.test(ch) && !DIGIT.test(ch) && ch !== '_') break;
      name += this.next();
    }
    return name;
  }

  private processDollar(): string {
    this.next(); // '$'
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const { value, set } = this.getEnv(name);
      if (!set && this.opts.skipUnsetEnv) return '$' + name;
      return value;
    }
    this.next(); // '{'
    const first = this.peek();
    if (first === undefined) throw new ShellSyntaxError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new ShellSyntaxError('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.next();
    if (ch === undefined) throw new ShellSyntaxError("syntax error: missing '}'");
    let chs = ch;

    if (ch === '}') {
      const { value, set } = this.getEnv(name);
      if (!set && this.opts.skipUnsetEnv) return '${' + name + '}';
      return value;
    }

    if (ch === '/') {
      const replaceAll = this.peek() === '/';
      if (replaceAll) this.next();
      const pattern = this.stopOnOrMissing('/', true, "syntax error: missing '/' in ${}");
      const replacement = this.stopOnOrMissing('}', true, "syntax error: missing '}'");
      const { value, set } = this.getEnv(name);
      if (this.opts.skipUnsetEnv && !set) return '${' + name + '/' + pattern + '/' + replacement + '}';
      return replacePattern(value, pattern, unescape(replacement, this.opts.escapeToken), replaceAll, this.opts.escapeToken);
    }

    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      if (ch === undefined) throw new ShellSyntaxError("syntax error: missing '}'");
      chs += ch;
    } else if (!['+', '-', '?', '#', '%'].includes(ch)) {
      throw new ShellSyntaxError(`unsupported modifier (${chs}) in substitution`);
    }
    const isPattern = ch === '#' || ch === '%';
    if (nullIsUnset && isPattern) throw new ShellSyntaxError(`unsupported modifier (${chs}) in substitution`);
    let word = this.stopOnOrMissing('}', isPattern, "syntax error: missing '}'");

    const { value, set } = this.getEnv(name);
    if (this.opts.skipUnsetEnv && !set) return '${' + name + chs + word + '}';

    switch (ch) {
      case '-':
        return !set || (nullIsUnset && value === '') ? word : value;
      case '+':
        return !set || (nullIsUnset && value === '') ? '' : word;
      case '?':
        if (!set) throw new ShellSyntaxError(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
        if (nullIsUnset && value === '') throw new ShellSyntaxError(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
        return value;
      case '#':
      case '%': {
        let greedy = false;
        if (word.startsWith(ch)) {
          greedy = true;
          word = word.slice(1);
        }
        return ch === '#'
          ? trimPrefix(value, word, greedy, this.opts.escapeToken)
          : trimSuffix(value, word, greedy, this.opts.escapeToken);
      }
      default:
        throw new ShellSyntaxError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  private stopOnOrMissing(stop: string, rawEscapes: boolean, missing: string): string {
    try {
      return this.processStopOn(stop, rawEscapes).result;
    } catch (e) {
      if (e instanceof ShellSyntaxError && this.atEOF() && e.unterminated === stop) {
        throw new ShellSyntaxError(missing);
      }
      throw e;
    }
  }
}

/** Removes escape tokens (each `\x` becomes `x`). */
function unescape(s: string, esc: string): string {
  let out = '';
  const chars = Array.from(s);
  for (let i = 0; i < chars.length; i++) {
    if (chars[i] === esc && i + 1 < chars.length) i++;
    out += chars[i];
  }
  return out;
}

function regexLiteral(ch: string): string {
  return /^[A-Za-z0-9_]$/.test(ch) ? ch : `\\u{${(ch.codePointAt(0) as number).toString(16)}}`;
}

/**
 * Shell glob (`*`, `?`, `[...]`, escapes) to a JavaScript regular expression source
 * (for the `u` and `s` flags). `*` is greedy.
 */
export function globToRegexSource(pattern: string, escapeToken: string = '\\'): string {
  const chars = Array.from(pattern);
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === '*') {
      out += '.*';
    } else if (ch === '?') {
      out += '.';
    } else if (ch === escapeToken) {
      const n = chars[i + 1];
      if (n === undefined) {
        out += regexLiteral(ch);
      } else {
        out += regexLiteral(n);
        i++;
      }
    } else if (ch === '[') {
      const parsed = parseBracket(chars, i, escapeToken);
      if (parsed) {
        out += parsed.source;
        i = parsed.end;
      } else {
        out += regexLiteral(ch);
      }
    } else {
      out += regexLiteral(ch);
    }
  }
  return out;
}

/** A bracket expression starting at chars[start] === '['; undefined when unterminated. */
function parseBracket(chars: string[], start: number, esc: string): { source: string; end: number } | undefined {
  let i = start + 1;
  let negate = false;
  if (chars[i] === '!' || chars[i] === '^') {
    negate = true;
    i++;
  }
  const items: string[] = [];
  let first = true;
  for (; i < chars.length; i++) {
    let ch = chars[i] as string;
    if (ch === ']' && !first) {
      let body = '';
      items.forEach((it, k) => {
        body += it === '-' && k > 0 && k < items.length - 1 ? '-' : it === '-' ? regexLiteral('-') : it;
      });
      return { source: `[${negate ? '^' : ''}${body}]`, end: i };
    }
    first = false;
    if (ch === esc && i + 1 < chars.length) {
      i++;
      ch = chars[i] as string;
      items.push(regexLiteral(ch));
    } else if (ch === '-') {
      items.push('-');
    } else {
      items.push(regexLiteral(ch));
    }
  }
  return undefined;
}

function compileGlob(pattern: string, esc: string, anchored: boolean, flags = 'su'): RegExp {
  const src = globToRegexSource(pattern, esc);
  try {
    return new RegExp(anchored ? `^(?:${src})$` : src, flags);
  } catch (e) {
    throw new ShellSyntaxError(`invalid pattern (${pattern}) in substitution: ${(e as Error).message}`);
  }
}

/** Code-unit offsets of code-point boundaries of s, 0..s.length inclusive. */
function boundaries(s: string): number[] {
  const b = [0];
  let off = 0;
  for (const ch of s) {
    off += ch.length;
    b.push(off);
  }
  return b;
}

function trimPrefix(value: string, pattern: string, longest: boolean, esc: string): string {
  const re = compileGlob(pattern, esc, true);
  const b = boundaries(value);
  const order = longest ? [...b].reverse() : b;
  for (const end of order) {
    if (re.test(value.slice(0, end))) return value.slice(end);
  }
  return value;
}

function trimSuffix(value: string, pattern: string, longest: boolean, esc: string): string {
  const re = compileGlob(pattern, esc, true);
  const b = boundaries(value);
  const order = longest ? b : [...b].reverse();
  for (const start of order) {
    if (re.test(value.slice(start))) return value.slice(0, start);
  }
  return value;
}

function replacePattern(value: string, pattern: string, replacement: string, all: boolean, esc: string): string {
  const re = compileGlob(pattern, esc, false, all ? 'gsu' : 'su');
  return value.replace(re, () => replacement);
}

function wrapError(word: string, e: unknown): never {
  if (e instanceof ShellSyntaxError) {
    throw new KilnError(`failed to process ${JSON.stringify(word)}: ${e.message}`, {
      hint: 'check quoting and ${...} syntax; escape a literal $ as \\$',
    });
  }
  throw e;
}

/** BuildKit's shell lexer (ProcessWord / ProcessWords). */
export class ShellLexer {
  rawQuotes = false;
  rawEscapes = false;
  skipUnsetEnv = false;
  skipProcessQuotes = false;

  constructor(readonly escapeToken: EscapeToken = '\\') {}

  private run(word: string, env: Record<string, string>): { result: string; words: string[]; sw: ShellWord } {
    const sw = new ShellWord(word, env, {
      escapeToken: this.escapeToken,
      rawQuotes: this.rawQuotes,
      rawEscapes: this.rawEscapes,
      skipUnsetEnv: this.skipUnsetEnv,
      skipProcessQuotes: this.skipProcessQuotes,
    });
    try {
      return { ...sw.run(), sw };
    } catch (e) {
      wrapError(word, e);
    }
  }

  /** Expands one word: quotes removed, variables substituted, spaces kept. */
  processWord(word: string, env: Record<string, string>): string {
    return this.run(word, env).result;
  }

  /** Expands and splits into words (unquoted whitespace, including from expansions, separates). */
  processWords(word: string, env: Record<string, string>): string[] {
    return this.run(word, env).words;
  }

  /** Like processWord, also reporting which variables were referenced and whether they were set. */
  processWordWithMatches(word: string, env: Record<string, string>): ProcessWordResult {
    const { result, sw } = this.run(word, env);
    return { result, matched: sw.matched, unmatched: sw.unmatched };
  }
}

function lexer(options: ShellOptions = {}): ShellLexer {
  const l = new ShellLexer(options.escapeToken ?? '\\');
  l.rawQuotes = options.rawQuotes ?? false;
  l.rawEscapes = options.rawEscapes ?? false;
  l.skipUnsetEnv = options.skipUnsetEnv ?? false;
  l.skipProcessQuotes = options.skipProcessQuotes ?? false;
  return l;
}

export function expandWord(word: string, env: Record<string, string>, options?: ShellOptions): string {
  return lexer(options).processWord(word, env);
}

export function expandWords(word: string, env: Record<string, string>, options?: ShellOptions): string[] {
  return lexer(options).processWords(word, env);
}
