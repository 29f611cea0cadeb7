/**
 * `COPY --chmod` values as BuildKit accepts them: an octal mode (0 to 07777) or a
 * symbolic mode in chmod(1) syntax (`u=rwX,go=rX`, `a+X`, `g-w,o=`), applied with a zero
 * umask. Parsed once, when the Dockerfile is planned; applied to every copied entry.
 */

export type ChmodSpec = { kind: 'octal'; mode: number } | { kind: 'symbolic'; clauses: Clause[] };

interface Action {
  op: '+' | '-' | '=';
  /** Permission bits named (r, w, x, s, t), before masking by who. */
  bits: number;
  /** X: execute, only for directories and files some execute bit is set on. */
  condX: boolean;
  /** u, g or o: the bits that class has at this point. */
  copyFrom?: 'u' | 'g' | 'o';
}

interface Clause {
  /** The bits the clause may touch; every bit when no who letter was given (umask 0). */
  who: number;
  /** Whether who letters were given (s and t only apply to some of them). */
  explicitWho: boolean;
  actions: Action[];
}

const CLASS_BITS = { u: 0o4700, g: 0o2070, o: 0o0007, a: 0o6777 } as const;
const SHIFT = { u: 6, g: 3, o: 0 } as const;
const STICKY = 0o1000;

/** A clear error text for a bad value (the caller adds where it was written). */
export class ChmodSyntaxError extends Error {}

export function parseChmod(value: string): ChmodSpec {
  const octalError = `invalid chmod parameter: '${value}'. it should be octal string and between 0 and 07777`;
  if (value === '') throw new ChmodSyntaxError(octalError);
  if (/^[0-9]/.test(value)) {
    // anything starting with a digit is read as octal, as BuildKit does
    if (!/^[0-7]+$/.test(value)) throw new ChmodSyntaxError(octalError);
    const mode = parseInt(value, 8);
    if (mode > 0o7777) throw new ChmodSyntaxError(octalError);
    return { kind: 'octal', mode };
  }
  const bad = (why: string): never => {
    throw new ChmodSyntaxError(`invalid chmod parameter: '${value}': ${why}`);
  };
  const clauses: Clause[] = [];
  for (const text of value.split(',')) {
    let i = 0;
    let who = 0;
    while (i < text.length && 'ugoa'.includes(text[i])) who |= CLASS_BITS[text[i++] as keyof typeof CLASS_BITS];
    const clause: Clause = { who: who === 0 ? 0o7777 : who, explicitWho: who !== 0, actions: [] };
    if (i >= text.length) bad(text === '' ? 'an empty clause' : `"${text}" has no operator (+, - or =)`);
    while (i < text.length) {
      const op = text[i++];
      if (op !== '+' && op !== '-' && op !== '=') bad(`unexpected "${op}" in "${text}"`);
      const action: Action = { op: op as Action['op'], bits: 0, condX: false };
      while (i < text.length && !'+-='.includes(text[i])) {
        const c = text[i++];
        if (c === 'r') action.bits |= 0o444;
        else if (c === 'w') action.bits |= 0o222;
        else if (c === 'x') action.bits |= 0o111;
        else if (c === 'X') action.condX = true;
        else if (c === 's') action.bits |= 0o6000;
        else if (c === 't') action.bits |= STICKY;
        else if ((c === 'u' || c === 'g' || c === 'o') && action.bits === 0 && !action.condX && !action.copyFrom) action.copyFrom = c;
        else bad(`unexpected "${c}" in "${text}"`);
      }
      clause.actions.push(action);
    }
    clauses.push(clause);
  }
  return { kind: 'symbolic', clauses };
}

/** The permission bits (07777) an entry gets: `mode` is the source's, `isDir` enables X. */
export function applyChmod(spec: ChmodSpec, mode: number, isDir: boolean): number {
  if (spec.kind === 'octal') return spec.mode;
  const original = mode & 0o7777;
  let m = original;
  const executable = isDir || (original & 0o111) !== 0;
  for (const c of spec.clauses) {
    // the sticky bit only through t, and only for the whole file (no who, or u/a)
    const who = c.who & ~STICKY;
    for (const a of c.actions) {
      let bits: number;
      if (a.copyFrom) {
        const three = (m >> SHIFT[a.copyFrom]) & 0o7;
        bits = (three << 6) | (three << 3) | three;
      } else {
        bits = a.bits | (a.condX && (a.op === '-' || executable) ? 0o111 : 0);
      }
      // copying a class's bits replaces only the rwx bits of the classes named
      let mask = a.copyFrom ? who & 0o777 : who;
      if (a.bits & STICKY && (!c.explicitWho || c.who & 0o4000)) mask |= STICKY;
      if (a.op === '+') m |= bits & mask;
      else if (a.op === '-') m &= ~(bits & mask);
      else m = (m & ~mask) | (bits & mask);
    }
  }
  return m;
}

/** Mode of the directories a COPY creates for its destination: the octal mode, else 0755. */
export function createdDirMode(spec: ChmodSpec | undefined): number {
  return spec?.kind === 'octal' ? spec.mode & 0o777 : 0o755;
}
