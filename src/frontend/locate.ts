import type { Instruction } from '../dockerfile/ast.js';
import type { SourceLocation } from '../errors.js';

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
