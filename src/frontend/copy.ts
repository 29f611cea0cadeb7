/**
 * COPY and ADD: sources (context paths, heredocs, URLs, another stage or image), the
 * destination and the flags, checked as BuildKit checks them, into a file vertex.
 */
import { parseChmod } from '../solver/chmod.js';
import { heredocSource, type CopyCommand } from '../dockerfile/instructions.js';
import { contextSource, definitionDigest, gitSource, httpSource, type FileVertex, type GitVertex, type LocalVertex, type Vertex } from '../graph/types.js';
import { parseGitRef, type GitRef } from './git.js';
import type { Converter, StageContext, VertexOrigin } from './state.js';
import { stepFields } from './state.js';

export async function dispatchCopy(c: Converter, ctx: StageContext, cmd: CopyCommand, origin: VertexOrigin): Promise<void> {
  const inst = cmd.inst;
  const isAdd = cmd.keyword === 'add';
  const kw = isAdd ? 'ADD' : 'COPY';
  const cc = ctx.config.config!;
  const scope = ctx.scope.values();
  const expand = (w: string) => c.expandIn(ctx, inst, w, scope);
  const srcWords = cmd.sources.map((s) => (s.heredoc ? s.word : expand(s.word)));
  const dest = inst.args.length === 0 ? undefined : heredocSource(inst, cmd.dest) ? cmd.dest : expand(cmd.dest);
  if (dest === undefined || srcWords.length < 1) {
    throw c.err(inst, `${kw} requires at least two arguments, but only ${inst.args.length} provided`, `write ${kw} <src>... <dest>`);
  }
  const inline: { name: string; content: string }[] = [];
  const paths: string[] = [];
  const urls: string[] = [];
  const gitRefs: GitRef[] = [];
  for (const [i, s] of cmd.sources.entries()) {
    const w = srcWords[i];
    let git: GitRef | undefined;
    try {
      git = s.heredoc ? undefined : parseGitRef(w);
    } catch (e) {
      throw c.err(inst, `invalid git source ${w}: ${(e as Error).message}`, 'write <repository>#<ref>[:<subdir>], or ?ref=<ref>&subdir=<dir> as BuildKit reads it', w);
    }
    if (s.heredoc) {
      const h = s.heredoc;
      inline.push({ name: h.name, content: h.expand ? c.expandIn(ctx, inst, h.content, scope, c.heredocLexer) : h.content });
    } else if (git && !isAdd) {
      throw c.err(inst, "source can't be a git ref for COPY", 'use ADD to add a git repository', w);
    } else if (git) {
      gitRefs.push(git);
    } else if (isAdd && /^https?:\/\//.test(w)) {
      urls.push(w);
    } else if (!isAdd && /^https?:\/\//.test(w)) {
      throw c.err(inst, "source can't be a URL for COPY", 'use ADD to fetch a URL', w);
    } else {
      paths.push(w);
    }
  }
  if (srcWords.length > 1 && !dest.endsWith('/')) {
    throw c.err(inst, `When using ${kw} with more than one source file, the destination must be a directory and end with a /`, `write ${dest}/`, dest);
  }
  const checksum = cmd.checksum === undefined ? undefined : expand(cmd.checksum);
  if (checksum !== undefined && checksum !== '') {
    if (srcWords.length !== 1) throw c.err(inst, "checksum can't be specified for multiple sources", 'ADD one source per --checksum', '--checksum');
    if (urls.length !== 1 && gitRefs.length !== 1) throw c.err(inst, 'checksum requires HTTP(S) or Git sources', 'drop --checksum for a local file', '--checksum');
  }
  if (checksum !== undefined && checksum !== '' && urls.length === 1) {
    const alg = checksum.includes(':') ? checksum.slice(0, checksum.indexOf(':')) : '';
    if (alg !== '' && !['sha256', 'sha384', 'sha512'].includes(alg)) {
      throw c.err(inst, `unsupported digest algorithm: ${alg}`, 'use a sha256, sha384 or sha512 digest', '--checksum');
    }
    if (!/^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$/.test(checksum)) {
      throw c.err(inst, `invalid checksum digest format: ${checksum}`, 'write --checksum=sha256:<64 hex digits>', '--checksum');
    }
  }
  const gits: GitVertex[] = [];
  for (const g of gitRefs) {
    for (const sum of [checksum, g.checksum]) {
      if (sum !== undefined && sum !== '' && !/^[0-9a-fA-F]+$/.test(sum)) throw c.err(inst, `invalid checksum ${sum} for Git URL, expected hex commit hash`, 'give --checksum the commit id (or a prefix of it)', '--checksum');
    }
    if (g.keepGitDir !== undefined && cmd.keepGitDir && !g.keepGitDir) throw c.err(inst, 'inconsistent keep-git-dir configuration', 'drop ?keep-git-dir=false or --keep-git-dir', '--keep-git-dir');
    const sum = checksum !== undefined && checksum !== '' ? checksum : undefined;
    if (sum !== undefined && g.checksum !== undefined && sum !== g.checksum) throw c.err(inst, `checksum mismatch "${sum}" != "${g.checksum}"`, 'give the commit once, with --checksum or ?commit=', '--checksum');
    gits.push(
      gitSource({
        remote: g.remote,
        ref: g.ref || undefined,
        subdir: g.subdir || undefined,
        keepGitDir: (g.keepGitDir ?? cmd.keepGitDir) ? true : undefined,
        checksum: sum ?? g.checksum,
        submodules: g.submodules === false ? false : undefined,
        mtime: g.mtime === 'commit' ? 'commit' : undefined,
      }),
    );
  }
  let from: Vertex | LocalVertex = contextSource();
  if (cmd.from !== undefined) {
    if (c.lexer.processWord(cmd.from, {}) !== cmd.from) {
      throw c.err(
        inst,
        'variable expansion is not supported for --from',
        'define a new stage with FROM using ARG from global scope as a workaround: ARG SRC=build / FROM ${SRC} AS src / COPY --from=src ...',
        `--from=${cmd.from}`,
      );
    }
    from = await c.sourceState(ctx, inst, cmd.from, `--from=${cmd.from}`, `${kw} --from=`);
  }
  const chown = cmd.chown === undefined ? undefined : expand(cmd.chown);
  if (chown !== undefined && chown.split(':').length > 2) {
    throw c.err(inst, `invalid --chown=${chown}: expected USER[:GROUP], a name or a number each`, 'write --chown=1000:1000 or --chown=app:app', '--chown');
  }
  const chmod = cmd.chmod === undefined ? undefined : expand(cmd.chmod);
  if (chmod !== undefined && chmod !== '') {
    try {
      parseChmod(chmod);
    } catch (e) {
      throw c.err(inst, (e as Error).message, 'use an octal mode such as 0755 or 644, or a symbolic one such as u=rwX,go=rX', '--chmod');
    }
  }
  const action = {
    op: 'copy' as const,
    source: { from, paths },
    inline: inline.length ? inline : undefined,
    dest,
    cwd: cc.WorkingDir || '/',
    chown,
    chmod,
    // --unpack: local archives unpack unless =false; URLs only with =true (as BuildKit)
    unpackArchives: isAdd && cmd.unpack !== false,
    urls: urls.length ? urls.map((u) => httpSource(u, checksum || undefined)) : undefined,
    unpackUrls: cmd.unpack === true && urls.length > 0 ? true : undefined,
    excludes: cmd.exclude.map(expand),
    parents: cmd.parents || undefined,
    link: cmd.link || undefined,
    gits: gits.length ? gits : undefined,
  };
  const v: FileVertex = {
    kind: 'file',
    parent: ctx.state,
    action,
    digest: '',
    ...stepFields(ctx, `${kw} ${cmd.from !== undefined ? `--from=${cmd.from} ` : ''}${srcWords.join(' ')} ${dest}`, origin),
  };
  v.digest = definitionDigest({
    kind: 'file',
    parent: ctx.state.digest,
    // a git source by its definition without --checksum: a pinned commit keys the step as the
    // ref it pins does (as BuildKit), and the checksum is checked when the ref is resolved
    action: { ...action, source: { paths, from: from.kind === 'local' ? from.source : from.digest }, gits: action.gits?.map(({ checksum: _c, digest: _d, ...g }) => g) },
  });
  ctx.state = v;
  // As BuildKit writes it: flags that change the result, sources (URLs and paths in
  // the order written, then heredocs as <<NAME), destination.
  const parts = [kw];
  if (cmd.parents) parts.push('--parents');
  if (chown !== undefined && chown !== '') parts.push(`--chown=${chown}`);
  if (chmod !== undefined && chmod !== '') parts.push(`--chmod=${chmod}`);
  for (const [i, s] of cmd.sources.entries()) if (!s.heredoc) parts.push(srcWords[i]);
  for (const h of inline) parts.push(`<<${h.name}`);
  parts.push(dest);
  c.history(ctx, parts.join(' '), false, true);
}
