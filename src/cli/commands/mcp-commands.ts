// corral mcp: Corral as an MCP server over stdio, for agent harnesses that spawn it (Claude Desktop,
// Claude Code, any MCP client). In-process, as the machine's owner. stdout carries nothing but the
// protocol; diagnostics go to stderr. The MCP SDK is imported only here, when the command runs.
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { policyPresetNames } from '../../protocol/sandbox-spec.ts';
import type { Corral } from '../../services/corral.ts';
import type { SandboxBackend } from '../../services/sandbox-service.ts';
import type { CliContext } from '../context.ts';
import { examples } from '../output.ts';

interface McpOptions {
  sandbox?: string;
  backend?: string;
  policy?: string;
}

const OWNER = { tenant: null };

/**
 * The sandbox `--vault V` works in: the newest live sandbox working on V itself (not a fork), or a
 * new one (fork false, so the agent's changes land in V). A vault that does not exist is created.
 */
export function sandboxForVault(corral: Corral, vault: string, options: { backend?: SandboxBackend; policy?: string } = {}): { id: string; created: boolean } {
  if (!corral.store.findVault(vault)) corral.vaults.create(vault);
  const existing = corral.sandboxes.list({ state: 'ready' }, OWNER).filter((s) => s.vault === vault && !s.forked).pop();
  if (existing) return { id: existing.id, created: false };
  const sb = corral.sandboxes.create({ vault, fork: false, labels: { 'corral.mcp': 'true' }, ...(options.backend ? { backend: options.backend } : {}), ...(options.policy ? { policy: options.policy } : {}) }, OWNER);
  return { id: sb.id, created: true };
}

export function registerMcpCommands(program: Command, ctx: CliContext): void {
  program
    .command('mcp')
    .description('serve Corral to an MCP client over stdio (tools: exec, files, search, checkpoints, diff, sandboxes; resources: files, audit, history)')
    .option('--sandbox <id-or-name>', 'work in this sandbox only (the tools take no sandbox argument)')
    .option('--backend <name>', 'with --vault, the backend of a sandbox it makes: auto, host, namespace (default auto)')
    .option('--policy <preset>', `with --vault, the policy of a sandbox it makes: ${policyPresetNames.join(', ')} (default workstation)`)
    .addHelpText(
      'after',
      examples(
        'corral mcp --vault myproject          (a sandbox on vault myproject, made or reused; the vault too)',
        'corral mcp --sandbox sbx_…            (an existing sandbox)',
        'corral mcp                            (every sandbox; the agent creates its own with sandbox_create)',
      ) +
        '\n\nIn an MCP client\'s configuration (Claude Desktop: claude_desktop_config.json):\n  {"mcpServers": {"corral": {"command": "corral", "args": ["mcp", "--vault", "myproject"]}}}',
    )
    .action(
      ctx.action(async (opts: McpOptions) => {
        const vault = ctx.globals.vault;
        if (opts.sandbox !== undefined && vault !== undefined) throw new CorralError('INVALID_ARGUMENT', 'give --sandbox or --vault, not both', {});
        if ((opts.backend !== undefined || opts.policy !== undefined) && vault === undefined) throw new CorralError('INVALID_ARGUMENT', '--backend and --policy are for the sandbox --vault makes: add --vault NAME', {});
        if (opts.backend !== undefined && !['auto', 'host', 'namespace'].includes(opts.backend)) throw new CorralError('INVALID_ARGUMENT', `--backend must be auto, host or namespace, got '${opts.backend}'`, {});
        const corral = ctx.corral;
        let sandbox = opts.sandbox;
        if (vault !== undefined) {
          const made = sandboxForVault(corral, vault, { ...(opts.backend ? { backend: opts.backend as SandboxBackend } : {}), ...(opts.policy ? { policy: opts.policy } : {}) });
          sandbox = made.id;
          process.stderr.write(`corral mcp: ${made.created ? 'made' : 'using'} sandbox ${made.id} on vault ${vault}\n`);
        }
        const [{ createMcpServer }, { StdioServerTransport }] = await Promise.all([import('../../mcp/mcp-server.ts'), import('@modelcontextprotocol/sdk/server/stdio.js')]);
        const server = createMcpServer({ corral, scope: OWNER, ...(sandbox !== undefined ? { sandbox } : {}) });
        const transport = new StdioServerTransport();
        const closed = new Promise<void>((resolve) => {
          transport.onclose = () => resolve();
          process.stdin.once('end', () => resolve());
          process.stdin.once('close', () => resolve());
        });
        await server.connect(transport);
        await closed;
        // The client is gone: nobody will read what runs on, so stop it before the database closes.
        await corral.execs.cancelAll();
        await server.close();
      }),
    );
}
