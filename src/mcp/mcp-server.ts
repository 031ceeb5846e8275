// Corral as an MCP server: the tools an agent works with (exec, files, search, checkpoints, diff,
// sandboxes) and resources (workspace files, the audit log, the change history), over an opened
// Corral and a caller's scope. The same server runs over stdio (`corral mcp`) and over Streamable
// HTTP in the daemon (/mcp). A server bound to one sandbox hides the sandbox argument and the
// sandbox management tools: its agent works in that sandbox only.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { hasScope, type KeyScope } from '../protocol/key-scopes.ts';
import type { ExecResult } from '../protocol/exec-result.ts';
import { checkpointListSchema, checkpointRestoreResultSchema, checkpointSchema, execRecordSchema, fileEditResultSchema, fileListSchema, fileWriteResultSchema, sandboxListSchema, sandboxSchema } from '../protocol/api-schemas.ts';
import type { Corral } from '../services/corral.ts';
import type { ExecInfo } from '../services/exec-sessions.ts';
import type { SandboxFiles } from '../services/sandbox-files.ts';
import type { Scope } from '../services/sandbox-service.ts';
import type { Caller } from '../store/corral-store.ts';
import { registerMcpResources } from './mcp-resources.ts';
import { diffToolOutput, execOutputToolOutput, execToolOutput, readFileToolOutput, sandboxArg, sandboxTools, searchToolOutput, toolInputs, type ExecToolOutput, type ToolName } from './mcp-schemas.ts';
import { describeExec, describeExecInfo, numberLines, sandboxStart } from './mcp-text.ts';

export interface McpServerOptions {
  /** The opened Corral (in-process, or the daemon's). */
  corral: Corral;
  /** Whose objects the tools may see: the owner (tenant null) or an API key's tenant. */
  scope: Scope;
  /** Bind the server to this sandbox (id or name): tools take no sandbox argument. */
  sandbox?: string;
  /** Who file writes are recorded as (default: the Corral's own caller). */
  caller?: Caller;
  /** The version the server reports (default 0.1.0). */
  version?: string;
  /** An API key's scopes: only the tools (and resources) they allow are offered (default: all, the owner). */
  scopes?: readonly KeyScope[];
}

/** The API key scope each tool needs: the API's rule for the same action (docs/api.md, Scopes). */
export const toolScopes: Record<ToolName, KeyScope> = {
  exec: 'exec',
  exec_kill: 'exec',
  exec_output: 'sandboxes:read',
  exec_wait: 'sandboxes:read',
  read_file: 'files',
  write_file: 'files',
  edit_file: 'files',
  list_files: 'files',
  search: 'files',
  diff: 'files',
  checkpoint_save: 'sandboxes:write',
  checkpoint_restore: 'sandboxes:write',
  checkpoint_list: 'sandboxes:read',
  sandbox_create: 'sandboxes:write',
  sandbox_destroy: 'sandboxes:write',
  sandbox_list: 'sandboxes:read',
};

/** Text shown to a model at most per output stream in a tool's text; the rest is read with exec_output. */
const TEXT_OUTPUT_LIMIT = 32 * 1024;
const DEFAULT_LINES = 2000;
const READ_FILE_MAX_BYTES = 16 * 1024 * 1024;
const PATCH_BUDGET = 256 * 1024;

const descriptions: Record<ToolName, string> = {
  exec:
    'Run a command in the sandbox workspace (/workspace), under its policy and isolation. Use it for builds, tests, git, scripts and anything else a shell does. ' +
    'Returns the result: status (completed, denied, pending, failed), exit code, stdout and stderr, and the change summary (files added, modified, deleted, and the commit that recorded them; a checkpoint taken before a risky command). ' +
    'A non-zero exit code is a normal result, not an error. A command the policy denies comes back as an error saying why and what to do instead. ' +
    'A command that needs a person\'s approval comes back pending with an approval id: tell the user, then call exec again with only {approval: id} once it is approved. ' +
    'With background: true it returns at once with an exec id; then use exec_output, exec_wait and exec_kill.',
  exec_output: 'Read the output a background exec produced so far (stdout and stderr), from byte offsets. Returns the text and the new offsets: pass them back next time to get only new output. Does not wait; use exec_wait to wait for the end.',
  exec_wait: 'Wait for a background exec to end (up to timeoutMs). Returns its state, exit code and, once ended, its result envelope with the change summary. A state of running means it is still going.',
  exec_kill: 'Stop a running background exec: TERM or KILL (the default) end its whole process tree; other signals go to the command itself. Returns the exec (it ends shortly after).',
  read_file: 'Read a text file of the workspace, with line numbers (as cat -n), a range of lines at a time (2000 by default). Use it before editing a file. Returns the lines, the total line count and whether more follow.',
  write_file: 'Create a file or replace its whole content (parent directories are created). Recorded as one commit. Prefer edit_file for a change inside an existing file. Returns the size and the commit.',
  edit_file: 'Replace an exact piece of text in a file (no patterns; whitespace and line endings must match): oldText must occur exactly once unless replaceAll is true. Read the file first and copy the text. Returns the number of replacements and the commit.',
  list_files: 'List a directory of the workspace (dotfiles included): name, kind (file, dir, symlink), size, mode and time of each entry; recursive lists everything below it.',
  search:
    'Search the workspace files. mode grep (default): a regular expression matched line by line, returning path, line number and line of each match. mode text: ranked full-text search for words or phrases, returning the best files with a snippet. Faster than exec grep for large trees.',
  checkpoint_save: 'Save a named checkpoint of the workspace as it is now (instant, copies nothing). Take one before a risky change; checkpoint_restore goes back to it. Returns the checkpoint and its commit.',
  checkpoint_list: 'List the checkpoints of the workspace, oldest first: name, commit, message, time.',
  checkpoint_restore: 'Put every file of the workspace back as it was at a checkpoint. The restore is itself a commit: the state before stays in the history (diff and restore can reach it). Refused while background execs run unless cancelExecs is true.',
  diff: "Show what changed in the workspace: by default everything since the sandbox started; or since a checkpoint (from), up to another (to). Returns the changed paths with unified diffs of text files and a summary.",
  sandbox_create: 'Create a sandbox: a workspace (a fork of an existing vault, or a new empty one) plus how its commands run (backend, policy preset, limits, network, env, TTL). Returns the sandbox; pass its id or name as sandbox to the other tools.',
  sandbox_list: 'List the sandboxes you can use: id, name, state, vault, backend, policy, and when they expire.',
  sandbox_destroy: "Destroy a sandbox: its running execs are cancelled and its own vault (the fork) is deleted unless keepFork. Returns the destroyed sandbox.",
};

/** A tool's answer: structured content and its text for the model. */
interface ToolAnswer {
  structured: Record<string, unknown>;
  text?: string;
  isError?: boolean;
}

/** A failure as a tool error: code and message (which says what to do next) for the model. */
export function toolError(e: unknown): CallToolResult {
  const err = toCorralError(e);
  const shown = err.code === 'INTERNAL' ? 'an internal error occurred in Corral; try again, or report it' : err.message;
  // No structured content: clients check it against the tool's output schema, errors included.
  return { isError: true, content: [{ type: 'text', text: `${err.code}: ${shown}` }] };
}

function answer(a: ToolAnswer): CallToolResult {
  return { content: [{ type: 'text', text: a.text ?? JSON.stringify(a.structured, null, 2) }], structuredContent: a.structured, ...(a.isError ? { isError: true } : {}) };
}

export function createMcpServer(options: McpServerOptions): McpServer {
  const { corral, scope } = options;
  const files: SandboxFiles = options.caller ? corral.sandboxFiles.as(options.caller) : corral.sandboxFiles;
  // Bound: resolve once, so a name that is later reused by another sandbox never redirects the tools.
  const bound = options.sandbox === undefined ? undefined : corral.sandboxes.get(options.sandbox, scope).id;
  const server = new McpServer(
    { name: 'corral', version: options.version ?? '0.1.0' },
    {
      capabilities: { tools: {}, resources: {} },
      instructions:
        'Corral runs your commands in a sandboxed, versioned workspace. Every command that changes files becomes one commit with an exact change summary; ' +
        'checkpoint_save and checkpoint_restore undo whole steps, diff shows what changed. Commands run under a policy: some are denied (the error says why and what to do instead), ' +
        'some wait for a person\'s approval (exec returns pending with an approval id).' +
        (bound ? ` All tools work in sandbox ${bound}.` : ' Create a sandbox with sandbox_create (or pick one with sandbox_list) and pass it as sandbox.'),
    },
  );

  const sandboxOf = (args: { sandbox?: string }): string => {
    if (bound !== undefined) return bound;
    if (args.sandbox === undefined) throw new CorralError('INVALID_ARGUMENT', 'give sandbox: the id or name of a sandbox (sandbox_list shows them, sandbox_create makes one)', {});
    return args.sandbox;
  };

  const tool = <S extends z.ZodRawShape>(name: ToolName, shape: S, output: z.ZodObject, handler: (args: z.infer<z.ZodObject<S>> & { sandbox?: string }, signal: AbortSignal) => Promise<ToolAnswer> | ToolAnswer): void => {
    // A tool the key may not use is not offered at all: a model sees only what it can call.
    if (options.scopes !== undefined && !hasScope(options.scopes, toolScopes[name])) return;
    const takesSandbox = sandboxTools.includes(name) && bound === undefined;
    const input = z.object({ ...(takesSandbox ? { sandbox: sandboxArg } : {}), ...shape }).strict();
    server.registerTool(name, { description: descriptions[name], inputSchema: input, outputSchema: output }, (async (args: unknown, extra: { signal: AbortSignal }) => {
      try {
        return answer(await handler(args as z.infer<z.ZodObject<S>> & { sandbox?: string }, extra.signal));
      } catch (e) {
        return toolError(e);
      }
    }) as never);
  };

  // ---- execs ----------------------------------------------------------------------------------

  const execAnswer = (info: ExecInfo | null, result: ExecResult | null, background: boolean): ToolAnswer => {
    const r = result ?? info?.result ?? null;
    const structured: ExecToolOutput = {
      exec: info?.id ?? r?.id ?? '',
      state: info?.state ?? r?.status ?? 'failed',
      background,
      result: r,
      approval: r?.approval ?? null,
    };
    const text = info && info.state === 'running' ? describeExecInfo(info) : describeExec(r, TEXT_OUTPUT_LIMIT);
    return { structured, text, isError: r !== null && (r.status === 'denied' || r.status === 'failed') };
  };

  /** Runs the command an approved approval holds (the exec service checks and consumes it). */
  const resume = async (sandbox: string, approvalId: string, signal: AbortSignal): Promise<ToolAnswer> => {
    const sb = corral.sandboxes.get(sandbox, scope);
    if (sb.state !== 'ready') throw new CorralError('SANDBOX_STATE', `sandbox ${sb.id} is ${sb.state}: commands run only in a ready sandbox`, { sandbox: sb.id, state: sb.state });
    const approval = corral.approvals.get(approvalId, scope);
    if (approval.vault !== sb.vault) throw new CorralError('INVALID_ARGUMENT', `approval ${approval.id} is for another workspace than sandbox ${sb.id}: give the sandbox the command was asked for`, { approval: approval.id });
    if (approval.state === 'pending') {
      return {
        structured: { exec: '', state: 'pending', background: false, result: null, approval: { id: approval.id, expiresAt: new Date(approval.expiresAt).toISOString() } } satisfies ExecToolOutput,
        text: `pending: approval ${approval.id} is not answered yet. Ask the user to approve it (corral approvals approve ${approval.id}), then call exec with {"approval": "${approval.id}"} again.`,
      };
    }
    // Through the sandbox's execs, like any other: listed, counted against the tenant's quota.
    const { done } = corral.execs.start(sb.id, { resume: approval.id, signal }, scope);
    return execAnswer(null, (await done).result!, false);
  };

  tool('exec', toolInputs.exec, execToolOutput, async (args, signal) => {
    const sandbox = sandboxOf(args);
    if (args.approval !== undefined) {
      if (args.command !== undefined || args.argv !== undefined || args.background)
        throw new CorralError('INVALID_ARGUMENT', 'with approval, give no command, argv or background: the approved command runs as it was asked', {});
      return resume(sandbox, args.approval, signal);
    }
    if ((args.command === undefined) === (args.argv === undefined)) throw new CorralError('INVALID_ARGUMENT', 'give exactly one of command (a shell command line) and argv (a program and its arguments)', {});
    const request = {
      ...(args.argv !== undefined ? { argv: args.argv } : { shell: args.command! }),
      ...(args.cwd !== undefined ? { cwd: args.cwd } : {}),
      ...(args.env !== undefined ? { env: args.env } : {}),
      ...(args.timeoutMs !== undefined ? { timeoutMs: args.timeoutMs } : {}),
    };
    if (args.background) {
      const { info } = corral.execs.start(sandbox, { ...request, background: true }, scope);
      return execAnswer(info, null, true);
    }
    // A cancelled tool call (the client gave up) cancels its command.
    const { done } = corral.execs.start(sandbox, { ...request, signal, ...(args.waitForApprovalMs ? { approvalWaitMs: args.waitForApprovalMs } : {}) }, scope);
    return execAnswer(await done, null, false);
  });

  tool('exec_output', toolInputs.exec_output, execOutputToolOutput, async (args) => {
    const info = corral.execs.get(args.exec, scope);
    let budget = args.maxBytes ?? 65536;
    const at = { stdout: args.stdoutOffset ?? 0, stderr: args.stderrOffset ?? 0 };
    const bytes: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
    let more = false;
    const frames = corral.execs.frames(args.exec, at, { follow: false }, scope);
    for await (const f of frames) {
      if (f.type === 'gap') at[f.stream] = f.to;
      if (f.type !== 'output') continue;
      if (budget <= 0) {
        more = true;
        break;
      }
      const take = f.data.subarray(0, budget);
      bytes[f.stream].push(take);
      at[f.stream] = f.offset + take.length;
      budget -= take.length;
      if (take.length < f.data.length) {
        more = true;
        break;
      }
    }
    await frames.return(undefined);
    const now = corral.execs.get(args.exec, scope);
    return {
      structured: {
        exec: info.id,
        state: now.state,
        stdout: Buffer.concat(bytes.stdout).toString('utf8'),
        stderr: Buffer.concat(bytes.stderr).toString('utf8'),
        stdoutOffset: at.stdout,
        stderrOffset: at.stderr,
        more,
        exitCode: now.exitCode,
      },
    };
  });

  tool('exec_wait', toolInputs.exec_wait, execRecordSchema, async (args, signal) => {
    const info = await corral.execs.wait(args.exec, { timeoutMs: args.timeoutMs ?? 30_000, signal }, scope);
    return { structured: info as unknown as Record<string, unknown>, text: info.state === 'running' ? describeExecInfo(info) : describeExec(info.result, TEXT_OUTPUT_LIMIT, info) };
  });

  tool('exec_kill', toolInputs.exec_kill, execRecordSchema, (args) => {
    const info = corral.execs.kill(args.exec, args.signal ?? 'KILL', scope);
    return { structured: info as unknown as Record<string, unknown>, text: `signal ${args.signal ?? 'KILL'} sent to ${info.id}; use exec_wait to see it end` };
  });

  // ---- files ----------------------------------------------------------------------------------

  tool('read_file', toolInputs.read_file, readFileToolOutput, (args) => {
    const sandbox = sandboxOf(args);
    const stat = files.stat(sandbox, args.path, scope);
    if (stat.kind === 'dir') throw new CorralError('IS_A_DIRECTORY', `${stat.path} is a directory: use list_files to see what it holds`, { path: stat.path });
    const head = files.read(sandbox, args.path, { length: READ_FILE_MAX_BYTES }, scope);
    if (head.size > READ_FILE_MAX_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `${head.path} is ${head.size} bytes, more than read_file shows (${READ_FILE_MAX_BYTES}): use exec with head, tail, sed -n or grep on it`, { path: head.path, size: head.size });
    const data = Buffer.from(head.data.buffer, head.data.byteOffset, head.data.byteLength);
    if (data.subarray(0, 8000).includes(0)) throw new CorralError('INVALID_ARGUMENT', `${head.path} is a binary file (${head.size} bytes): inspect it with exec (file, xxd, hexdump -C | head)`, { path: head.path, size: head.size });
    const start = args.startLine ?? 1;
    const end = args.endLine ?? start + DEFAULT_LINES - 1;
    if (end < start) throw new CorralError('INVALID_ARGUMENT', `endLine (${end}) is before startLine (${start})`, {});
    const shown = numberLines(data.toString('utf8'), start, end);
    return {
      structured: { path: head.path, size: head.size, totalLines: shown.totalLines, startLine: start, endLine: shown.endLine, content: shown.content, truncated: shown.endLine < shown.totalLines },
      text:
        `${head.path} (${head.size} bytes, ${shown.totalLines} line${shown.totalLines === 1 ? '' : 's'})` +
        (shown.endLine < start ? `: no lines from ${start} on\n` : `, lines ${start}-${shown.endLine}${shown.endLine < shown.totalLines ? ` (more: read from startLine ${shown.endLine + 1})` : ''}:\n${shown.content}`),
    };
  });

  tool('write_file', toolInputs.write_file, fileWriteResultSchema, (args) => {
    const r = files.write(sandboxOf(args), args.path, Buffer.from(args.content, 'utf8'), { ...(args.mode !== undefined ? { mode: args.mode } : {}) }, scope);
    return { structured: { ...r } };
  });

  tool('edit_file', toolInputs.edit_file, fileEditResultSchema, (args) => {
    const r = files.edit(sandboxOf(args), { path: args.path, oldText: args.oldText, newText: args.newText, ...(args.replaceAll ? { replaceAll: true } : {}) }, scope);
    return { structured: { ...r } };
  });

  tool('list_files', toolInputs.list_files, fileListSchema, (args) => {
    const r = files.list(sandboxOf(args), args.path ?? '/', { ...(args.recursive ? { recursive: true } : {}), ...(args.limit !== undefined ? { limit: args.limit } : {}) }, scope);
    const lines = r.entries.map((e) => `${e.kind === 'dir' ? 'd' : e.kind === 'symlink' ? 'l' : '-'} ${String(e.size).padStart(10)}  ${e.path}${e.kind === 'dir' ? '/' : ''}${e.target !== undefined ? ` -> ${e.target}` : ''}`);
    return { structured: { ...r }, text: `${r.path}: ${r.entries.length} entries${r.truncated ? ' (cut at the limit)' : ''}\n${lines.join('\n')}` };
  });

  tool('search', toolInputs.search, searchToolOutput, (args) => {
    const vault = files.vaultOf(sandboxOf(args), scope);
    if ((args.mode ?? 'grep') === 'text') {
      const limit = args.limit ?? 20;
      const r = corral.search.search(vault, args.query, { limit });
      const text = r.results.map((h) => `${h.path}  (${h.score})\n  ${h.snippet}`).join('\n');
      return { structured: { mode: 'text', matches: [], files: r.results, truncated: r.results.length >= limit }, text: `${r.results.length} files${r.results.length ? ':\n' + text : ''}` };
    }
    const limit = args.limit ?? 200;
    const r = corral.search.grep(vault, args.query, args.path ?? '/', { ...(args.ignoreCase ? { ignoreCase: true } : {}), limit });
    const matches = r.matches.map((m) => ({ path: m.path, line: m.line, text: m.text }));
    const text = matches.map((m) => `${m.path}:${m.line}: ${m.text}`).join('\n');
    return { structured: { mode: 'grep', matches, files: [], truncated: r.truncated }, text: `${matches.length} matching lines in ${r.files} files${r.truncated ? ' (cut short: narrow the search)' : ''}${matches.length ? ':\n' + text : ''}` };
  });

  // ---- checkpoints and history ----------------------------------------------------------------

  tool('checkpoint_save', toolInputs.checkpoint_save, checkpointSchema, (args) => {
    const cp = corral.lifecycle.saveCheckpoint(sandboxOf(args), { ...(args.name !== undefined ? { name: args.name } : {}), ...(args.message !== undefined ? { message: args.message } : {}) }, scope);
    return { structured: { ...cp } };
  });

  tool('checkpoint_list', toolInputs.checkpoint_list, checkpointListSchema, (args) => ({ structured: { checkpoints: corral.lifecycle.listCheckpoints(sandboxOf(args), scope) } }));

  tool('checkpoint_restore', toolInputs.checkpoint_restore, checkpointRestoreResultSchema, async (args) => {
    const r = await corral.lifecycle.restoreCheckpoint(sandboxOf(args), args.name, { ...(args.cancelExecs ? { cancelExecs: true } : {}) }, scope);
    return { structured: { ...r } };
  });

  tool('diff', toolInputs.diff, diffToolOutput, (args) => {
    const sandbox = corral.sandboxes.get(sandboxOf(args), scope);
    const vault = files.vaultOf(sandbox.id, scope);
    const from = args.from ?? sandboxStart(corral, vault, sandbox.createdAt);
    const d = corral.history.diff(vault, from, args.to ?? 'HEAD', { patch: args.patch ?? true, ...(args.path !== undefined ? { path: args.path } : {}) });
    let budget = PATCH_BUDGET;
    let truncated = false;
    const changes = d.changes.map((c) => {
      const out: z.infer<typeof diffToolOutput>['changes'][number] = { path: c.path, change: c.change, kind: c.kind, ...(c.binary ? { binary: true } : {}) };
      if (c.patch !== undefined) {
        if (c.patch.length <= budget) {
          out.patch = c.patch;
          budget -= c.patch.length;
        } else truncated = true;
      }
      return out;
    });
    const s = d.summary;
    const head = `${d.from.slice(0, 12)}..${d.to.slice(0, 12)}: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted`;
    const body = changes.map((c) => `${c.change === 'added' ? 'A' : c.change === 'deleted' ? 'D' : 'M'} ${c.path}${c.binary ? ' (binary)' : ''}${c.patch ? '\n' + c.patch : ''}`).join('\n');
    return { structured: { from: d.from, to: d.to, summary: s, changes, truncated }, text: `${head}${truncated ? ' (some patches left out: diff a narrower path)' : ''}\n${body}` };
  });

  // ---- sandboxes ------------------------------------------------------------------------------

  if (bound === undefined) {
    tool('sandbox_create', toolInputs.sandbox_create, sandboxSchema, (args) => ({ structured: { ...corral.sandboxes.create(args, scope) } }));
    tool('sandbox_list', toolInputs.sandbox_list, sandboxListSchema, (args) => ({ structured: { sandboxes: corral.sandboxes.list({ ...(args.state ? { state: args.state } : {}) }, scope) } }));
    tool('sandbox_destroy', toolInputs.sandbox_destroy, sandboxSchema, async (args) => ({ structured: { ...(await corral.lifecycle.destroy(sandboxOf(args), { ...(args.keepFork ? { keepFork: true } : {}) }, scope)) } }));
  }

  registerMcpResources(server, { corral, scope, files, ...(bound !== undefined ? { sandbox: bound } : {}), ...(options.scopes !== undefined ? { scopes: options.scopes } : {}) });
  return server;
}
