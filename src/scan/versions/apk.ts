/**
 * Alpine's version order (apk-tools' version.c): `digit{.digit}...{letter}{_suffix{number}}...{~hash}{-rN}`.
 * Versions are read as a sequence of typed tokens; two versions compare token by token while the
 * token kinds agree. Numbers compare numerically, except a number after a dot that has a leading
 * zero, which compares as a string (Gentoo's rule); suffixes order
 * `_alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git < _hg < _p`. When one version runs
 * out or changes kind first, the longer one is newer, unless what follows is a pre-release suffix.
 */

/** Token kinds in apk-tools' order: a later kind ends the comparison as "older". */
const enum Tok {
  InitialDigit,
  Digit,
  Letter,
  Suffix,
  SuffixNo,
  CommitHash,
  RevisionNo,
  End,
  Invalid,
}

/** Suffix ranks; NONE (the absence of a suffix) sits between the pre-releases and the post-releases. */
const SUFFIXES: Record<string, number> = { alpha: 0, beta: 1, pre: 2, rc: 3, cvs: 5, svn: 6, git: 7, hg: 8, p: 9 };
const SUFFIX_NONE = 4;

interface Token {
  kind: Tok;
  /** The token's text (digits, the letter, the suffix name, the hash). */
  text: string;
  suffix: number;
}

class Tokens {
  private pos = 0;
  readonly token: Token = { kind: Tok.InitialDigit, text: '', suffix: -1 };

  constructor(private readonly s: string) {
    this.digits();
  }

  private digits(): void {
    const m = /^\d*/.exec(this.s.slice(this.pos))![0];
    this.pos += m.length;
    this.token.text = m;
    if (m.length === 0) this.token.kind = Tok.Invalid;
  }

  next(): void {
    const t = this.token;
    if (this.pos >= this.s.length) {
      t.kind = Tok.End;
      return;
    }
    const c = this.s[this.pos];
    if (c >= 'a' && c <= 'z') {
      if (t.kind > Tok.Digit) return this.invalid();
      t.text = c;
      t.kind = Tok.Letter;
      this.pos++;
    } else if (c === '.' || (c >= '0' && c <= '9')) {
      if (c === '.') {
        if (t.kind > Tok.Digit) return this.invalid();
        this.pos++;
      }
      if (t.kind === Tok.InitialDigit || t.kind === Tok.Digit) t.kind = Tok.Digit;
      else if (t.kind === Tok.Suffix) t.kind = Tok.SuffixNo;
      else return this.invalid();
      this.digits();
    } else if (c === '_') {
      if (t.kind > Tok.SuffixNo) return this.invalid();
      const m = /^[a-z]*/.exec(this.s.slice(this.pos + 1))![0];
      this.pos += 1 + m.length;
      const rank = Object.hasOwn(SUFFIXES, m) ? SUFFIXES[m] : undefined;
      if (rank === undefined) return this.invalid();
      t.text = m;
      t.suffix = rank;
      t.kind = Tok.Suffix;
    } else if (c === '~') {
      if (t.kind >= Tok.CommitHash) return this.invalid();
      const m = /^[0-9a-f]*/.exec(this.s.slice(this.pos + 1))![0];
      if (m.length === 0) return this.invalid();
      this.pos += 1 + m.length;
      t.text = m;
      t.kind = Tok.CommitHash;
    } else if (c === '-') {
      if (t.kind >= Tok.RevisionNo || this.s[this.pos + 1] !== 'r') return this.invalid();
      this.pos += 2;
      t.kind = Tok.RevisionNo;
      this.digits();
    } else {
      this.invalid();
    }
  }

  private invalid(): void {
    this.token.kind = Tok.Invalid;
  }
}

function cmpNumber(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

function cmpBytes(a: string, b: string): number {
  return Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function tokenCmp(a: Token, b: Token): number {
  switch (a.kind) {
    case Tok.Digit:
      if (a.text[0] === '0' || b.text[0] === '0') return cmpBytes(a.text, b.text);
      return cmpNumber(a.text, b.text);
    case Tok.InitialDigit:
    case Tok.SuffixNo:
    case Tok.RevisionNo:
      return cmpNumber(a.text, b.text);
    case Tok.Letter:
      return cmpBytes(a.text, b.text);
    case Tok.Suffix:
      return Math.sign(a.suffix - b.suffix);
    default:
      return cmpBytes(a.text, b.text);
  }
}

/**
 * Compares two Alpine versions (negative, zero, positive). With `fuzzy`, `a` equals `b` when `b`
 * is a prefix of it in tokens (apk's `~` operator: 3.6.9 ~ 3.6).
 */
export function compareApk(a: string, b: string, fuzzy = false): number {
  const ta = new Tokens(a);
  const tb = new Tokens(b);
  while (ta.token.kind === tb.token.kind && ta.token.kind < Tok.End) {
    const r = tokenCmp(ta.token, tb.token);
    if (r !== 0) return r;
    ta.next();
    tb.next();
  }
  const ka = ta.token.kind;
  const kb = tb.token.kind;
  if (ka === kb) return 0;
  if (kb === Tok.End && fuzzy) return 0;
  if (ka === Tok.Suffix && ta.token.suffix < SUFFIX_NONE) return -1;
  if (kb === Tok.Suffix && tb.token.suffix < SUFFIX_NONE) return 1;
  if (ka > kb) return -1;
  if (kb > ka) return 1;
  return 0;
}

/** Whether a string is a well-formed Alpine version. */
export function validApk(version: string): boolean {
  const t = new Tokens(version);
  while (t.token.kind < Tok.End) t.next();
  return t.token.kind === Tok.End;
}
