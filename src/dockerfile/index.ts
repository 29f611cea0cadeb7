export type { Directives, Dockerfile, Heredoc, Instruction, ParseWarning } from './ast.js';
export { parseDockerfile, parseDockerfileUntilError, heredocsFromLine, suggestKeyword, INSTRUCTION_KEYWORDS } from './parser.js';
export { dumpParseTree, goQuote } from './dump.js';
export { expandWord, expandWords, ShellLexer } from './shell.js';
export type { EscapeToken, ShellOptions, ProcessWordResult } from './shell.js';
