// corral vault create|list|use|info|rename|delete|fork, and corral quota.
import type { Command } from 'commander';
import { type CliContext, parseSize, parseCount } from '../context.ts';
import { formatBytes, formatTime, shortId, table, examples } from '../output.ts';
import type { Quota } from '../../store/corral-store.ts';

function quotaText(q: Quota): string {
  const parts = [
    q.maxBytes !== null ? `max ${formatBytes(q.maxBytes)}` : null,
    q.maxFiles !== null ? `max ${q.maxFiles} files` : null,
    q.maxFileSize !== null ? `max file ${formatBytes(q.maxFileSize)}` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'none';
}

export function registerVaultCommands(program: Command, ctx: CliContext): void {
  const vault = program
    .command('vault')
    .description('create, list, select, inspect, rename, delete and fork vaults')
    .addHelpText('after', examples('corral vault create my-agent --use', 'corral vault fork my-agent experiment', 'corral vault list --json'));

  vault
    .command('create <name>')
    .description('create an empty vault')
    .option('--use', 'also make it the current vault')
    .addHelpText('after', '\nExamples:\n  $ corral vault create my-agent --use')
    .action(
      ctx.action((name: string, opts: { use?: boolean }) => {
        const v = ctx.corral.vaults.create(name);
        if (opts.use) ctx.corral.vaults.use(name);
        ctx.out.result({ vault: v, current: opts.use === true }, (d, c) => `created vault ${c.bold(d.vault.name)}${d.current ? ' (now current)' : ''}`);
      }),
    );

  vault
    .command('list')
    .alias('ls')
    .description('list vaults')
    .addHelpText('after', examples('corral vault list', 'corral vault list --json'))
    .action(
      ctx.action(() => {
        const vaults = ctx.corral.vaults.list();
        ctx.out.result({ vaults }, (d, c) =>
          d.vaults.length === 0
            ? "no vaults yet: create one with 'corral vault create NAME'"
            : table([['', 'NAME', 'FILES', 'SIZE', 'PARENT', 'CREATED'], ...d.vaults.map((v) => [v.current ? '*' : ' ', v.name, String(v.files), formatBytes(v.bytes), v.parent ?? '-', formatTime(v.createdAt)])]).map((l, i) => (i === 0 ? c.dim(l) : l)),
        );
      }),
    );

  vault
    .command('use <name>')
    .description('make a vault the current one')
    .addHelpText('after', examples('corral vault use my-agent'))
    .action(
      ctx.action((name: string) => {
        const v = ctx.corral.vaults.use(name);
        ctx.out.result({ current: v.name }, (d) => `now using vault ${d.current}`);
      }),
    );

  vault
    .command('info [name]')
    .description('show a vault: head, size, history, parent and the commit it was forked from, quota')
    .addHelpText('after', examples('corral vault info', 'corral vault info experiment --json'))
    .action(
      ctx.action((name: string | undefined) => {
        const info = ctx.corral.vaults.info(name ?? ctx.vault());
        ctx.out.result(info, (d, c) => [
          `${c.bold(d.name)}${d.current ? c.green(' (current)') : ''}`,
          `  head         ${shortId(d.head)}  ${d.lastChange.message} (${d.lastChange.origin}, ${formatTime(d.lastChange.createdAt)})`,
          `  files        ${d.files} (${formatBytes(d.bytes)})`,
          `  commits      ${d.commits}`,
          `  checkpoints  ${d.checkpoints}`,
          `  parent       ${d.parent ? `${d.parent} at ${shortId(d.forkedFrom ?? '')}` : '-'}`,
          `  quota        ${quotaText(d.quota)}`,
          `  created      ${formatTime(d.createdAt)}`,
        ]);
      }),
    );

  vault
    .command('rename <from> <to>')
    .description('rename a vault')
    .addHelpText('after', examples('corral vault rename scratch agent-2'))
    .action(
      ctx.action((from: string, to: string) => {
        const v = ctx.corral.vaults.rename(from, to);
        ctx.out.result({ vault: v, from }, (d) => `renamed ${d.from} to ${d.vault.name}`);
      }),
    );

  vault
    .command('delete <name>')
    .alias('rm')
    .description('delete a vault with its checkpoints, tags and metadata (needs --yes)')
    .option('-y, --yes', 'confirm the deletion')
    .addHelpText('after', examples('corral vault delete scratch --yes'))
    .action(
      ctx.action((name: string, opts: { yes?: boolean }) => {
        const v = ctx.corral.vaults.delete(name, opts.yes === true);
        ctx.out.result({ deleted: v.name }, (d) => `deleted vault ${d.deleted} (its space is reclaimed by 'corral gc')`);
      }),
    );

  vault
    .command('fork <source> <name>')
    .description('create a vault that starts from the head of another: cheap, no file is copied')
    .option('--use', 'make the fork the current vault')
    .addHelpText('after', '\nExamples:\n  $ corral vault fork main experiment --use')
    .action(
      ctx.action((source: string, name: string, opts: { use?: boolean }) => {
        const v = ctx.corral.vaults.fork(source, name, { use: opts.use === true });
        ctx.out.result({ vault: v, current: opts.use === true }, (d, c) => `forked ${c.bold(d.vault.name)} from ${d.vault.parent} at ${shortId(d.vault.forkedFrom ?? '')}${d.current ? ' (now current)' : ''}`);
      }),
    );

  const quota = program
    .command('quota')
    .description("show or set the current vault's quotas (total bytes, file count, max file size)")
    .addHelpText('after', examples('corral quota', 'corral quota set --max-bytes 100M --max-files 10000'));
  quota
    .command('show', { isDefault: true })
    .description('show the quotas and the current usage')
    .addHelpText('after', examples('corral quota', 'corral quota show --json'))
    .action(
      ctx.action(() => {
        const name = ctx.vault();
        const q = ctx.corral.vaults.quota(name);
        ctx.out.result({ vault: name, ...q }, (d) => [`quota of ${d.vault}: ${quotaText(d)}`, `usage: ${formatBytes(d.bytes)} in ${d.files} files`]);
      }),
    );
  quota
    .command('set')
    .description('set one or more quotas (sizes take k, M, G suffixes; "none" removes a limit)')
    .option('--max-bytes <size>', 'total bytes of all files')
    .option('--max-files <n>', 'number of files and symlinks')
    .option('--max-file-size <size>', 'largest single file')
    .addHelpText('after', '\nExamples:\n  $ corral quota set --max-bytes 100M --max-files 10000 --max-file-size 10M\n  $ corral quota set --max-bytes none')
    .action(
      ctx.action((opts: { maxBytes?: string; maxFiles?: string; maxFileSize?: string }) => {
        const name = ctx.vault();
        const next: Partial<Quota> = {};
        const pick = (v: string | undefined, parse: (t: string) => number): number | null | undefined => (v === undefined ? undefined : v === 'none' ? null : parse(v));
        const b = pick(opts.maxBytes, (t) => parseSize(t, 'maxBytes'));
        const f = pick(opts.maxFiles, (t) => parseCount(t, 'maxFiles'));
        const s = pick(opts.maxFileSize, (t) => parseSize(t, 'maxFileSize'));
        if (b !== undefined) next.maxBytes = b;
        if (f !== undefined) next.maxFiles = f;
        if (s !== undefined) next.maxFileSize = s;
        const q = ctx.corral.vaults.setQuota(name, next);
        ctx.out.result({ vault: name, quota: q }, (d) => `quota of ${d.vault}: ${quotaText(d.quota)}`);
      }),
    );
}
