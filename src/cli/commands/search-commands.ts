// corral find|grep|search.
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { type CliContext, parseCount } from '../context.ts';
import { escapeControls as safe, formatBytes } from '../output.ts';
import { GREP_TIME_BUDGET_MS, type FindOptions } from '../../services/search-service.ts';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseType(text: string | undefined): FindOptions['type'] {
  if (text === undefined) return undefined;
  if (text !== 'f' && text !== 'd' && text !== 'l') throw new CorralError('INVALID_ARGUMENT', `--type takes f (file), d (directory) or l (symlink), got '${text}'`, { type: text });
  return text;
}

export function registerSearchCommands(program: Command, ctx: CliContext): void {
  program
    .command('find [path]')
    .description('list paths below PATH (default /) that pass every filter, like find(1); the start itself is depth 0')
    .option('--name <glob>', 'base name matches a shell glob: * ? [abc] [a-z] [!x] (quote it)')
    .option('--type <f|d|l>', 'f: files, d: directories, l: symlinks')
    .option('--size <n>', 'size in bytes or with k/M/G: +N larger than, -N smaller than, N exactly (a directory counts the bytes below it)')
    .option('--maxdepth <n>', 'descend at most N levels below PATH')
    .option('--mindepth <n>', 'list nothing above depth N (1 leaves out PATH itself)')
    .option('--tag <tag>', 'only paths with this tag (repeat for all of several)', collect)
    .option('--meta <key[=value]>', 'only paths with this metadata key, or key=value (repeatable)', collect)
    .option('--rev <ref>', 'search a checkpoint, commit or HEAD~N instead of the head')
    .addHelpText(
      'after',
      `
Examples:
  $ corral find / --name '*.md'
  $ corral find /src --type f --size +100k
  $ corral find / --mindepth 1 --maxdepth 1 --type d
  $ corral find / --tag important --meta status=draft --json
  $ corral find / --name 'test_*.py' --rev before-refactor`,
    )
    .action(
      ctx.action((path: string | undefined, opts: { name?: string; type?: string; size?: string; maxdepth?: string; mindepth?: string; tag?: string[]; meta?: string[]; rev?: string }) => {
        const matches = ctx.corral.search.find(ctx.vault(), path ?? '/', {
          ref: opts.rev,
          name: opts.name,
          type: parseType(opts.type),
          size: opts.size,
          maxDepth: opts.maxdepth === undefined ? undefined : parseCount(opts.maxdepth, 'maxdepth'),
          minDepth: opts.mindepth === undefined ? undefined : parseCount(opts.mindepth, 'mindepth'),
          tags: opts.tag,
          meta: opts.meta,
        });
        ctx.out.result({ matches }, (d) => d.matches.map((m) => safe(m.path)));
      }),
    );

  program
    .command('grep <pattern> [path]')
    .description('print lines of text files below PATH (default /) matching a JavaScript regular expression; binary files, symlinks and files over 8 MiB are skipped')
    .option('-i, --ignore-case', 'match without regard to case')
    .option('-n, --line-number', 'print the line number of each match')
    .option('-l, --files-with-matches', 'print only the names of files with a match')
    .option('-c, --count', 'print the number of matching lines of each file with a match')
    .option('-m, --max-count <n>', 'stop reading a file after N matching lines')
    .option('--rev <ref>', 'search a checkpoint, commit or HEAD~N instead of the head')
    .option('--timeout <seconds>', `stop after this long with the matches found so far (default ${GREP_TIME_BUDGET_MS / 1000}, at most 3600)`)
    .addHelpText(
      'after',
      `
Output is path:text, or path:line:text with -n; lines are cut at 1000 characters.
Only the first 64 Ki characters of a longer line are matched (such matches are marked truncated).
A search that runs out of time (a pattern that backtracks without end, a huge vault) stops and
returns what it found, with "truncated" and "timedOut" set in --json.
A pattern starting with '-' goes after '--'.

Examples:
  $ corral grep TODO /src -n
  $ corral grep -i 'error|warn' /logs -c
  $ corral grep 'def \\w+\\(' / -l
  $ corral grep -- '-rf' /scripts
  $ corral grep 'version' /package.json --json`,
    )
    .action(
      ctx.action((pattern: string, path: string | undefined, opts: { ignoreCase?: boolean; lineNumber?: boolean; filesWithMatches?: boolean; count?: boolean; maxCount?: string; rev?: string; timeout?: string }) => {
        const seconds = opts.timeout === undefined ? undefined : parseCount(opts.timeout, 'timeout');
        if (seconds !== undefined && (seconds < 1 || seconds > 3600)) throw new CorralError('INVALID_ARGUMENT', `--timeout takes 1 to 3600 seconds, got ${seconds}`, { timeout: seconds });
        const r = ctx.corral.search.grep(ctx.vault(), pattern, path ?? '/', {
          ref: opts.rev,
          ignoreCase: opts.ignoreCase === true,
          filesOnly: opts.filesWithMatches === true,
          maxCount: opts.maxCount === undefined ? undefined : parseCount(opts.maxCount, 'max-count'),
          timeBudgetMs: seconds === undefined ? undefined : seconds * 1000,
        });
        for (const s of r.skipped) {
          if (s.reason === 'too-large') ctx.out.note(`corral grep: ${s.path}: skipped, ${formatBytes(s.size)} is over the 8 MiB limit`);
          else if (s.reason === 'symlink') ctx.out.note(`corral grep: ${s.path}: a symlink, not followed`);
        }
        if (r.timedOut)
          ctx.out.note(`corral grep: stopped after ${seconds ?? GREP_TIME_BUDGET_MS / 1000} s with ${r.matches.length} matches so far: narrow the pattern or the path, or allow more time with --timeout`);
        else if (r.truncated) ctx.out.note(`corral grep: stopped after ${r.matches.length} matches: narrow the pattern or the path`);
        ctx.out.result(r, (d) => {
          // Paths are escaped for the terminal; matched lines are printed as they are, like cat and grep(1).
          if (opts.filesWithMatches) return d.counts.map((x) => safe(x.path));
          if (opts.count) return d.counts.map((x) => `${safe(x.path)}:${x.count}`);
          return d.matches.map((m) => (opts.lineNumber ? `${safe(m.path)}:${m.line}:${m.text}` : `${safe(m.path)}:${m.text}`));
        });
      }),
    );

  program
    .command('search <query...>')
    .description('full-text search of the text files of the head (SQLite FTS5), best matches first')
    .option('--limit <n>', 'at most N results (default 20, at most 1000)')
    .option('--literal', 'search the words as given: no FTS operators, punctuation allowed')
    .addHelpText(
      'after',
      `
The query uses FTS5 syntax: words (all must occur), "exact phrases", OR, NOT, prefix*,
NEAR(a b, 5). Put words with punctuation in double quotes, or pass --literal.
Files over 1 MiB, binary files and files that are not UTF-8 are not indexed.

Examples:
  $ corral search database migration
  $ corral search '"connection refused" OR timeout' --limit 5
  $ corral search 'auth* NOT test'
  $ corral search --literal 'foo-bar.baz' --json`,
    )
    .action(
      ctx.action((words: string[], opts: { limit?: string; literal?: boolean }) => {
        const progress = ctx.out.progress('indexing');
        const [open, close] = ctx.out.c.isColorSupported ? ctx.out.c.bold(ctx.out.c.yellow('\0')).split('\0') : ['**', '**'];
        let r;
        try {
          r = ctx.corral.search.search(ctx.vault(), words.join(' '), {
            limit: opts.limit === undefined ? undefined : parseCount(opts.limit, 'limit'),
            literal: opts.literal === true,
            highlight: ctx.out.json ? undefined : { open: open ?? '', close: close ?? '' },
            onProgress: (done, total) => progress.update(done, total),
          });
        } finally {
          progress.stop();
        }
        ctx.out.result({ results: r.results }, (d, c) =>
          d.results.length === 0 ? [] : d.results.flatMap((x) => [`${c.bold(safe(x.path))}  ${c.dim(String(x.score))}`, `    ${x.snippet}`]),
        );
        if (r.results.length === 0) ctx.out.note('no matches');
      }),
    );
}
