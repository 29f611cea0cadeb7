import { readFileSync } from 'node:fs';
import type { Registrar } from './main.js';
import { describeErrno, errnoCode, KilnError } from '../errors.js';
import { dumpParseTree, parseDockerfile } from '../dockerfile/index.js';

function readSource(file: string): { text: string; name: string } {
  if (file === '-') {
    return { text: readFileSync(0, 'utf8'), name: 'Dockerfile' };
  }
  try {
    return { text: readFileSync(file, 'utf8'), name: file };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const { what, hint } = describeErrno(e);
    throw new KilnError(`cannot read ${file}: ${what}`, {
      hint: e.code === 'ENOENT' ? 'pass the Dockerfile with -f PATH (or -f - for stdin)' : hint,
      code: errnoCode(e.code ?? ''),
      cause: err,
    });
  }
}

/** `kiln debug parse`: prints BuildKit's parse-tree dump of a Dockerfile. */
export const register: Registrar = (program) => {
  const debug = program.command('debug').description('Inspect how kiln sees its inputs');
  debug
    .command('parse')
    .description("Parse a Dockerfile and print its syntax tree in BuildKit's debug-dump form")
    .option('-f, --file <path>', 'Dockerfile to parse ("-" reads stdin)', 'Dockerfile')
    .option('--warnings', 'also print parser warnings to stderr', false)
    .action((opts: { file: string; warnings: boolean }) => {
      const { text, name } = readSource(opts.file);
      const df = parseDockerfile(text, name);
      if (opts.warnings) {
        for (const w of df.warnings) process.stderr.write(`warning: ${name}:${w.line}: ${w.message}\n`);
      }
      process.stdout.write(dumpParseTree(df));
    });
};
