// corral audit [filters] and corral audit verify.
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { normalizePath } from '../../protocol/paths.ts';
import { type CliContext, parseCount } from '../context.ts';
import { escapeControls, examples, formatTime } from '../output.ts';

/** Accepts an ISO time, or a duration back from now: 30s, 15m, 2h, 7d. */
export function parseSince(text: string, now = Date.now()): number {
  const rel = /^(\d+)([smhd])$/.exec(text);
  if (rel) return now - Number(rel[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new CorralError('INVALID_ARGUMENT', `--since takes an ISO time (2026-11-23T10:00:00Z) or a duration (30m, 2h, 7d), got '${text}'`);
  return t;
}

export function registerAuditCommands(program: Command, ctx: CliContext): void {
  const audit = program
    .command('audit')
    .description('the append-only, hash-chained log of every change (all vaults unless --vault is given)')
    .option('--op <op>', 'only this operation (file.write, vault.fork, checkpoint.restore, ...)')
    .option('--path <path>', 'only records about PATH or below it')
    .option('--since <time>', 'only records since an ISO time or a duration back (30m, 2h, 7d)')
    .option('-n, --limit <n>', 'the last N records', '100')
    .addHelpText('after', '\nExamples:\n  $ corral audit --op file.write --since 1h\n  $ corral audit verify')
    .action(
      ctx.action((opts: { op?: string; path?: string; since?: string; limit: string }) => {
        const records = ctx.corral.store.audit.list({
          op: opts.op,
          vault: ctx.globals.vault,
          path: opts.path === undefined ? undefined : normalizePath(opts.path),
          since: opts.since === undefined ? undefined : parseSince(opts.since),
          limit: parseCount(opts.limit, 'limit'),
        });
        ctx.out.result({ records }, (d, c) =>
          d.records.length
            ? d.records.map((r) => `${c.dim(String(r.seq).padStart(6))} ${formatTime(r.ts)} ${r.result === 'ok' ? c.green('ok ') : c.red(r.result)} ${r.op} ${r.vault ?? '-'} ${escapeControls(r.target ?? '')} ${c.dim(escapeControls(r.actor))}`)
            : 'no audit records match',
        );
      }),
    );

  audit
    .command('verify')
    .description('check the hash chain: reports any changed, deleted or inserted record and where')
    .addHelpText('after', examples('corral audit verify', 'corral audit verify --json'))
    .action(
      ctx.action(() => {
        const v = ctx.corral.store.audit.verify();
        ctx.out.result(v, (d, c) => (d.ok ? c.green(`audit log intact: ${d.records} records, chain verified`) : [c.red(`audit log TAMPERED: ${d.problems.length} problem(s) in ${d.records} records`), ...d.problems.map((p) => `  record ${p.seq}: ${p.problem}: ${p.message}`)]));
        if (!v.ok) ctx.exitCode = 7;
      }),
    );
}
