// corral exec (run a command against a vault, in a sandbox, under policy) and corral approvals.
import { accessSync, constants, statSync } from 'node:fs';
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { execExitCode, type ExecResult, type PathChange } from '../../protocol/exec-result.ts';
import { parseDuration, parseSize } from '../../protocol/units.ts';
import type { BackendName, ResourceLimits } from '../../runtime/backend.ts';
import type { ExecRequest } from '../../services/exec-service.ts';
import type { Approval, ApprovalState } from '../../services/approval-service.ts';
import { parseCount, type CliContext } from '../context.ts';
import { escapeControls, examples, formatBytes, formatTime, table, type Colors } from '../output.ts';

interface ExecOptions {
  shell?: string;
  backend: string;
  policy?: string;
  timeout?: string;
  grace?: string;
  readonly?: boolean;
  cwd?: string;
  env: string[];
  memory?: string;
  pids?: string;
  cpu?: string;
  tmpSize?: string;
  openFiles?: string;
  fileSize?: string;
  network?: boolean;
  bestEffort?: boolean;
  checkpoint: string;
  onFailure: string;
  stdin?: string;
  waitApproval?: string;
  resume?: string;
  outputCap?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new CorralError('INVALID_ARGUMENT', `--env takes NAME=VALUE, got '${p}'`, { env: p });
    env[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return env;
}

function choice<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new CorralError('INVALID_ARGUMENT', `${what} must be one of ${allowed.join(', ')}, got '${value}'`, { [what]: value });
  return value as T;
}

export function execRequest(argv: string[], opts: ExecOptions, vault: string): ExecRequest {
  if (opts.resume === undefined && (opts.shell === undefined) === (argv.length === 0))
    throw new CorralError('INVALID_ARGUMENT', 'give a command after -- or a shell string with --shell (not both)', {});
  const limits: ResourceLimits = {};
  const positive = (n: number, flag: string, min = 1): number => {
    if (n < min) throw new CorralError('INVALID_ARGUMENT', `--${flag} must be at least ${min}, got ${n}`, { [flag]: n });
    return n;
  };
  if (opts.memory !== undefined) limits.memoryBytes = positive(parseSize(opts.memory, 'memory'), 'memory', 1 << 20);
  if (opts.pids !== undefined) limits.pids = positive(parseCount(opts.pids, 'pids'), 'pids');
  if (opts.cpu !== undefined) limits.cpuPercent = positive(parseCount(opts.cpu, 'cpu'), 'cpu');
  if (opts.tmpSize !== undefined) limits.tmpSizeBytes = positive(parseSize(opts.tmpSize, 'tmp-size'), 'tmp-size', 4096);
  if (opts.openFiles !== undefined) limits.openFiles = positive(parseCount(opts.openFiles, 'open-files'), 'open-files', 16);
  if (opts.fileSize !== undefined) limits.fileSizeBytes = positive(parseSize(opts.fileSize, 'file-size'), 'file-size');
  return {
    vault,
    ...(opts.shell !== undefined ? { shell: opts.shell } : argv.length > 0 ? { argv } : {}),
    cwd: opts.cwd,
    env: parseEnv(opts.env),
    backend: choice(opts.backend, ['auto', 'host', 'namespace'] as const, 'backend') as BackendName | 'auto',
    policy: opts.policy,
    ...(opts.timeout !== undefined ? { timeoutMs: positive(parseDuration(opts.timeout, 'timeout'), 'timeout') } : {}),
    ...(opts.grace !== undefined ? { graceMs: parseDuration(opts.grace, 'grace') } : {}),
    ...(opts.outputCap !== undefined ? { outputCap: parseSize(opts.outputCap, 'output-cap') } : {}),
    readonly: opts.readonly === true,
    network: opts.network === true,
    limits,
    bestEffort: opts.bestEffort === true,
    checkpoint: choice(opts.checkpoint, ['auto', 'never'] as const, 'checkpoint'),
    onFailure: choice(opts.onFailure, ['keep', 'discard'] as const, 'on-failure'),
    ...(opts.waitApproval !== undefined ? { approvalWaitMs: parseDuration(opts.waitApproval, 'wait-approval') } : {}),
    ...(opts.resume !== undefined ? { resume: opts.resume } : {}),
  };
}

function changeLines(prefix: string, list: PathChange[], c: Colors, color: (s: string) => string): string[] {
  return list.map((p) => `  ${color(prefix)} ${escapeControls(p.path)}${p.kind === 'dir' ? '/' : ''} ${c.dim(`(${formatBytes(p.size)})`)}`);
}

/** The human summary of an exec, printed on stderr after the command's own output. */
export function renderExecSummary(r: ExecResult, c: Colors): string[] {
  const lines: string[] = [];
  const d = r.decision;
  if (d) lines.push(`${c.dim('policy')}   ${d.action === 'deny' ? c.red(d.action) : d.action === 'allow' ? c.green(d.action) : c.yellow(d.action)} ${c.dim(`[${d.categories.join(', ') || '-'}] rule ${d.rule}`)}: ${escapeControls(d.reason)}`);
  if (r.checkpoint) lines.push(`${c.dim('checkpoint')} ${r.checkpoint} (restore with: corral checkpoint restore ${r.checkpoint})`);
  if (r.status === 'pending' && r.approval)
    lines.push(`${c.yellow('pending')}  approval ${r.approval.id} (expires ${r.approval.expiresAt}): a person answers with 'corral approvals approve ${r.approval.id}', then run 'corral exec --resume ${r.approval.id}'`);
  if (r.status === 'denied') lines.push(`${c.red('denied')}   the command did not run`);
  if (r.status === 'failed' && r.error) lines.push(`${c.red('failed')}   ${r.error.code}: ${escapeControls(r.error.message)}`);
  if (r.status === 'completed') {
    const how = r.timedOut ? c.red(`timed out (${r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`})`) : r.signal ? c.red(`killed by ${r.signal}`) : r.exitCode === 0 ? c.green('exit 0') : c.red(`exit ${r.exitCode}`);
    lines.push(`${c.dim('result')}   ${how}${r.oomKilled ? c.red(' (out of memory)') : ''} in ${Math.round(r.durationMs)} ms on ${r.backend}${r.truncated ? c.yellow(' (output truncated)') : ''}`);
    const ch = r.changes;
    if (ch) {
      if (ch.discarded) lines.push(`${c.dim('changes')}  discarded (${ch.discarded})`);
      else if (!ch.commit) lines.push(`${c.dim('changes')}  none`);
      else {
        lines.push(`${c.dim('changes')}  commit ${ch.commit.slice(0, 12)}: ${ch.added.length} added, ${ch.modified.length} modified, ${ch.deleted.length} deleted`);
        lines.push(...changeLines('+', ch.added, c, c.green), ...changeLines('~', ch.modified, c, c.yellow), ...changeLines('-', ch.deleted, c, c.red));
      }
      for (const s of ch.skipped ?? []) lines.push(c.yellow(`  skipped ${escapeControls(s.path)}: ${s.reason}`));
    }
  }
  for (const w of r.warnings) lines.push(c.yellow(`warning  ${escapeControls(w)}`));
  return lines.map((l) => `corral: ${l}`);
}

function approvalRows(list: Approval[]): string[][] {
  return [['ID', 'STATE', 'VAULT', 'CREATED', 'COMMAND', 'REASON'], ...list.map((a) => [a.id, a.state, a.vault, formatTime(a.createdAt), escapeControls(a.command).slice(0, 60), escapeControls(a.reason).slice(0, 60)])];
}

export function registerExecCommands(program: Command, ctx: CliContext): void {
  program
    .command('exec [argv...]')
    .description('run a command against a vault in a sandbox, under policy; its changes become one commit')
    .option('--shell <script>', 'run a shell string with bash -c (not a login shell)')
    .option('--backend <name>', 'host, namespace or auto (the most isolated available)', 'auto')
    .option('--policy <preset|file>', 'a preset (permissive, workstation, strict, paranoid, read-only, workspace-write, full-access) or a YAML/JSON policy file (default workstation)')
    .option('--timeout <duration>', 'kill the whole process tree after this long: 500ms, 2s, 5m or ms (default 5m)')
    .option('--grace <duration>', 'between SIGTERM and SIGKILL on timeout (default 2s)')
    .option('--readonly', 'the workspace is read-only; nothing is committed')
    .option('--cwd <path>', 'working directory inside the workspace: relative, or under /workspace')
    .option('--env <NAME=VALUE>', 'add a variable to the clean environment (repeatable)', collect, [])
    .option('--memory <size>', 'memory limit: 64m, 1g or bytes (cgroups)')
    .option('--pids <n>', 'process limit (cgroups)')
    .option('--cpu <percent>', 'CPU quota, 100 = one core (cgroups)')
    .option('--tmp-size <size>', 'size of the private /tmp (namespace backend, default 64m)')
    .option('--open-files <n>', 'most open files per process (rlimit NOFILE)')
    .option('--file-size <size>', 'largest file a process may write (rlimit FSIZE)')
    .option('--network', 'allow network access (when the policy allows it)')
    .option('--best-effort', 'run even where a requested limit cannot be enforced (default: refuse, LIMIT_UNENFORCEABLE)')
    .option('--checkpoint <mode>', 'auto: checkpoint first when the policy asks; never', 'auto')
    .option('--on-failure <mode>', 'keep or discard the changes of a command that fails or times out', 'keep')
    .option('--stdin <file>', "the command's stdin from a host file (default: Corral's own stdin when it is not a terminal)")
    .option('--output-cap <size>', 'keep at most this much of each stream, head and tail (default 10m)')
    .option('--wait-approval <duration>', 'when approval is required, wait this long for the answer (default: return pending)')
    .option('--resume <approval-id>', 'run the command of an approved approval')
    .addHelpText(
      'after',
      `
Exit code: the command's own when it ran (124 when it timed out, 128+N when killed by signal N),
125 when it did not run (denied, pending approval, or failed to start; status in --json says which).

Examples:
  $ corral exec -- ls -la
  $ corral exec --shell 'npm test 2>&1 | tail -5' --timeout 2m
  $ corral exec --backend namespace --memory 256m --pids 64 -- python3 build.py
  $ corral exec --readonly --json -- cat README.md
  $ corral exec --resume apr_0123456789abcdef`,
    )
    .action(
      ctx.action(async (argv: string[], opts: ExecOptions) => {
        const vault = opts.resume !== undefined && !ctx.globals.vault && !process.env.CORRAL_VAULT ? '' : ctx.vault();
        const request = execRequest(argv, opts, vault);
        if (opts.stdin !== undefined) {
          // Checked here, before anything runs: a missing file must not become an empty stdin.
          try {
            if (!statSync(opts.stdin).isFile()) throw new Error('not a regular file');
            accessSync(opts.stdin, constants.R_OK);
          } catch (e) {
            throw new CorralError('PATH_NOT_FOUND', `--stdin ${opts.stdin}: cannot read it (${(e as Error).message})`, { stdin: opts.stdin });
          }
          request.stdin = { file: opts.stdin };
        }
        else if (!process.stdin.isTTY) request.stdin = process.stdin;
        const json = ctx.globals.json === true;
        if (!json)
          request.onEvent = (e) => {
            if (e.type === 'stdout') process.stdout.write(e.data);
            else if (e.type === 'stderr') process.stderr.write(e.data);
          };
        const abort = new AbortController();
        const onSignal = (): void => abort.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        request.signal = abort.signal;
        try {
          const result = await ctx.corral.exec.run(request);
          if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
          else process.stderr.write(renderExecSummary(result, ctx.out.c).join('\n') + '\n');
          ctx.exitCode = execExitCode(result);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          if (request.stdin === process.stdin) process.stdin.destroy();
        }
      }),
    );

  const ap = program
    .command('approvals')
    .description('commands the policy sent to a person: list, show, approve, deny')
    .addHelpText('after', examples('corral approvals list', 'corral approvals approve apr_0123456789abcdef --reason "looks fine"', 'corral approvals deny apr_0123456789abcdef --reason "no network"'));

  ap.command('list')
    .alias('ls')
    .description('list approvals (default: pending ones)')
    .option('--state <state>', 'pending, approved, denied, expired, used or all', 'pending')
    .addHelpText('after', examples('corral approvals list', 'corral approvals list --state all --json'))
    .action(
      ctx.action((opts: { state: string }) => {
        const state = choice(opts.state, ['pending', 'approved', 'denied', 'expired', 'used', 'all'] as const, 'state');
        const approvals = ctx.corral.approvals.list({ ...(state === 'all' ? {} : { state: state as ApprovalState }), ...(ctx.globals.vault ? { vault: ctx.globals.vault } : {}) });
        ctx.out.result({ approvals }, (d, c) => (d.approvals.length ? table(approvalRows(d.approvals)).map((l, i) => (i === 0 ? c.dim(l) : l)) : `no ${state === 'all' ? '' : state + ' '}approvals`));
      }),
    );

  ap.command('show <id>')
    .alias('info')
    .description('show one approval')
    .addHelpText('after', examples('corral approvals show apr_0123456789abcdef --json'))
    .action(
      ctx.action((id: string) => {
        const a = ctx.corral.approvals.get(id);
        ctx.out.result(a, (x) => [
          `approval ${x.id} (${x.state})`,
          `  vault      ${x.vault}`,
          `  command    ${escapeControls(x.command)}`,
          `  reason     ${escapeControls(x.reason)}`,
          `  requester  ${x.requester}`,
          `  created    ${formatTime(x.createdAt)}, expires ${formatTime(x.expiresAt)}`,
          ...(x.answeredBy ? [`  answered   ${x.state} by ${x.answeredBy} at ${formatTime(x.answeredAt ?? 0)}${x.answerReason ? `: ${escapeControls(x.answerReason)}` : ''}`] : []),
        ]);
      }),
    );

  for (const verb of ['approve', 'deny'] as const)
    ap.command(`${verb} <id>`)
      .description(verb === 'approve' ? 'let the command run (once): the waiting exec continues, or `corral exec --resume ID` runs it' : 'refuse the command')
      .option('--reason <text>', 'why (kept in the audit log)', '')
      .addHelpText('after', examples(`corral approvals ${verb} apr_0123456789abcdef --reason "checked the URL"`))
      .action(
        ctx.action((id: string, opts: { reason: string }) => {
          const a = verb === 'approve' ? ctx.corral.approvals.approve(id, opts.reason) : ctx.corral.approvals.deny(id, opts.reason);
          ctx.out.result(a, (x) => `${x.state} ${x.id}: ${escapeControls(x.command)}${verb === 'approve' ? `\nrun it with: corral exec --resume ${x.id}` : ''}`);
        }),
      );
}
