// corral checkout, corral status, corral commit: a vault's files in a real directory, and the
// changes made there committed back.
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { escapeControls, examples, formatBytes, shortId, type Colors } from '../output.ts';
import type { FileChange } from '../../services/checkout-service.ts';

const SIGN = { added: 'A', modified: 'M', deleted: 'D' } as const;

/** One line per changed path: A/M/D, the path, and what changed about it. */
export function changeLines(changes: FileChange[], c: Colors): string[] {
  return changes.map((ch) => {
    const colour = ch.change === 'added' ? c.green : ch.change === 'deleted' ? c.red : c.yellow;
    const what: string[] = [];
    if (ch.kind === 'dir') what.push('dir');
    else if (ch.change === 'modified' && ch.oldSize !== undefined && ch.oldSize !== ch.size) what.push(`${formatBytes(ch.oldSize)} -> ${formatBytes(ch.size)}`);
    else if (ch.kind !== 'symlink') what.push(formatBytes(ch.size));
    if (ch.oldKind !== undefined) what.push(`was a ${ch.oldKind}`);
    if (ch.oldMode !== undefined && ch.mode !== undefined) what.push(`mode ${ch.oldMode.toString(8)} -> ${ch.mode.toString(8)}`);
    if (ch.kind === 'symlink') what.push(ch.oldTarget !== undefined ? `-> ${escapeControls(ch.target ?? '')} (was ${escapeControls(ch.oldTarget)})` : `-> ${escapeControls(ch.target ?? '')}`);
    return `${colour(SIGN[ch.change])} ${escapeControls(ch.path)}${what.length ? c.dim(`  ${what.join(', ')}`) : ''}`;
  });
}

function counts(changes: FileChange[]): string {
  const n = { added: 0, modified: 0, deleted: 0 };
  for (const ch of changes) n[ch.change]++;
  return `${n.added} added, ${n.modified} modified, ${n.deleted} deleted`;
}

export function registerCheckoutCommands(program: Command, ctx: CliContext): void {
  program
    .command('checkout <vaultOrDir> [dir]')
    .description("write a vault's files into a real directory that ordinary tools can use; commit the changes back with 'corral commit DIR'")
    .option('--ref <ref>', 'check out a checkpoint, commit or HEAD~N instead of the head')
    .option('-f, --force', 'write into a non-empty DIR (replacing files, never through a symlink), or check out again over an existing checkout')
    .addHelpText(
      'after',
      `
With one argument, checks out the current vault into DIR; with two, checks out VAULT.
DIR is created when missing and must be empty unless --force. Modes, mtimes and symlinks are kept;
symlinks are written as symlinks and nothing is ever written through one found in DIR.
${examples('corral checkout ./work', 'corral checkout my-agent ./work --ref before-refactor', 'corral checkout my-agent ./work --json')}`,
    )
    .action(
      ctx.action((first: string, second: string | undefined, opts: { ref?: string; force?: boolean }) => {
        const vault = second === undefined ? ctx.vault() : first;
        const dir = second ?? first;
        const r = ctx.corral.checkouts.checkout(vault, dir, { ref: opts.ref, force: opts.force === true });
        ctx.out.result(r, (d) => `checked out vault ${d.vault} at ${shortId(d.commit)} into ${escapeControls(d.dir)}: ${d.files} files, ${d.symlinks} symlinks, ${d.dirs} dirs (${formatBytes(d.bytes)})`);
      }),
    );

  program
    .command('status <dir>')
    .description('what changed in a checkout since it was checked out or last committed (what `corral commit` would commit)')
    .addHelpText(
      'after',
      `
Lines start with A (added), M (modified: content, mode or link target) or D (deleted). Paths also
changed in the vault meanwhile are listed as conflicts: 'corral commit' refuses them.
${examples('corral status ./work', 'corral status ./work --json')}`,
    )
    .action(
      ctx.action((dir: string) => {
        const r = ctx.corral.checkouts.status(dir);
        for (const s of r.skipped) ctx.out.note(`skipped ${s.path}: ${s.reason}`);
        ctx.out.result(r, (d, c) => {
          const head = `checkout of ${d.vault} at ${shortId(d.base)}${d.head !== d.base ? ` (the vault's head has moved to ${shortId(d.head)})` : ''}`;
          if (d.summary.length === 0) return [head, 'nothing changed'];
          const lines = [head, ...changeLines(d.summary, c), c.dim(counts(d.summary))];
          if (d.conflicts.length) lines.push(c.red(`conflicts (also changed in the vault): ${d.conflicts.map(escapeControls).join(', ')}`));
          return lines;
        });
      }),
    );

  program
    .command('commit <dir>')
    .description('commit what changed in a checkout to its vault as one commit, with a summary of added, modified and deleted paths')
    .requiredOption('-m, --message <text>', 'commit message')
    .option('-p, --patch', 'also print a unified diff of the text files changed')
    .addHelpText(
      'after',
      `
Changes are found exactly (any tool, any write path), and applied onto the vault's head: when the
vault changed meanwhile, paths changed on both sides fail with CONFLICT and nothing is committed;
the vault's other changes are brought into DIR. Fifos, sockets and devices are skipped with a note.
${examples('corral commit ./work -m "fix the parser"', 'corral commit ./work -m "update deps" -p', 'corral commit ./work -m wip --json')}`,
    )
    .action(
      ctx.action((dir: string, opts: { message: string; patch?: boolean }) => {
        if (opts.message.trim() === '') throw new CorralError('INVALID_ARGUMENT', 'give a commit message: corral commit DIR -m "what changed"', {});
        const r = ctx.corral.checkouts.commit(dir, opts.message, { patch: opts.patch === true });
        for (const s of r.skipped) ctx.out.note(`skipped ${s.path}: ${s.reason}`);
        ctx.out.result(r, (d, c) => {
          if (!d.commit) return 'nothing to commit';
          const lines = [`commit ${shortId(d.commit.id)}: ${counts(d.changes)}`, ...changeLines(d.changes, c)];
          if (d.patch) lines.push('', escapePatch(d.patch));
          return lines;
        });
      }),
    );
}

/** A patch keeps its newlines; other control characters from file contents are made visible. */
function escapePatch(patch: string): string {
  return patch
    .split('\n')
    .map((l) => escapeControls(l))
    .join('\n');
}
