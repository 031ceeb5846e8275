// corral ls|cat|write|mkdir|rm|cp|mv|tree|stat|touch|ln|chmod.
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { type CliContext, readStdin } from '../context.ts';
import { MAX_ENTRY_BYTES } from '../../runtime/transfer-limits.ts';
import { fileSizeQuotaError } from '../../store/tree-editor.ts';
import { escapeControls as safe, formatBytes, formatMode, formatTime, shortId, table, type Colors, examples } from '../output.ts';
import type { FileStat, TreeNode } from '../../services/file-service.ts';
import { textOf } from '../../services/search-service.ts';

function parseMode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-7]{1,4}$/.test(text)) throw new CorralError('INVALID_ARGUMENT', `mode must be octal like 644 or 755, got '${text}'`, { mode: text });
  return parseInt(text, 8);
}

/** A name for human output: control characters escaped (see escapeControls), then coloured. */
function nameOf(f: FileStat, c: Colors): string {
  const name = safe(f.name);
  if (f.kind === 'dir') return c.blue(c.bold(name || '/')) + '/';
  if (f.kind === 'symlink') return `${c.cyan(name)} -> ${safe(f.target ?? '')}`;
  return f.mode & 0o111 ? c.green(name) : name;
}

function commitNote(commit: { id: string } | null): string {
  return commit ? ` (commit ${shortId(commit.id)})` : ' (no change)';
}

function renderTree(node: TreeNode, c: Colors): string[] {
  const lines = [node.path === '/' ? c.blue(c.bold('/')) : nameOf({ ...node, name: node.path }, c)];
  const walk = (n: TreeNode, prefix: string): void => {
    const kids = n.children ?? [];
    kids.forEach((k, i) => {
      const last = i === kids.length - 1;
      lines.push(prefix + (last ? '└── ' : '├── ') + nameOf(k, c));
      walk(k, prefix + (last ? '    ' : '│   '));
    });
  };
  walk(node, '');
  return lines;
}

/** A file's content from stdin, read only up to the vault's max file size, not up to Corral's own limit. */
async function readFileStdin(ctx: CliContext, vault: string, path: string): Promise<Uint8Array> {
  const quota = ctx.corral.store.getVault(vault).quota.maxFileSize;
  if (quota === null || quota >= MAX_ENTRY_BYTES) return readStdin();
  return readStdin(quota, 'the file', process.stdin, (total) => fileSizeQuotaError(path, total, quota));
}

export function registerFileCommands(program: Command, ctx: CliContext): void {
  program
    .command('ls [path]')
    .description('list a directory (or show one entry)')
    .option('-l, --long', 'long form: mode, size, modified time, name')
    .option('-a, --all', 'include names starting with .')
    .option('--rev <ref>', 'list at a checkpoint, commit or HEAD~N instead of the head')
    .addHelpText('after', '\nExamples:\n  $ corral ls /src -l\n  $ corral ls / --rev before-refactor')
    .action(
      ctx.action((path: string | undefined, opts: { long?: boolean; all?: boolean; rev?: string }) => {
        const entries = ctx.corral.files.ls(ctx.vault(), path ?? '/', { all: opts.all === true, ref: opts.rev });
        ctx.out.result({ path: path ?? '/', entries }, (d, c) =>
          opts.long
            ? // The name is the last, unpadded column, so it can carry colour.
              table(d.entries.map((e) => [formatMode(e.kind, e.mode), e.kind === 'dir' ? `${e.files ?? 0} files` : String(e.size), formatTime(e.mtime), ''])).map((l, i) => l + nameOf(d.entries[i]!, c))
            : d.entries.map((e) => nameOf(e, c)),
        );
      }),
    );

  program
    .command('cat <path>')
    .description("print a file's content (follows symlinks that stay inside the vault)")
    .option('--rev <ref>', 'the version at a checkpoint, commit or HEAD~N')
    .addHelpText('after', '\nExamples:\n  $ corral cat /README.md\n  $ corral cat /config.json --rev HEAD~3')
    .action(
      ctx.action((path: string, opts: { rev?: string }) => {
        const data = ctx.corral.files.cat(ctx.vault(), path, opts.rev);
        if (ctx.out.json) {
          // Decoded by Buffer, not taken from textOf: the content stays exact, a BOM included.
          const binary = textOf(data) === undefined;
          ctx.out.result({ path, size: data.length, encoding: binary ? 'base64' : 'utf8', content: Buffer.from(data).toString(binary ? 'base64' : 'utf8') }, () => undefined);
        } else ctx.out.bytes(data);
      }),
    );

  program
    .command('write <path> [content]')
    .description('write a file from CONTENT, or from stdin when CONTENT is absent (parents are created)')
    .option('--append', 'append instead of replacing')
    .option('--mode <octal>', 'permission bits, e.g. 755 for an executable')
    .option('-m, --message <text>', 'commit message')
    .addHelpText('after', "\nContent that starts with '-' goes after '--'.\n\nExamples:\n  $ corral write /hello.txt 'hello world'\n  $ corral write /list.md -- '- first item'\n  $ cat build.sh | corral write /build.sh --mode 755\n  $ echo more | corral write /log.txt --append")
    .action(
      ctx.action(async (path: string, content: string | undefined, opts: { append?: boolean; mode?: string; message?: string }) => {
        const vault = ctx.vault();
        const data = content !== undefined ? new TextEncoder().encode(content) : await readFileStdin(ctx, vault, path);
        const r = ctx.corral.files.write(vault, path, data, { append: opts.append === true, mode: parseMode(opts.mode), message: opts.message });
        ctx.out.result(r, (d) => `wrote ${safe(d.path)} (${formatBytes(d.size)})${commitNote(d.commit)}`);
      }),
    );

  program
    .command('mkdir <path>')
    .description('create a directory')
    .option('-p, --parents', 'create missing parents; no error if it exists')
    .addHelpText('after', examples('corral mkdir /src/lib -p'))
    .action(
      ctx.action((path: string, opts: { parents?: boolean }) => {
        const r = ctx.corral.files.mkdir(ctx.vault(), path, { parents: opts.parents === true });
        ctx.out.result(r, (d) => `created ${safe(d.path)}${commitNote(d.commit)}`);
      }),
    );

  program
    .command('rm <path>')
    .description('remove a file, link, or (with -r) a directory')
    .option('-r, --recursive', 'remove directories and their contents')
    .option('-f, --force', 'no error when the path does not exist')
    .addHelpText('after', examples('corral rm /notes.txt', 'corral rm -r /build', 'corral rm -f /maybe-there'))
    .action(
      ctx.action((path: string, opts: { recursive?: boolean; force?: boolean }) => {
        const r = ctx.corral.files.rm(ctx.vault(), path, { recursive: opts.recursive === true, force: opts.force === true });
        ctx.out.result(r, (d) => `removed ${safe(d.path)} (${d.removed} files)${commitNote(d.commit)}`);
      }),
    );

  program
    .command('cp <from> <to>')
    .description('copy a file or link, or (with -r) a directory; into TO when TO is a directory')
    .option('-r, --recursive', 'copy directories')
    .addHelpText('after', examples('corral cp /config.json /config.backup.json', 'corral cp -r /src /src-copy'))
    .action(
      ctx.action((from: string, to: string, opts: { recursive?: boolean }) => {
        const r = ctx.corral.files.cp(ctx.vault(), from, to, { recursive: opts.recursive === true });
        ctx.out.result(r, (d) => `copied ${safe(d.from)} to ${safe(d.to)}${commitNote(d.commit)}`);
      }),
    );

  program
    .command('mv <from> <to>')
    .description('move or rename; into TO when TO is a directory')
    .addHelpText('after', examples('corral mv /draft.md /docs/final.md', 'corral mv /old-dir /archive/'))
    .action(
      ctx.action((from: string, to: string) => {
        const r = ctx.corral.files.mv(ctx.vault(), from, to);
        ctx.out.result(r, (d) => `moved ${safe(d.from)} to ${safe(d.to)}${commitNote(d.commit)}`);
      }),
    );

  program
    .command('tree [path]')
    .description('show a directory tree')
    .option('-L, --level <n>', 'descend at most N levels')
    .option('-a, --all', 'include names starting with .')
    .option('--rev <ref>', 'at a checkpoint, commit or HEAD~N')
    .addHelpText('after', examples('corral tree', 'corral tree /src -L 2'))
    .action(
      ctx.action((path: string | undefined, opts: { level?: string; all?: boolean; rev?: string }) => {
        let depth: number | undefined;
        if (opts.level !== undefined) {
          if (!/^\d{1,4}$/.test(opts.level) || Number(opts.level) < 1) throw new CorralError('INVALID_ARGUMENT', `-L takes a level of at least 1, got '${opts.level}'`);
          depth = Number(opts.level);
        }
        const t = ctx.corral.files.tree(ctx.vault(), path ?? '/', { depth, all: opts.all === true, ref: opts.rev });
        ctx.out.result(t, (d, c) => renderTree(d, c));
      }),
    );

  program
    .command('stat <path>')
    .description('show an entry: kind, mode, size, modified time, content hash, link target')
    .option('--rev <ref>', 'at a checkpoint, commit or HEAD~N')
    .addHelpText('after', examples('corral stat /build.sh', 'corral stat /link --json'))
    .action(
      ctx.action((path: string, opts: { rev?: string }) => {
        const s = ctx.corral.files.stat(ctx.vault(), path, opts.rev);
        ctx.out.result(s, (d) => [
          `  path   ${safe(d.path)}`,
          `  kind   ${d.kind}${d.target !== undefined ? ` -> ${safe(d.target)}` : ''}`,
          `  mode   ${formatMode(d.kind, d.mode)} (${d.mode.toString(8).padStart(4, '0')})`,
          `  size   ${d.size}${d.files !== undefined ? ` (${d.files} files)` : ''}`,
          `  mtime  ${formatTime(d.mtime)}`,
          `  hash   ${d.hash}`,
        ]);
      }),
    );

  program
    .command('touch <path>')
    .description("create an empty file, or update an entry's modified time")
    .addHelpText('after', examples('corral touch /.keep'))
    .action(
      ctx.action((path: string) => {
        const r = ctx.corral.files.touch(ctx.vault(), path);
        ctx.out.result(r, (d) => `touched ${safe(d.path)}${commitNote(d.commit)}`);
      }),
    );

  program
    .command('ln <target> <path>')
    .description('create a symlink at PATH pointing to TARGET (stored as a link, never followed out of the vault)')
    .option('-s, --symbolic', 'accepted for familiarity: every link is symbolic')
    .addHelpText('after', examples('corral ln -s ../shared/config.json /app/config.json'))
    .action(
      ctx.action((target: string, path: string) => {
        const r = ctx.corral.files.symlink(ctx.vault(), target, path);
        ctx.out.result(r, (d) => `linked ${safe(d.path)} -> ${safe(d.target ?? '')}${commitNote(d.commit)}`);
      }),
    );

  program
    .command('chmod <mode> <path>')
    .description('set the permission bits of a file or directory (octal, e.g. 755)')
    .addHelpText('after', examples('corral chmod 755 /scripts/run.sh'))
    .action(
      ctx.action((mode: string, path: string) => {
        const r = ctx.corral.files.chmod(ctx.vault(), path, parseMode(mode)!);
        ctx.out.result(r, (d) => `mode of ${safe(d.path)} is now ${d.mode.toString(8)}${commitNote(d.commit)}`);
      }),
    );
}
