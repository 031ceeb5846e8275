// corral checkpoint save|list|info|diff|restore|delete.
import type { Command } from 'commander';
import type { CliContext } from '../context.ts';
import { escapeControls, examples, formatBytes, formatTime, shortId, table } from '../output.ts';
import { renderDiff } from './history-commands.ts';

export function registerCheckpointCommands(program: Command, ctx: CliContext): void {
  const cp = program
    .command('checkpoint')
    .description('named versions of a vault: save, list, inspect, diff, restore, delete')
    .addHelpText('after', examples('corral checkpoint save before-refactor', 'corral checkpoint diff before-refactor', 'corral checkpoint restore before-refactor'));

  cp.command('save [name]')
    .description('name the current head (default name: cp-<timestamp with milliseconds>)')
    .option('-m, --message <text>', 'a note kept with the checkpoint', '')
    .addHelpText('after', '\nExamples:\n  $ corral checkpoint save before-refactor -m "tests green"\n  $ corral checkpoint save')
    .action(
      ctx.action((name: string | undefined, opts: { message: string }) => {
        const info = ctx.corral.checkpoints.save(ctx.vault(), name, opts.message);
        ctx.out.result(info, (d, c) => `saved checkpoint ${c.bold(d.name)} at ${shortId(d.commit)} (${d.files} files, ${formatBytes(d.bytes)})`);
      }),
    );

  cp.command('list')
    .alias('ls')
    .description('list checkpoints, oldest first')
    .addHelpText('after', examples('corral checkpoint list'))
    .action(
      ctx.action(() => {
        const checkpoints = ctx.corral.checkpoints.list(ctx.vault());
        ctx.out.result({ checkpoints }, (d, c) =>
          d.checkpoints.length
            ? table([['NAME', 'COMMIT', 'CREATED', 'MESSAGE'], ...d.checkpoints.map((x) => [x.name, shortId(x.commit), formatTime(x.createdAt), escapeControls(x.message)])]).map((l, i) => (i === 0 ? c.dim(l) : l))
            : "no checkpoints: save one with 'corral checkpoint save NAME'",
        );
      }),
    );

  cp.command('info <name>')
    .description('show a checkpoint')
    .addHelpText('after', examples('corral checkpoint info before-refactor --json'))
    .action(
      ctx.action((name: string) => {
        const info = ctx.corral.checkpoints.info(ctx.vault(), name);
        ctx.out.result(info, (d) => [`checkpoint ${d.name}`, `  commit   ${d.commit} (${escapeControls(d.commitMessage)})`, `  files    ${d.files} (${formatBytes(d.bytes)})`, `  created  ${formatTime(d.createdAt)}`, `  message  ${escapeControls(d.message) || '-'}`]);
      }),
    );

  cp.command('diff <name>')
    .description('what changed from the checkpoint to the head')
    .option('-p, --patch', 'include unified text diffs')
    .addHelpText('after', examples('corral checkpoint diff before-refactor -p'))
    .action(
      ctx.action((name: string, opts: { patch?: boolean }) => {
        const vault = ctx.vault();
        ctx.corral.checkpoints.info(vault, name);
        const d = ctx.corral.history.diff(vault, name, 'HEAD', { patch: opts.patch === true });
        ctx.out.result(d, (x, c) => renderDiff(x, c));
      }),
    );

  cp.command('restore <name>')
    .description('make the head equal to a checkpoint (or any commit id, HEAD~N); the state before stays reachable')
    .addHelpText('after', '\nExamples:\n  $ corral checkpoint restore before-refactor\n  $ corral checkpoint restore <previous-commit-id>   # undo the restore')
    .action(
      ctx.action((name: string) => {
        const r = ctx.corral.checkpoints.restore(ctx.vault(), name);
        ctx.out.result(r, (d) => [`restored ${name} (commit ${shortId(d.commit.id)})`, `undo with: corral checkpoint restore ${shortId(d.previous)}`]);
      }),
    );

  cp.command('delete <name>')
    .alias('rm')
    .description('delete a checkpoint (its commit stays in the history)')
    .addHelpText('after', examples('corral checkpoint delete before-refactor'))
    .action(
      ctx.action((name: string) => {
        const removed = ctx.corral.checkpoints.delete(ctx.vault(), name);
        ctx.out.result({ deleted: removed.name, commit: removed.commit }, (d) => `deleted checkpoint ${d.deleted}`);
      }),
    );
}
