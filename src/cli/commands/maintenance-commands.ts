// corral stats, corral gc, corral compact.
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { DEFAULT_GC_GRACE_SECONDS, type ObjectCounts, type VaultStats } from '../../services/maintenance-service.ts';
import type { CliContext } from '../context.ts';
import { type Colors, formatBytes, shortId, table } from '../output.ts';

/** Seconds, or a duration with a unit: 90, 90s, 30m, 2h, 7d. */
function parseGrace(text: string): number {
  const m = /^(\d{1,12})([smhd]?)$/.exec(text.trim());
  if (!m) throw new CorralError('INVALID_ARGUMENT', `--grace takes whole seconds or a duration (90, 30m, 2h, 7d), got '${text}'`, { grace: text });
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

function plural(n: number, one: string, many = one + 's'): string {
  return `${n} ${n === 1 ? one : many}`;
}

function dedup(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

function vaultLines(s: VaultStats, c: Colors): string[] {
  return [
    `${c.bold(s.vault)}  ${c.dim(`head ${shortId(s.head)}`)}`,
    `  files        ${plural(s.files, 'file')}, ${plural(s.dirs, 'directory', 'directories')}, ${plural(s.symlinks, 'symlink')}`,
    `  history      ${plural(s.commits, 'commit')} reachable, ${plural(s.checkpoints, 'checkpoint')}`,
    `  content      ${formatBytes(s.logicalBytes)} logical, ${formatBytes(s.storedBytes)} stored in ${plural(s.blobs, 'distinct blob')} (dedup ${dedup(s.dedupRatio)})`,
  ];
}

function counts(o: ObjectCounts): string {
  return `${plural(o.commits, 'commit')}, ${plural(o.trees, 'tree')}, ${plural(o.blobs, 'blob')}`;
}

export function registerMaintenanceCommands(program: Command, ctx: CliContext): void {
  program
    .command('stats')
    .description("sizes and counts of the current vault's head and history, or with --all of the whole home and its database")
    .option('--all', 'the whole home: database size, pages, object rows, and every vault')
    .addHelpText(
      'after',
      `
"logical" is the size of all files at the head; "stored" counts each distinct content once, so
logical/stored is what deduplication saves.

Examples:
  $ corral stats
  $ corral stats --vault experiment --json
  $ corral stats --all`,
    )
    .action(
      ctx.action((opts: { all?: boolean }) => {
        const m = ctx.corral.maintenance;
        if (!opts.all) {
          ctx.out.result(m.stats(ctx.vault()), (d, c) => vaultLines(d, c));
          return;
        }
        const data = { home: m.homeStats(), vaults: m.allVaultStats() };
        ctx.out.result(data, (d, c) => {
          const h = d.home;
          const db = h.database;
          return [
            `${c.bold('home')} ${h.home}`,
            `  database     ${formatBytes(db.bytes)} (main ${formatBytes(db.mainBytes)} + WAL ${formatBytes(db.walBytes)}), ${db.pageCount} pages of ${db.pageSize} bytes, ${db.freelistCount} free`,
            `  objects      ${plural(h.rows.blobs, 'blob')} (${formatBytes(h.blobBytes)}), ${plural(h.rows.trees, 'tree')}, ${plural(h.rows.commits, 'commit')}, ${plural(h.rows.checkpoints, 'checkpoint')}, ${plural(h.rows.auditRecords, 'audit record')}`,
            `  heads        ${plural(h.vaults, 'vault')}, ${plural(h.heads.files, 'file')}: ${formatBytes(h.heads.logicalBytes)} logical, ${formatBytes(h.heads.storedBytes)} stored in ${plural(h.heads.blobs, 'blob')} (dedup ${dedup(h.heads.dedupRatio)})`,
            ...(d.vaults.length === 0
              ? []
              : [
                  '',
                  ...table([
                    ['VAULT', 'FILES', 'DIRS', 'LINKS', 'COMMITS', 'CHECKPOINTS', 'BLOBS', 'LOGICAL', 'STORED', 'DEDUP'],
                    ...d.vaults.map((v) => [v.vault, String(v.files), String(v.dirs), String(v.symlinks), String(v.commits), String(v.checkpoints), String(v.blobs), formatBytes(v.logicalBytes), formatBytes(v.storedBytes), dedup(v.dedupRatio)]),
                  ]).map((l, i) => (i === 0 ? c.dim(l) : l)),
                ]),
          ];
        });
      }),
    );

  program
    .command('gc')
    .description('remove commits, trees and blobs no vault head or checkpoint can reach (deleted vaults, dropped history)')
    .option('-n, --dry-run', 'report what would be removed without removing it')
    .option('--grace <seconds>', 'keep objects younger than this, and all they refer to (seconds, or 30m, 2h, 7d)', String(DEFAULT_GC_GRACE_SECONDS))
    .addHelpText(
      'after',
      `
Everything reachable from any vault's head or checkpoint is kept, following parents (a fork
keeps the history it shares with a deleted parent). Objects younger than the grace period are
kept too, so a write in progress in another process never loses its parts. The database file
keeps its size until 'corral compact'.

Examples:
  $ corral gc --dry-run
  $ corral gc
  $ corral gc --grace 0 && corral compact`,
    )
    .action(
      ctx.action((opts: { dryRun?: boolean; grace: string }) => {
        const graceSeconds = parseGrace(opts.grace);
        const progress = ctx.out.progress('gc: marking trees');
        let r;
        try {
          r = ctx.corral.maintenance.gc({ dryRun: opts.dryRun === true, graceSeconds, progress });
        } finally {
          progress.stop();
        }
        ctx.out.result(r, (d, c) => {
          const x = d.removed;
          const verb = d.dryRun ? 'would remove' : 'removed';
          const lines = [
            `${d.dryRun ? c.yellow('dry run: ') : ''}${verb} ${counts(x)}: ${formatBytes(x.bytes)} (${formatBytes(x.blobBytes)} of file content)`,
            `kept ${counts(d.reachable)} reachable from vault heads and checkpoints`,
          ];
          const g = d.keptByGrace;
          if (g.commits + g.trees + g.blobs > 0) lines.push(`kept ${counts(g)} younger than the grace period (${d.graceSeconds} s)`);
          if (!d.dryRun && x.bytes > 0) lines.push(c.dim("the database file keeps its size until 'corral compact'"));
          return lines;
        });
      }),
    );

  program
    .command('compact')
    .description('shrink the database file: fold the write-ahead log in, drop free pages (VACUUM), merge the search index')
    .addHelpText(
      'after',
      `
Needs free disk space about the size of the database while it runs. Run it after 'corral gc'.

Examples:
  $ corral gc && corral compact
  $ corral compact --json`,
    )
    .action(
      ctx.action(() => {
        const r = ctx.corral.maintenance.compact();
        ctx.out.result(r, (d) => [
          `database ${formatBytes(d.before.bytes)} -> ${formatBytes(d.after.bytes)} (${d.bytesFreed >= 0 ? `${formatBytes(d.bytesFreed)} freed` : `${formatBytes(-d.bytesFreed)} grown`})`,
          ...(d.walBusy ? ['another process was reading: the write-ahead log is folded in when it finishes'] : []),
        ]);
      }),
    );
}
