// The MCP resources of Corral: workspace files (`corral://SANDBOX/path`), a sandbox's audit log
// (`corral-audit://SANDBOX`) and its change history (`corral-history://SANDBOX`), as resource
// templates. Every read goes through the caller's scope: another tenant's sandbox is not found.
import { ResourceTemplate, type McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ListResourcesResult, ReadResourceResult } from '@modelcontextprotocol/sdk/types.js';
import { isUtf8 } from 'node:buffer';
import { CorralError } from '../protocol/errors.ts';
import { hasScope, type KeyScope } from '../protocol/key-scopes.ts';
import type { Corral } from '../services/corral.ts';
import type { SandboxFiles } from '../services/sandbox-files.ts';
import type { Scope } from '../services/sandbox-service.ts';

export interface McpResourceDeps {
  corral: Corral;
  scope: Scope;
  files: SandboxFiles;
  /** The sandbox a bound server works in (its id): the only one its resources show. */
  sandbox?: string;
  /** An API key's scopes: only the resources they allow are offered (files: files; audit log: admin, as GET /v1/audit; history: sandboxes:read). Default: all. */
  scopes?: readonly KeyScope[];
}

/** Files listed per sandbox, and records of the audit log and commits of the history per read. */
const LIST_FILES = 500;
const AUDIT_RECORDS = 200;
const HISTORY_COMMITS = 100;
/** The largest file a resource read returns. */
const MAX_RESOURCE_BYTES = 8 * 1024 * 1024;

const mimeTypes: Record<string, string> = { md: 'text/markdown', json: 'application/json', ts: 'text/x-typescript', js: 'text/javascript', py: 'text/x-python', html: 'text/html', css: 'text/css', txt: 'text/plain', sh: 'text/x-shellscript', yaml: 'application/yaml', yml: 'application/yaml', png: 'image/png', jpg: 'image/jpeg', svg: 'image/svg+xml' };

function mimeOf(path: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(path)?.[1]?.toLowerCase() ?? '';
  return mimeTypes[ext] ?? 'text/plain';
}

/** One variable of a matched template (the SDK gives a string or, for exploded ones, a list). */
function variable(v: string | string[] | undefined, name: string): string {
  const s = Array.isArray(v) ? v.join('/') : v;
  if (s === undefined || s === '') throw new CorralError('INVALID_ARGUMENT', `the resource URI lacks its ${name}`, {});
  return decodeURIComponent(s);
}

export function registerMcpResources(server: McpServer, deps: McpResourceDeps): void {
  const { corral, scope, files } = deps;
  const allowed = (needed: KeyScope): boolean => deps.scopes === undefined || hasScope(deps.scopes, needed);
  const live = () => (deps.sandbox !== undefined ? [corral.sandboxes.get(deps.sandbox, scope)] : corral.sandboxes.list({}, scope));
  /** The sandbox a URI names; a bound server answers only for its own. */
  const sandboxOf = (name: string) => {
    const sb = corral.sandboxes.get(name, scope);
    if (deps.sandbox !== undefined && sb.id !== deps.sandbox) throw new CorralError('SANDBOX_NOT_FOUND', `no sandbox '${name}' here: this server works in ${deps.sandbox}`, { sandbox: name });
    return sb;
  };

  if (allowed('files')) {
    server.registerResource(
      'workspace-file',
      new ResourceTemplate('corral://{sandbox}/{+path}', {
        list: (): ListResourcesResult => {
          const resources: ListResourcesResult['resources'] = [];
          for (const sb of live()) {
            if (sb.state === 'destroyed') continue;
            const listing = files.list(sb.id, '/', { recursive: true, limit: LIST_FILES }, scope);
            for (const e of listing.entries) if (e.kind === 'file') resources.push({ uri: `corral://${sb.id}${e.path}`, name: `${sb.name ?? sb.id}:${e.path}`, mimeType: mimeOf(e.path), size: e.size });
          }
          return { resources };
        },
      }),
      { title: 'Workspace file', description: "A file of a sandbox's workspace: corral://SANDBOX/path (the sandbox's id or name, then the path from the workspace root).", mimeType: 'text/plain' },
      (uri, vars): ReadResourceResult => {
        const sb = sandboxOf(variable(vars.sandbox, 'sandbox'));
        const path = '/' + variable(vars.path, 'path');
        const r = files.read(sb.id, path, { length: MAX_RESOURCE_BYTES }, scope);
        if (r.size > MAX_RESOURCE_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `${r.path} is ${r.size} bytes, more than a resource read returns (${MAX_RESOURCE_BYTES}): read it in parts with the read_file tool`, { path: r.path, size: r.size });
        const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
        const mimeType = mimeOf(r.path);
        return { contents: [isUtf8(data) ? { uri: uri.href, mimeType, text: data.toString('utf8') } : { uri: uri.href, mimeType: mimeType.startsWith('text/') ? 'application/octet-stream' : mimeType, blob: data.toString('base64') }] };
      },
    );
  }

  const perSandbox = (scheme: string, what: string) =>
    new ResourceTemplate(`${scheme}://{sandbox}`, {
      list: (): ListResourcesResult => ({ resources: live().filter((sb) => sb.state !== 'destroyed').map((sb) => ({ uri: `${scheme}://${sb.id}`, name: `${what} of ${sb.name ?? sb.id}`, mimeType: 'application/json' })) }),
    });

  if (allowed('admin')) {
    server.registerResource(
      'audit-log',
      perSandbox('corral-audit', 'audit log'),
      { title: 'Audit log', description: `The newest ${AUDIT_RECORDS} records of the sandbox's audit log (hash-chained): who did what to its workspace, the policy's decisions, approvals.`, mimeType: 'application/json' },
      (uri, vars): ReadResourceResult => {
        const sb = sandboxOf(variable(vars.sandbox, 'sandbox'));
        const records = corral.store.audit.list({ vault: sb.vault, limit: AUDIT_RECORDS }).map((a) => ({ seq: a.seq, time: new Date(a.ts).toISOString(), actor: a.actor, op: a.op, target: a.target, result: a.result, details: a.details, hash: a.hash }));
        return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify({ sandbox: sb.id, vault: sb.vault, records }, null, 2) }] };
      },
    );
  }

  if (allowed('sandboxes:read')) {
    server.registerResource(
      'change-history',
      perSandbox('corral-history', 'change history'),
      { title: 'Change history', description: `The newest ${HISTORY_COMMITS} commits of the sandbox's workspace (each command or write that changed files is one), and its checkpoints.`, mimeType: 'application/json' },
      (uri, vars): ReadResourceResult => {
        const sb = sandboxOf(variable(vars.sandbox, 'sandbox'));
        const vault = files.vaultOf(sb.id, scope);
        const commits = corral.history.log(vault, { limit: HISTORY_COMMITS }).map((c) => ({ id: c.id, parent: c.parent, message: c.message, origin: c.origin, actor: c.actor, time: new Date(c.createdAt).toISOString(), files: c.files, size: c.size }));
        const checkpoints = corral.lifecycle.listCheckpoints(sb.id, scope);
        return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify({ sandbox: sb.id, vault, commits, checkpoints }, null, 2) }] };
      },
    );
  }
}
