// The `corral` command line. Front end only: it parses arguments, calls services and renders.
import { Command, CommanderError } from 'commander';
import { CorralError } from '../protocol/errors.ts';
import { CliContext } from './context.ts';
import { Output } from './output.ts';
import { registerVaultCommands } from './commands/vault-commands.ts';
import { registerFileCommands } from './commands/file-commands.ts';
import { registerHistoryCommands } from './commands/history-commands.ts';
import { registerCheckpointCommands } from './commands/checkpoint-commands.ts';
import { registerSearchCommands } from './commands/search-commands.ts';
import { registerTagCommands } from './commands/tag-commands.ts';
import { registerTransferCommands } from './commands/transfer-commands.ts';
import { registerAuditCommands } from './commands/audit-commands.ts';
import { registerMaintenanceCommands } from './commands/maintenance-commands.ts';
import { registerExecCommands } from './commands/exec-commands.ts';
import { registerDoctorCommands } from './commands/doctor-commands.ts';
import { registerCheckoutCommands } from './commands/checkout-commands.ts';
import { registerDaemonCommands } from './commands/daemon-commands.ts';
import { registerKeyCommands } from './commands/key-commands.ts';
import { registerSandboxCommands } from './commands/sandbox-commands.ts';
import { registerMcpCommands } from './commands/mcp-commands.ts';
import { registerDashboardCommands } from './commands/dashboard-commands.ts';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('corral')
    .description('Corral: versioned SQLite workspaces for AI agents (files, history, checkpoints, forks, audit), and the execution boundary for their commands (policy, sandbox, change summary).')
    .version('0.1.0')
    .option('--vault <name>', 'the vault to work on (default: $CORRAL_VAULT, then the one chosen with `corral vault use`)')
    .option('--json', 'print one JSON document on stdout (errors too, as {"error":{...}})')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
State lives in $CORRAL_HOME (default ~/.corral).

Examples:
  $ corral vault create demo && corral vault use demo
  $ echo 'hello' | corral write /notes/hello.txt
  $ corral checkpoint save before-refactor
  $ corral diff before-refactor HEAD -p
  $ corral ls / --json
  $ corral exec -- ls -la                 (policy, sandbox, one commit of what changed)
  $ corral doctor                         (what this machine offers for sandboxing)`,
    );
  registerVaultCommands(program, ctx);
  registerFileCommands(program, ctx);
  registerHistoryCommands(program, ctx);
  registerCheckpointCommands(program, ctx);
  registerSearchCommands(program, ctx);
  registerTagCommands(program, ctx);
  registerTransferCommands(program, ctx);
  registerAuditCommands(program, ctx);
  registerMaintenanceCommands(program, ctx);
  registerExecCommands(program, ctx);
  registerDoctorCommands(program, ctx);
  registerCheckoutCommands(program, ctx);
  registerDaemonCommands(program, ctx);
  registerKeyCommands(program, ctx);
  registerSandboxCommands(program, ctx);
  registerMcpCommands(program, ctx);
  registerDashboardCommands(program, ctx);
  return program;
}

/** Every command and subcommand reports usage errors through the same envelope. */
function overrideExits(cmd: Command, json: boolean): void {
  cmd.exitOverride();
  if (json) cmd.configureOutput({ writeErr: () => undefined });
  for (const sub of cmd.commands) overrideExits(sub, json);
}

export async function main(argv: string[]): Promise<number> {
  const ctx = new CliContext();
  const program = buildProgram(ctx);
  const json = argv.includes('--json');
  overrideExits(program, json);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      const message = e.message.replace(/^error: /, '');
      return json ? new Output(true).error(new CorralError('INVALID_ARGUMENT', message, { usage: e.code })) : 2;
    }
    throw e;
  } finally {
    ctx.close();
  }
  return ctx.exitCode;
}

/**
 * stdout may close early (`corral ls | head`) or fail (a full disk): stop quietly on a closed
 * pipe, as Unix tools do, and say what happened otherwise.
 */
function guardStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') process.stderr.write(`error [HOST_IO_ERROR] cannot write the output: ${e.message}\n`);
    process.exit(e.code === 'EPIPE' ? (process.exitCode ?? 0) : 6);
  });
}

if (import.meta.main) {
  guardStdout();
  process.exitCode = await main(process.argv.slice(2));
}
