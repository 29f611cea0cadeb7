/**
 * Maven's version order (ComparableVersion in maven-artifact, current rules including MNG-5568,
 * MNG-6964, MNG-7644 and MNG-7714). A version is lower-cased and read into a tree of items:
 * numbers, qualifiers (strings), qualifier+number combinations ("rc1", "sp-2") and sub-lists
 * (each '-', and each switch between letters and digits, opens one). Trailing nulls (0, "",
 * empty lists) are dropped, so 1 = 1.0 = 1-0. Known qualifiers order
 * alpha < beta < milestone < rc = cr < snapshot < "" = ga = final = release < sp, and any other
 * qualifier after those, alphabetically; a number is newer than any qualifier.
 */

type Item = NumItem | StrItem | ComboItem | ListItem;

interface NumItem {
  kind: 'num';
  value: bigint;
}
interface StrItem {
  kind: 'str';
  value: string;
}
interface ComboItem {
  kind: 'combo';
  str: StrItem;
  num: Item;
}
interface ListItem {
  kind: 'list';
  items: Item[];
}

const QUALIFIERS = ['alpha', 'beta', 'milestone', 'rc', 'snapshot', '', 'sp'];
const RELEASE_QUALIFIERS = new Set(['ga', 'final', 'release']);
const RELEASE_INDEX = String(QUALIFIERS.indexOf(''));

function str(value: string, followedByDigit: boolean): StrItem {
  if (followedByDigit && value.length === 1) value = value === 'a' ? 'alpha' : value === 'b' ? 'beta' : value === 'm' ? 'milestone' : value;
  if (value === 'cr') value = 'rc';
  return { kind: 'str', value };
}

/** The qualifier as a sortable string: its rank among the known qualifiers, else "7-<text>". */
function comparable(q: string): string {
  if (RELEASE_QUALIFIERS.has(q)) return RELEASE_INDEX;
  const i = QUALIFIERS.indexOf(q);
  return i === -1 ? `${QUALIFIERS.length}-${q}` : String(i);
}

const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function isNull(item: Item): boolean {
  switch (item.kind) {
    case 'num':
      return item.value === 0n;
    case 'str':
      return item.value === '';
    case 'combo':
      return false;
    case 'list':
      return item.items.length === 0;
  }
}

function num(digits: string): NumItem {
  return { kind: 'num', value: BigInt(digits === '' ? '0' : digits) };
}

function parseItem(combination: boolean, digit: boolean, buf: string): Item {
  if (combination) {
    const text = buf.replaceAll('-', '');
    const at = text.search(/\d/);
    const index = at < 0 ? 0 : at;
    return { kind: 'combo', str: str(text.slice(0, index), true), num: parseItem(false, true, text.slice(index)) };
  }
  if (digit) return num(buf);
  return str(buf, false);
}

/** Compares `a` with `b`; `b` undefined stands for "nothing there" (a shorter version's padding). */
function compareItem(a: Item, b: Item | undefined): number {
  switch (a.kind) {
    case 'num':
      if (b === undefined) return a.value === 0n ? 0 : 1;
      if (b.kind === 'num') return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
      return 1;
    case 'str':
      if (b === undefined) return cmpStr(comparable(a.value), RELEASE_INDEX);
      if (b.kind === 'num' || b.kind === 'list') return -1;
      if (b.kind === 'str') return cmpStr(comparable(a.value), comparable(b.value));
      return compareItem(a, b.str) || -1;
    case 'combo':
      if (b === undefined) return compareItem(a.str, undefined);
      if (b.kind === 'num' || b.kind === 'list') return -1;
      if (b.kind === 'str') return compareItem(a.str, b) || 1;
      return compareItem(a.str, b.str) || compareItem(a.num, b.num);
    case 'list':
      if (b === undefined) {
        for (const i of a.items) {
          const r = compareItem(i, undefined);
          if (r !== 0) return r;
        }
        return 0;
      }
      if (b.kind === 'num') return -1;
      if (b.kind === 'str' || b.kind === 'combo') return 1;
      for (let i = 0; i < Math.max(a.items.length, b.items.length); i++) {
        const l = a.items[i];
        const r = b.items[i];
        const result = l === undefined ? (r === undefined ? 0 : -compareItem(r, undefined)) : compareItem(l, r);
        if (result !== 0) return result;
      }
      return 0;
  }
}

function normalize(list: ListItem): void {
  const items = list.items;
  for (let i = items.length - 1; i >= 0; i--) {
    if (!isNull(items[i])) continue;
    const next = items[i + 1];
    if (i === items.length - 1 || next.kind === 'str') items.splice(i, 1);
    else if (next.kind === 'list') {
      const first = next.items[0];
      if (first !== undefined && (first.kind === 'combo' || first.kind === 'str')) items.splice(i, 1);
    }
  }
}

const isAsciiDigit = (c: string): boolean => c >= '0' && c <= '9';

/** Reads a version into Maven's item tree. */
export function parseMaven(version: string): ListItem {
  const v = version.toLowerCase();
  const root: ListItem = { kind: 'list', items: [] };
  let list = root;
  const stack: ListItem[] = [root];
  const open = (): void => {
    const sub: ListItem = { kind: 'list', items: [] };
    list.items.push(sub);
    list = sub;
    stack.push(sub);
  };
  let digit = false;
  let combination = false;
  let start = 0;
  const chars = Array.from(v);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '.') {
      list.items.push(i === start ? num('0') : parseItem(combination, digit, chars.slice(start, i).join('')));
      combination = false;
      start = i + 1;
    } else if (c === '-') {
      if (i === start) list.items.push(num('0'));
      else {
        // X-1 is read as X1
        if (!digit && i !== chars.length - 1 && /^\p{Nd}$/u.test(chars[i + 1])) {
          combination = true;
          continue;
        }
        list.items.push(parseItem(combination, digit, chars.slice(start, i).join('')));
      }
      start = i + 1;
      if (list.items.length > 0) open();
      combination = false;
    } else if (isAsciiDigit(c)) {
      if (!digit && i > start) {
        combination = true;
        if (list.items.length > 0) open();
      }
      digit = true;
    } else {
      if (digit && i > start) {
        list.items.push(parseItem(combination, true, chars.slice(start, i).join('')));
        start = i;
        open();
        combination = false;
      }
      digit = false;
    }
  }
  if (chars.length > start) {
    // 1.0.0.X1 < 1.0.0-X2: a trailing .X reads as -X
    if (!digit && list.items.length > 0) open();
    list.items.push(parseItem(combination, digit, chars.slice(start).join('')));
  }
  while (stack.length > 0) normalize(stack.pop()!);
  return root;
}

/** Compares two Maven versions as ComparableVersion.compareTo does (negative, zero, positive). */
export function compareMaven(a: string, b: string): number {
  return Math.sign(compareItem(parseMaven(a), parseMaven(b)));
}
