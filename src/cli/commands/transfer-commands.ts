// corral import, corral export (host directories and tar streams) and corral bundle export|import.
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { once } from 'node:events';
import { resolve as resolveHost } from 'node:path';
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { formatBytes, shortId } from '../output.ts';
import { checkOutputFile, createTempBeside, hostError, publishHostFile } from '../../runtime/host-files.ts';
import type { ExportResult, ImportResult, ProgressCallback, TransferCounts } from '../../services/transfer-service.ts';

function countsText(d: TransferCounts): string {
  return `${d.files} files, ${d.dirs} dirs, ${d.symlinks} symlinks (${formatBytes(d.bytes)})`;
}

function importSummary(d: ImportResult): string {
  return `imported ${countsText(d)} into ${d.path} ${d.commit ? `(commit ${shortId(d.commit.id)})` : '(no change)'}`;
}

/** Tells on stderr what an import left out or what points outside (silent with --json, where the result carries it). */
function importNotes(ctx: CliContext, r: ImportResult): void {
  const shown = 20;
  for (const s of r.skipped.slice(0, shown)) ctx.out.note(`skipped ${s.path}: ${s.reason}`);
  if (r.skipped.length > shown) ctx.out.note(`skipped ${r.skipped.length - shown} more (see --json)`);
  for (const o of r.outside.slice(0, shown)) ctx.out.note(`warning: ${o.path} -> ${o.target} points outside the imported tree (stored as a link, not followed)`);
  if (r.outside.length > shown) ctx.out.note(`warning: ${r.outside.length - shown} more links point outside (see --json)`);
}

/**
 * Writes the tar of `vaultpath` to the host file `file`: into a temp file beside it, moved into
 * place only once complete, so a failure leaves no half-written tar behind (and a rerun is not
 * refused for it). With `force` the name is replaced, never written through a symlink or hard link.
 */
async function exportTarFile(ctx: CliContext, vault: string, vaultpath: string, file: string, o: { rev?: string; force: boolean; onProgress: ProgressCallback }): Promise<ExportResult> {
  const target = resolveHost(file);
  checkOutputFile(target, o.force);
  const tmp = createTempBeside(target);
  // flush: fsync before close, so what is moved into place is on the disk.
  const out = createWriteStream('', { fd: tmp.fd, flush: true });
  let failure: Error | undefined;
  out.on('error', (e) => (failure ??= e));
  let done = false;
  try {
    const r = await ctx.corral.transfer.exportTar(vault, vaultpath, out, { ref: o.rev, onProgress: o.onProgress });
    if (!out.closed) await once(out, 'close');
    if (failure) throw hostError(failure, target);
    publishHostFile(tmp.path, target, o.force);
    done = true;
    return r;
  } finally {
    if (!done) {
      if (!out.closed) {
        out.destroy();
        await once(out, 'close').catch(() => undefined);
      }
      rmSync(tmp.path, { force: true });
    }
  }
}

export function registerTransferCommands(program: Command, ctx: CliContext): void {
  program
    .command('import [source] [vaultpath]')
    .description('import a host directory (recursively) or a tar stream into the vault as one commit, keeping modes, mtimes and symlinks')
    .option('--tar <file>', "read a tar stream from FILE, or from stdin with '-' (then the first argument is VAULTPATH)")
    .option('-m, --message <text>', 'commit message')
    .addHelpText(
      'after',
      `
SOURCE is a host directory; its contents go into VAULTPATH (default /), merged with what is
there (same-named files are replaced). Symlinks are stored as links and never followed; links
that point outside the imported tree are reported. Sockets, fifos, devices and hard links (tar)
are skipped with a note. The vault's quotas apply; a failure changes nothing.

Examples:
  $ corral import ./my-project /src
  $ corral import ~/node_modules /node_modules --json
  $ tar -C dir -cf - . | corral import --tar - /dir
  $ corral import --tar backup.tar /restored`,
    )
    .action(
      ctx.action(async (source: string | undefined, vaultpath: string | undefined, opts: { tar?: string; message?: string }) => {
        const vault = ctx.vault();
        const progress = ctx.out.progress('importing');
        let r: ImportResult;
        try {
          if (opts.tar !== undefined) {
            if (vaultpath !== undefined) throw new CorralError('INVALID_ARGUMENT', `with --tar, give only the vault path: corral import --tar ${opts.tar} ${source}`, {});
            if (opts.tar === '-' && process.stdin.isTTY) throw new CorralError('INVALID_ARGUMENT', "--tar - reads a tar stream from stdin, but stdin is a terminal: pipe one in (tar -cf - DIR | corral import --tar -) or give a file", {});
            const input = opts.tar === '-' ? process.stdin : createReadStream(opts.tar);
            try {
              r = await ctx.corral.transfer.importTar(vault, input, source ?? '/', { message: opts.message, onProgress: progress.update });
            } finally {
              if (input !== process.stdin) input.destroy();
            }
          } else {
            if (source === undefined) throw new CorralError('INVALID_ARGUMENT', 'give the host directory to import (or --tar FILE|-): corral import HOSTDIR [VAULTPATH]', {});
            r = ctx.corral.transfer.importDir(vault, source, vaultpath ?? '/', { message: opts.message, onProgress: progress.update });
          }
        } finally {
          progress.stop();
        }
        importNotes(ctx, r);
        ctx.out.result(r, importSummary);
      }),
    );

  program
    .command('export <vaultpath> [hostdir]')
    .description('write vault files to a host directory or as a tar stream, keeping modes, mtimes and symlinks')
    .option('--tar <file>', "write a tar stream to FILE, or to stdout with '-' (then give no HOSTDIR)")
    .option('--rev <ref>', 'export a checkpoint, commit or HEAD~N instead of the head')
    .option('-f, --force', 'write into a non-empty HOSTDIR (replacing files, never through a symlink) or over an existing tar FILE')
    .addHelpText(
      'after',
      `
A directory's contents are written into HOSTDIR, which is created when missing and must be empty
unless --force. A single file or link is written into HOSTDIR under its own name. Symlinks are
written as symlinks; nothing is ever written through a symlink found on the host.

Examples:
  $ corral export /src ./out
  $ corral export / ./snapshot --rev before-refactor
  $ corral export /src --tar - | tar -C /tmp/x -xf -
  $ corral export / --tar vault.tar`,
    )
    .action(
      ctx.action(async (vaultpath: string, hostdir: string | undefined, opts: { tar?: string; rev?: string; force?: boolean }) => {
        const vault = ctx.vault();
        const progress = ctx.out.progress('exporting');
        let r: ExportResult;
        let to: string;
        try {
          if (opts.tar !== undefined) {
            if (hostdir !== undefined) throw new CorralError('INVALID_ARGUMENT', `with --tar, give no host directory: corral export ${vaultpath} --tar ${opts.tar}`, {});
            if (opts.tar === '-') {
              if (process.stdout.isTTY) throw new CorralError('INVALID_ARGUMENT', '--tar - writes a tar stream to stdout, which is a terminal: redirect it to a file or pipe it (| tar -xf -)', {});
              r = await ctx.corral.transfer.exportTar(vault, vaultpath, process.stdout, { ref: opts.rev, onProgress: progress.update });
              to = 'stdout';
            } else {
              r = await exportTarFile(ctx, vault, vaultpath, opts.tar, { rev: opts.rev, force: opts.force === true, onProgress: progress.update });
              to = opts.tar;
            }
          } else {
            if (hostdir === undefined) throw new CorralError('INVALID_ARGUMENT', 'give the host directory to write to (or --tar FILE|-): corral export VAULTPATH HOSTDIR', {});
            r = ctx.corral.transfer.exportDir(vault, vaultpath, hostdir, { ref: opts.rev, force: opts.force === true, onProgress: progress.update });
            to = r.hostPath ?? hostdir;
          }
        } finally {
          progress.stop();
        }
        const summary = `exported ${countsText(r)} from ${r.path} to ${to}`;
        // With the tar on stdout, stdout carries only the tar: the summary goes to stderr.
        if (opts.tar === '-') ctx.out.note(summary);
        else ctx.out.result({ ...r, to }, () => summary);
      }),
    );

  const bundle = program
    .command('bundle')
    .description('move a vault with its whole history between Corral homes as one file')
    .addHelpText('after', '\nExamples:\n  $ corral bundle export my-agent my-agent.corral\n  $ CORRAL_HOME=/other/home corral bundle import my-agent.corral --name restored');

  bundle
    .command('export <vaultOrFile> [file]')
    .description("write a vault's full history (commits, trees, files, checkpoints, tags, metadata, quota) to one portable file")
    .option('-f, --force', 'replace FILE when it exists')
    .addHelpText(
      'after',
      `
With one argument, exports the current vault to FILE; with two, exports VAULT.
The file is a small SQLite database; 'corral bundle import' verifies every object in it.

Examples:
  $ corral bundle export backup.corral
  $ corral bundle export my-agent /mnt/usb/my-agent.corral`,
    )
    .action(
      ctx.action((first: string, second: string | undefined, opts: { force?: boolean }) => {
        const vault = second === undefined ? ctx.vault() : first;
        const file = second ?? first;
        const r = ctx.corral.bundles.exportBundle(vault, file, { force: opts.force === true });
        ctx.out.result(r, (d) => `exported vault ${d.vault} to ${d.file}: ${d.commits} commits, ${d.checkpoints} checkpoints, ${d.blobs} blobs (${formatBytes(d.bytes)})`);
      }),
    );

  bundle
    .command('import <file>')
    .description('create a vault from a bundle file, verifying every object; refuses an existing vault name')
    .option('--name <vault>', "the new vault's name (default: the name in the bundle)")
    .addHelpText(
      'after',
      `
Every blob, tree and commit is checked against its hash, and the head and checkpoints must
point at commits in the bundle; a damaged or tampered bundle is refused and nothing changes.

Examples:
  $ corral bundle import backup.corral
  $ corral bundle import backup.corral --name my-agent-copy`,
    )
    .action(
      ctx.action((file: string, opts: { name?: string }) => {
        const r = ctx.corral.bundles.importBundle(file, { name: opts.name });
        ctx.out.result(r, (d) => `imported vault ${d.vault}${d.vault !== d.source ? ` (was ${d.source})` : ''} from ${d.file}: ${d.commits} commits, ${d.checkpoints} checkpoints, head ${shortId(d.head)}`);
      }),
    );
}
