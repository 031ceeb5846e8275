// POST /mcp: the MCP server over Streamable HTTP (stateless: each request gets its own server and
// transport, answered as JSON). Same auth as the API: the Unix socket is the owner; over TCP an API
// key is offered the tools its scopes allow (the API's rule for each action: exec needs `exec`,
// files `files`, …) and its tenant is the scope the tools see. The MCP SDK is loaded on the first
// request, so a daemon nobody asks for MCP never loads it.
import type { Hono } from 'hono';
import { CorralError } from '../protocol/errors.ts';
import { hasScope } from '../protocol/key-scopes.ts';
import type { Corral } from '../services/corral.ts';
import type { ApiEnv } from './api-types.ts';
import { actorOf, principalOf, requireScope, scopeOf } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';

type McpModules = [typeof import('../mcp/mcp-server.ts'), typeof import('@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js')];

/** What the MCP tools use of the Corral; an app built over less (tests' stubs) serves no /mcp. */
function isFullCorral(corral: object): corral is Corral {
  const c = corral as Partial<Corral>;
  return Boolean(c.sandboxes && c.execs && c.sandboxFiles && c.lifecycle && c.history && c.search && c.approvals && c.store);
}

export function registerMcpRoute(app: Hono<ApiEnv>, docs: RouteDocs, corral: object, version: string): void {
  if (!isFullCorral(corral)) return;
  let modules: Promise<McpModules> | undefined;
  app.post('/mcp', async (c) => {
    const principal = principalOf(c);
    if (principal.kind === 'anonymous') requireScope(c, 'exec');
    const scopes = principal.kind === 'key' ? principal.scopes : undefined;
    modules ??= Promise.all([import('../mcp/mcp-server.ts'), import('@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js')]);
    const [{ createMcpServer, toolScopes }, { WebStandardStreamableHTTPServerTransport }] = await modules;
    // A key needs a scope of at least one tool (each tool's scope: toolScopes).
    const needed = [...new Set(Object.values(toolScopes))];
    if (scopes !== undefined && !needed.some((s) => hasScope(scopes, s)))
      throw new CorralError('PERMISSION_DENIED', `this API key has no scope any MCP tool needs: use a key with one of ${needed.join(', ')} (exec runs commands, files reads and writes them)`, { granted: scopes, needed });
    const scope = scopeOf(c);
    const server = createMcpServer({ corral, scope, caller: { actor: actorOf(c), origin: 'api' }, version, ...(scopes !== undefined ? { scopes } : {}) });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      // With JSON responses the answer is complete when it returns: nothing of this server lives on.
      return await transport.handleRequest(c.req.raw);
    } finally {
      await server.close();
    }
  });
  docs.add({
    method: 'post',
    path: '/mcp',
    operationId: 'mcp',
    tags: ['mcp'],
    summary: 'The MCP server over Streamable HTTP (JSON-RPC; stateless, JSON responses): the tools and resources of docs/mcp.md',
    description: 'Over TCP a key is offered the tools its scopes allow (exec: exec, exec_kill; files: read_file, write_file, edit_file, list_files, search, diff; sandboxes:read: exec_output, exec_wait, checkpoint_list, sandbox_list; sandboxes:write: checkpoint_save, checkpoint_restore, sandbox_create, sandbox_destroy) and needs one of them; the tools see the key\'s tenant only. GET (a standalone event stream) is not offered: 405.',
    responses: { 200: { description: 'A JSON-RPC response (or 202 for a notification).', contentType: 'application/json' } },
    errors: [400, 401, 403, 406, 413],
  });
}
