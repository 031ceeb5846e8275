// The MCP tools' input and output schemas. The API's zod schemas are reused where a tool has the
// same shape (sandboxes, execs, files, checkpoints); the rest are the tools' own. Every field has a
// description written for a model: the SDK turns these into the JSON schemas clients show it.
import { z } from 'zod';
import { execResultSchema, execStateSchema, fileEditSchema, sandboxCreateSchema } from '../protocol/api-schemas.ts';

export const sandboxArg = z.string().min(1).max(80).describe('The sandbox to work in: its sbx_ id or its name (sandbox_list shows them).');
const pathArg = z.string().min(1).max(4096);
const execIdArg = z.string().min(1).max(80).describe('The exec_ id that exec returned for a background command.');

/** Each tool's own arguments; `withSandbox` adds the sandbox argument unless the server is bound to one. */
export const toolInputs = {
  exec: {
    command: z.string().min(1).max(1_000_000).optional().describe('A shell command line, run with bash -c in the workspace (pipes, && and redirections work). Give command or argv.'),
    argv: z.array(z.string().max(1_000_000)).min(1).max(65536).optional().describe('The program and its arguments, run without a shell. Give command or argv.'),
    cwd: z.string().max(4096).optional().describe('The working directory: relative to the workspace root, or absolute under /workspace (default: the root).'),
    env: z.record(z.string().max(256), z.string().max(32768)).optional().describe('Extra environment variables for this command.'),
    timeoutMs: z.number().int().positive().max(86_400_000).optional().describe('Wall-clock limit in milliseconds (default 300000); the command is killed when it passes.'),
    background: z.boolean().optional().describe('Start the command and return at once with its exec id (for servers, watchers, long builds); follow it with exec_output, exec_wait, exec_kill. Default false: wait for the result.'),
    approval: z.string().max(40).optional().describe('Run the command an approval (apr_…) holds, once a person approved it: give only this (and the sandbox), no command.'),
    waitForApprovalMs: z.number().int().min(0).max(600_000).optional().describe('When the policy asks a person to approve the command, wait this long for the answer and run it if approved (default 0: return pending at once).'),
  },
  exec_output: {
    exec: execIdArg,
    stdoutOffset: z.number().int().min(0).optional().describe('Byte offset in stdout to read from (default 0; pass the offsets the last call returned to get only what is new).'),
    stderrOffset: z.number().int().min(0).optional().describe('Byte offset in stderr to read from (default 0).'),
    maxBytes: z.number().int().min(1).max(1_048_576).optional().describe('Read at most this many bytes in all (default 65536).'),
  },
  exec_wait: {
    exec: execIdArg,
    timeoutMs: z.number().int().min(0).max(600_000).optional().describe('Give up waiting after this long (default 30000); the exec keeps running and its state says running.'),
  },
  exec_kill: {
    exec: execIdArg,
    signal: z.union([z.string().max(20), z.number().int()]).optional().describe('TERM, INT, KILL, … or a number (default KILL). TERM and KILL end the whole process tree.'),
  },
  read_file: {
    path: pathArg.describe('The file, from the workspace root (/src/main.ts or src/main.ts).'),
    startLine: z.number().int().min(1).optional().describe('The first line to show, counting from 1 (default 1).'),
    endLine: z.number().int().min(1).optional().describe('The last line to show (default: startLine + 1999, or the end).'),
  },
  write_file: {
    path: pathArg.describe('The file to create or replace, from the workspace root; missing parent directories are created.'),
    content: z.string().max(16 * 1024 * 1024).describe('The whole new content of the file (UTF-8 text).'),
    mode: z.number().int().min(0).max(0o777).optional().describe('Permission bits, e.g. 493 (0755) for a script (default: 0644 for a new file, unchanged for an existing one).'),
  },
  edit_file: fileEditSchema.shape,
  list_files: {
    path: pathArg.optional().describe('The directory to list, from the workspace root (default /).'),
    recursive: z.boolean().optional().describe('List everything below it, depth first (default false: its entries only).'),
    limit: z.number().int().min(1).max(10_000).optional().describe('At most this many entries (default 1000).'),
  },
  search: {
    query: z.string().min(1).max(4096).describe('grep: a JavaScript regular expression matched per line. text: words to find (full-text, ranked; "quoted phrases", AND, OR, NOT, prefix*).'),
    mode: z.enum(['grep', 'text']).optional().describe('grep (default): every matching line, with its line number; text: the best-matching files, with a snippet each.'),
    path: pathArg.optional().describe('grep only: search below this path (default /).'),
    ignoreCase: z.boolean().optional().describe('grep only: ignore case.'),
    limit: z.number().int().min(1).max(1000).optional().describe('At most this many matching lines (grep, default 200) or files (text, default 20).'),
  },
  checkpoint_save: {
    name: z.string().min(1).max(128).optional().describe('A name to restore it by: letters, digits, _ - . : (default cp-<time>).'),
    message: z.string().max(2000).optional().describe('A note on what state this is.'),
  },
  checkpoint_list: {},
  checkpoint_restore: {
    name: z.string().min(1).max(128).describe('The checkpoint to go back to (checkpoint_list shows them).'),
    cancelExecs: z.boolean().optional().describe('Cancel running background execs first (default false: the restore is refused while they run).'),
  },
  diff: {
    from: z.string().min(1).max(128).optional().describe("Compare from this checkpoint name or commit id (default: the sandbox's start, so you see everything changed in this session)."),
    to: z.string().min(1).max(128).optional().describe('Compare up to this checkpoint or commit (default HEAD, the current files).'),
    path: pathArg.optional().describe('Only changes at or below this path.'),
    patch: z.boolean().optional().describe('Include unified diffs of text files (default true).'),
  },
  sandbox_create: sandboxCreateSchema.shape,
  sandbox_list: {
    state: z.enum(['ready', 'paused', 'destroyed']).optional().describe('Only sandboxes in this state (default: the live ones, ready and paused).'),
  },
  sandbox_destroy: {
    keepFork: z.boolean().optional().describe("Keep the sandbox's own vault (its fork) instead of deleting it (default false)."),
  },
} as const;

export type ToolName = keyof typeof toolInputs;

/** Tools that act on one sandbox (they take `sandbox` unless the server is bound to one). */
export const sandboxTools: readonly ToolName[] = ['exec', 'read_file', 'write_file', 'edit_file', 'list_files', 'search', 'checkpoint_save', 'checkpoint_list', 'checkpoint_restore', 'diff', 'sandbox_destroy'];

// ---- outputs of the tools that have no API twin -------------------------------------------------

export const execToolOutput = z
  .object({
    exec: z.string().describe('The exec id (exec_…).'),
    state: execStateSchema,
    background: z.boolean(),
    result: execResultSchema.nullable().describe('The corral.exec.result envelope once it ended (decision, exit code, output, change summary); null while a background exec runs.'),
    approval: z.object({ id: z.string(), expiresAt: z.string() }).strict().nullable().describe('With state pending: the approval a person must answer.'),
  })
  .strict();
export type ExecToolOutput = z.infer<typeof execToolOutput>;

export const execOutputToolOutput = z
  .object({
    exec: z.string(),
    state: execStateSchema,
    stdout: z.string().describe('Output from stdoutOffset on (UTF-8 text; invalid bytes replaced).'),
    stderr: z.string(),
    stdoutOffset: z.number().int().describe('Pass back as stdoutOffset to read on from here.'),
    stderrOffset: z.number().int(),
    more: z.boolean().describe('True when more output is already there (maxBytes cut this read).'),
    exitCode: z.number().int().nullable(),
  })
  .strict();

export const readFileToolOutput = z
  .object({
    path: z.string(),
    size: z.number().int().describe('Bytes in the whole file.'),
    totalLines: z.number().int(),
    startLine: z.number().int(),
    endLine: z.number().int().describe('The last line shown (startLine - 1 when none).'),
    content: z.string().describe('The lines shown, each prefixed with its number and a tab (as cat -n).'),
    truncated: z.boolean().describe('True when lines after endLine exist.'),
  })
  .strict();

export const searchToolOutput = z
  .object({
    mode: z.enum(['grep', 'text']),
    matches: z.array(z.object({ path: z.string(), line: z.number().int(), text: z.string() }).strict()).describe('grep: the matching lines.'),
    files: z.array(z.object({ path: z.string(), score: z.number(), snippet: z.string() }).strict()).describe('text: the best-matching files, best first.'),
    truncated: z.boolean().describe('True when the limit (or the time budget) cut the results short.'),
  })
  .strict();

export const diffToolOutput = z
  .object({
    from: z.string().describe('The commit compared from.'),
    to: z.string().describe('The commit compared to.'),
    summary: z.object({ added: z.number().int(), modified: z.number().int(), deleted: z.number().int(), bytesAdded: z.number().int(), bytesRemoved: z.number().int() }).strict(),
    changes: z
      .array(
        z
          .object({
            path: z.string(),
            change: z.enum(['added', 'modified', 'deleted']),
            kind: z.enum(['file', 'dir', 'symlink']),
            patch: z.string().optional().describe('A unified diff (text files, when asked).'),
            binary: z.boolean().optional(),
          })
          .strict(),
      )
      .describe('Changed paths in path order.'),
    truncated: z.boolean().describe('True when patches were left out past the size budget.'),
  })
  .strict();
