// corral log|show|diff|revert.
import type { Command } from 'commander';
import { type CliContext, parseCount } from '../context.ts';
import { escapeControls as safe, formatBytes, formatTime, shortId, type Colors, examples } from '../output.ts';
import type { Commit } from '../../store/corral-store.ts';
import type { DiffResult } from '../../services/history-service.ts';

export function renderCommit(c: Commit, colors: Colors): string {
  return `${colors.yellow(shortId(c.id))} ${formatTime(c.createdAt)} ${colors.dim(`[${c.origin}]`)} ${safe(c.message)}`;
}

const marks = { added: 'A', modified: 'M', deleted: 'D' } as const;

export function renderDiff(d: DiffResult, c: Colors): string[] {
  const paint = { added: c.green, modified: c.yellow, deleted: c.red } as const;
  const lines: string[] = [];
  for (const ch of d.changes) {
    const size = ch.change === 'added' ? formatBytes(ch.newSize ?? 0) : ch.change === 'deleted' ? formatBytes(ch.oldSize ?? 0) : `${formatBytes(ch.oldSize ?? 0)} -> ${formatBytes(ch.newSize ?? 0)}`;
    const modeNote = ch.change === 'modified' && ch.oldMode !== ch.newMode ? ` mode ${ch.oldMode?.toString(8)} -> ${ch.newMode?.toString(8)}` : '';
    const kindNote = ch.kind === 'symlink' ? ' (symlink)' : '';
    lines.push(`${paint[ch.change](marks[ch.change])} ${safe(ch.path)}${kindNote}  ${c.dim(size + modeNote)}`);
    if (ch.binary) lines.push(c.dim(`Binary files differ: ${safe(ch.path)}`));
    if (ch.patch) {
      const patch = ch.patch.trimEnd().split('\n');
      // The --- and +++ headers name the path, which may hold newlines: each header is rejoined and escaped like the path.
      const pathLines = ch.path.split('\n').length;
      const oldHeader = ch.change === 'added' ? 1 : pathLines;
      const newHeader = ch.change === 'deleted' ? 1 : pathLines;
      lines.push(safe(patch.slice(0, oldHeader).join('\n')), safe(patch.slice(oldHeader, oldHeader + newHeader).join('\n')));
      for (const l of patch.slice(oldHeader + newHeader))
        lines.push(l.startsWith('+') ? c.green(l) : l.startsWith('-') ? c.red(l) : l.startsWith('@@') ? c.cyan(l) : l);
    }
  }
  const s = d.summary;
  lines.push(c.dim(`${s.added} added, ${s.modified} modified, ${s.deleted} deleted`));
  return lines;
}

export function registerHistoryCommands(program: Command, ctx: CliContext): void {
  program
    .command('log [path]')
    .description('list commits from the head back; with PATH, only those that changed it')
    .option('-n, --limit <n>', 'at most N commits', '50')
    .addHelpText('after', '\nExamples:\n  $ corral log\n  $ corral log /src/main.ts -n 5')
    .action(
      ctx.action((path: string | undefined, opts: { limit: string }) => {
        const commits = ctx.corral.history.log(ctx.vault(), { path, limit: parseCount(opts.limit, 'limit') });
        ctx.out.result({ commits }, (d, c) => (d.commits.length ? d.commits.map((x) => renderCommit(x, c)) : 'no commits'));
      }),
    );

  program
    .command('show [ref]')
    .description('show a commit and what it changed (default HEAD)')
    .option('-p, --patch', 'include unified text diffs')
    .addHelpText('after', examples('corral show', 'corral show HEAD~2 -p'))
    .action(
      ctx.action((ref: string | undefined, opts: { patch?: boolean }) => {
        const r = ctx.corral.history.show(ctx.vault(), ref ?? 'HEAD', { patch: opts.patch === true });
        ctx.out.result(r, (d, c) => [
          `${c.yellow('commit ' + d.commit.id)}`,
          `parent  ${d.commit.parent ?? '-'}`,
          `origin  ${d.commit.origin} by ${safe(d.commit.actor)}, ${formatTime(d.commit.createdAt)}`,
          `files   ${d.commit.files} (${formatBytes(d.commit.size)})`,
          '',
          `    ${safe(d.commit.message)}`,
          '',
          ...renderDiff(d.diff, c),
        ]);
      }),
    );

  program
    .command('diff [from] [to]')
    .description('what changed between two versions: checkpoint names, commit ids, HEAD or HEAD~N (default: HEAD~1 HEAD)')
    .option('-p, --patch', 'include unified text diffs (binary files are reported as such)')
    .option('--path <path>', 'only changes at or below PATH')
    .addHelpText('after', '\nExamples:\n  $ corral diff before-refactor HEAD\n  $ corral diff HEAD~3 HEAD -p --path /src')
    .action(
      ctx.action((from: string | undefined, to: string | undefined, opts: { patch?: boolean; path?: string }) => {
        const d = ctx.corral.history.diff(ctx.vault(), from ?? 'HEAD~1', to ?? 'HEAD', { patch: opts.patch === true, path: opts.path });
        ctx.out.result(d, (x, c) => renderDiff(x, c));
      }),
    );

  program
    .command('revert <path> [ref]')
    .description('put PATH back as it was at REF, or before its last change when REF is absent')
    .addHelpText('after', '\nExamples:\n  $ corral revert /config.json\n  $ corral revert /src before-refactor')
    .action(
      ctx.action((path: string, ref: string | undefined) => {
        const r = ctx.corral.history.revert(ctx.vault(), path, ref);
        ctx.out.result(r, (d) => `reverted ${d.path} to ${shortId(d.to)}${d.commit ? ` (commit ${shortId(d.commit.id)})` : ' (already so)'}`);
      }),
    );
}
