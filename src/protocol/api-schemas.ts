// The daemon API's wire shapes as zod schemas: the one source for request validation, response types,
// the OpenAPI document and (later) the SDK. Browser-safe: no `node:*` imports, only web-standard globals.
import { z } from 'zod';
import { errorCodes, type ErrorCode } from './errors.ts';

export const API_VERSION = 1;

// ---- ids -------------------------------------------------------------------------------------

export { idPrefixes, isId, newId, type IdPrefix } from './ids.ts';
import { isId, type IdPrefix } from './ids.ts';

/** A zod schema for ids with this prefix, for path parameters and bodies. */
export function idSchema(prefix: IdPrefix) {
  return z
    .string()
    .refine((v) => isId(prefix, v), { message: `expected an id like ${prefix}_ followed by 26 base32 characters` })
    .describe(`An id with the \`${prefix}_\` prefix.`);
}

// ---- errors ----------------------------------------------------------------------------------

export const errorCodeSchema = z.enum(Object.keys(errorCodes) as [ErrorCode, ...ErrorCode[]]).describe('A code of the error registry; its HTTP status is fixed per code.');

export const errorEnvelopeSchema = z
  .object({
    error: z
      .object({
        code: errorCodeSchema,
        message: z.string().describe('What went wrong and what to do next.'),
        details: z.record(z.string(), z.unknown()).describe('Machine-readable facts about the error (which field, which limit, ...).'),
        requestId: z.string().optional().describe('The request id, as in the x-request-id response header; the daemon log names it too.'),
      })
      .strict(),
  })
  .strict()
  .describe('The body of every error response.');
export type ApiErrorEnvelope = z.infer<typeof errorEnvelopeSchema>;

// ---- system routes ---------------------------------------------------------------------------

export const pingSchema = z
  .object({
    ok: z.literal(true),
    version: z.string().describe('The daemon\'s Corral version.'),
    apiVersion: z.literal(API_VERSION).describe('The API\'s major version; the routes live under /v{apiVersion}.'),
  })
  .strict();
export type Ping = z.infer<typeof pingSchema>;

export const systemSchema = z
  .object({
    kernel: z.string().describe('The kernel release (uname -r).'),
    os: z
      .object({
        platform: z.string().describe('linux, darwin, ...'),
        type: z.string().describe('The kernel name (uname -s).'),
        name: z.string().nullable().describe('The distribution (PRETTY_NAME of /etc/os-release), when known.'),
      })
      .strict(),
    arch: z.string().describe('The CPU architecture: x64, arm64, ...'),
    hostname: z.string(),
    memory: z
      .object({
        totalBytes: z.number().int().nonnegative(),
        availableBytes: z.number().int().nonnegative().describe('MemAvailable where the kernel reports it (free + reclaimable), else free memory.'),
      })
      .strict(),
    cpus: z.object({ count: z.number().int().nonnegative(), model: z.string().nullable() }).strict(),
    loadAverage: z.tuple([z.number(), z.number(), z.number()]).describe('1, 5 and 15 minute load averages.'),
    uptimeSeconds: z.number().nonnegative().describe('Seconds since the machine booted.'),
    daemon: z
      .object({
        pid: z.number().int(),
        uptimeSeconds: z.number().nonnegative(),
        node: z.string().describe('The Node.js version running the daemon.'),
      })
      .strict(),
  })
  .strict();
export type SystemInfo = z.infer<typeof systemSchema>;

export const backendNameSchema = z.enum(['host', 'namespace']);

export const backendHealthSchema = z
  .object({
    name: backendNameSchema,
    ok: z.boolean().describe('Whether the backend can run commands now.'),
    warnings: z.array(z.string()).describe('What is degraded or missing, and how to fix it.'),
  })
  .strict();

export const healthSchema = z
  .object({
    ok: z.boolean().describe('Whether at least one backend can run commands (the status is 503 when not).'),
    backends: z.array(backendHealthSchema),
  })
  .strict();
export type Health = z.infer<typeof healthSchema>;

export const capabilitiesSchema = z
  .object({
    backend: backendNameSchema,
    available: z.boolean(),
    reason: z.string().optional().describe('Why the backend is unavailable, with the command that fixes it.'),
    isolation: z.object({ filesystem: z.boolean(), network: z.boolean(), process: z.boolean(), syscalls: z.boolean(), user: z.boolean() }).strict(),
    limits: z
      .object({ memory: z.boolean(), pids: z.boolean(), cpu: z.boolean(), wallTime: z.boolean(), openFiles: z.boolean(), fileSize: z.boolean(), tmpSize: z.boolean() })
      .strict()
      .describe('Which resource limits the backend enforces.'),
    changeDetection: z.enum(['overlay', 'stat-index']).describe('How the workspace\'s changes are caught.'),
    snapshots: z.boolean(),
    pty: z.boolean().optional().describe('Whether an exec can get a pseudo-terminal (tty); absent means no.'),
    profiles: z.array(z.string()),
    notes: z.array(z.string()),
  })
  .strict();
export type BackendCapabilities = z.infer<typeof capabilitiesSchema>;

export const capabilitiesListSchema = z.object({ backends: z.array(capabilitiesSchema).describe('Each registered backend\'s probe.') }).strict();
export type CapabilitiesList = z.infer<typeof capabilitiesListSchema>;

// ---- sandboxes -------------------------------------------------------------------------------

export { policyPresetNames, sandboxBounds } from './sandbox-spec.ts';
import { policyPresetNames, sandboxBounds } from './sandbox-spec.ts';

const vaultNameSchema = z.string().min(1).max(64).describe('A vault name: 1-64 of A-Z a-z 0-9 _ -, not starting with -.');
const envSchema = z
  .record(z.string().max(sandboxBounds.maxEnvNameLength), z.string().max(sandboxBounds.maxEnvValueLength))
  .describe(`Environment variables (names: letters, digits, _; at most ${sandboxBounds.maxEnvVars}).`);

export const sandboxLimitsSchema = z
  .object({
    memoryBytes: z.number().int().positive().optional().describe('Memory limit of each exec, in bytes (default: 4 GiB or half the RAM, where enforceable).'),
    pids: z.number().int().positive().optional().describe('Process limit of each exec (default 4096, where enforceable).'),
    cpuPercent: z.number().int().positive().optional().describe('CPU limit of each exec: 100 = one core.'),
    tmpSizeBytes: z.number().int().positive().optional().describe('Size of the exec\'s /tmp, in bytes.'),
  })
  .strict()
  .describe('Resource limits applied to every exec of the sandbox; a limit the backend cannot enforce fails the exec (LIMIT_UNENFORCEABLE).');

export const sandboxCreateSchema = z
  .object({
    vault: vaultNameSchema.optional().describe('An existing vault to work on (default: a new empty vault named after the sandbox id).'),
    fork: z.boolean().optional().describe('Work on a fork of the vault (default true); false works on the vault itself.'),
    name: vaultNameSchema.optional().describe('A unique name among live sandboxes (same rules as vault names, not starting with sbx_).'),
    backend: z.enum(['auto', 'host', 'namespace']).optional().describe('The isolation backend (default auto: namespace where available).'),
    policy: z.enum(policyPresetNames).optional().describe('A policy preset (default workstation).'),
    limits: sandboxLimitsSchema.optional(),
    network: z.enum(['none', 'host']).optional().describe('none (default): loopback only; host: the host\'s network, where the policy allows it.'),
    env: envSchema.optional(),
    labels: z
      .record(z.string().max(sandboxBounds.maxLabelKeyLength), z.string().max(sandboxBounds.maxLabelValueLength))
      .optional()
      .describe(`Labels to filter by (keys: A-Z a-z 0-9 . _ / -, values: printable; at most ${sandboxBounds.maxLabels}).`),
    ttlSeconds: z.number().int().min(sandboxBounds.minTtlSeconds).max(sandboxBounds.maxTtlSeconds).optional().describe('Lifetime in seconds (1 to 7 days; default: none). An expired sandbox is destroyed.'),
    idleTimeoutSeconds: z
      .number()
      .int()
      .min(sandboxBounds.minTtlSeconds)
      .max(sandboxBounds.maxTtlSeconds)
      .optional()
      .describe('Auto-stop: after this many seconds without a running exec the sandbox is paused (1 to 7 days; default: never). POST /v1/sandboxes/{id}/resume makes it ready again.'),
  })
  .strict()
  .describe('What a new sandbox works on and how its commands run.');
export type SandboxCreate = z.infer<typeof sandboxCreateSchema>;

export const sandboxStateSchema = z.enum(['ready', 'paused', 'destroyed']);
export type SandboxState = z.infer<typeof sandboxStateSchema>;

export const sandboxSchema = z
  .object({
    id: z.string().describe('sbx_ id.'),
    name: z.string().nullable(),
    state: sandboxStateSchema,
    vault: z.string().describe('The vault the sandbox\'s commands work on.'),
    sourceVault: z.string().nullable().describe('The vault it was forked from (or the vault itself with fork false); null when a new vault was made for it.'),
    forked: z.boolean().describe('Whether the vault belongs to the sandbox (a fork, or a new vault made for it): destroying the sandbox deletes it unless keepFork.'),
    backend: z.enum(['auto', 'host', 'namespace']),
    policy: z.string(),
    limits: sandboxLimitsSchema,
    network: z.enum(['none', 'host']),
    env: z.record(z.string(), z.string()),
    labels: z.record(z.string(), z.string()),
    createdAt: z.string().describe('ISO 8601 time.'),
    expiresAt: z.string().nullable().describe('ISO 8601 time, or null without a TTL.'),
    idleTimeoutSeconds: z.number().int().nullable().describe('Seconds without a running exec before the sandbox is paused; null: never.'),
    lastActiveAt: z.string().describe('ISO 8601 time of the last activity (an exec starting or ending, a resume; else the creation): the idle timeout counts from it.'),
    usage: z
      .object({
        runningExecs: z.number().int().describe('Execs running now.'),
        execs: z.number().int().describe('Execs that ended.'),
        cpuMs: z.number().describe('CPU time of the execs that ended, user + system.'),
        peakMemoryBytes: z.number().nullable().describe('The highest peak memory of one exec (null: none measured).'),
      })
      .strict()
      .describe('What the sandbox\'s execs used.'),
  })
  .strict();
export type Sandbox = z.infer<typeof sandboxSchema>;

export const sandboxListSchema = z.object({ sandboxes: z.array(sandboxSchema) }).strict();
export type SandboxList = z.infer<typeof sandboxListSchema>;

// ---- execs -----------------------------------------------------------------------------------

export { isExecId } from './ids.ts';

export const execRequestSchema = z
  .object({
    argv: z.array(z.string()).min(1).max(65536).optional().describe('The program and its arguments (no shell). Exactly one of argv and shell.'),
    shell: z.string().min(1).optional().describe('A shell string, run as bash -c (never a login shell).'),
    cwd: z.string().max(4096).optional().describe('Relative to the workspace, or absolute under /workspace (default: the root).'),
    env: envSchema.optional().describe('Variables added to the sandbox\'s env for this exec (they win).'),
    timeoutMs: z.number().int().positive().max(86_400_000).optional().describe('Wall-clock limit (default 300000).'),
    stdin: z.base64().optional().describe('Standard input, base64 (default: none).'),
    background: z.boolean().optional().describe('Return at once (202) with the exec\'s id and state; follow it with GET /v1/execs/{id}/output, wait, kill (default false).'),
    tty: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict().optional().describe('A real pseudo-terminal of this size (TERM=xterm-256color); stdout holds what it showed, stderr is empty. Resize over the attach WebSocket.'),
    waitForApprovalMs: z.number().int().min(0).max(3_600_000).optional().describe('When the policy asks a person to approve the command, wait this long for the answer (the approval is pending meanwhile: GET /v1/approvals) and run it if approved; denied or expired: the envelope says so (default 0: the envelope is pending at once).'),
    resume: z.string().max(80).optional().describe('Run the command an approved approval (apr_…) of this sandbox holds, instead of argv or shell: after a `pending` result and a person\'s approval.'),
    user: z.string().min(1).max(64).optional().describe('Run as this user inside the sandbox: a uid, uid:gid, or a name of /etc/passwd (namespace backend; default: the sandbox\'s own user).'),
    openStdin: z.boolean().optional().describe('Keep stdin open for POST /v1/execs/{id}/stdin (or the attach WebSocket) until closed; exclusive with stdin (default false). Docker\'s AttachStdin.'),
    attachStdout: z.boolean().optional().describe('Created execs (POST /v1/sandboxes/{id}/execs) only, Docker\'s AttachStdout: an attached start and the attach WebSocket send stdout (default true). The output is kept either way (GET /v1/execs/{id}/output, logs).'),
    attachStderr: z.boolean().optional().describe('Created execs only, Docker\'s AttachStderr: an attached start and the attach WebSocket send stderr (default true).'),
  })
  .strict()
  .describe('A command to run in the sandbox: collected (one request, one result envelope), streamed (Accept: text/event-stream) or in the background.');
export type ExecRequestBody = z.infer<typeof execRequestSchema>;

const pathChangeSchema = z.object({ path: z.string(), size: z.number(), kind: z.enum(['file', 'dir', 'symlink']).optional() }).strict();

export const execResultSchema = z
  .object({
    kind: z.literal('corral.exec.result'),
    version: z.literal(1),
    id: z.string(),
    command: z.object({ argv: z.array(z.string()), shell: z.string().nullable(), cwd: z.string() }).strict(),
    vault: z.string(),
    backend: z.string().nullable(),
    decision: z
      .object({ action: z.enum(['allow', 'deny', 'require_approval', 'allow_with_checkpoint']), categories: z.array(z.string()), reason: z.string(), rule: z.string() })
      .strict()
      .nullable(),
    checkpoint: z.string().nullable(),
    status: z.enum(['completed', 'pending', 'denied', 'failed']),
    approval: z.object({ id: z.string(), expiresAt: z.string() }).strict().optional(),
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    timedOut: z.boolean(),
    oomKilled: z.boolean(),
    truncated: z.boolean(),
    stdout: z.string(),
    stderr: z.string(),
    tty: z.boolean().optional().describe('Present (true) when the command ran on a pseudo-terminal: stdout is what the terminal showed (stderr merged into it), stderr is empty.'),
    encoding: z.enum(['utf8', 'base64']),
    durationMs: z.number(),
    stages: z.partialRecord(z.enum(['validating', 'resolving', 'policy', 'baseline', 'checkpointing', 'mounting', 'executing', 'summarizing', 'cleaning_up']), z.number()),
    usage: z
      .object({ peakMemoryBytes: z.number().nullable(), cpuMs: z.number(), cpuUserMs: z.number(), cpuSystemMs: z.number(), readBytes: z.number().nullable(), writtenBytes: z.number().nullable() })
      .strict(),
    changes: z
      .object({
        commit: z.string().nullable(),
        added: z.array(pathChangeSchema),
        modified: z.array(pathChangeSchema),
        deleted: z.array(pathChangeSchema),
        discarded: z.string().optional(),
        conflicts: z.array(z.string()).optional(),
        skipped: z.array(z.object({ path: z.string(), reason: z.string() }).strict()).optional(),
      })
      .strict()
      .nullable(),
    limits: z
      .object({
        memoryBytes: z.number().optional(),
        pids: z.number().optional(),
        cpuPercent: z.number().optional(),
        openFiles: z.number().optional(),
        fileSizeBytes: z.number().optional(),
        tmpSizeBytes: z.number().optional(),
        timeoutMs: z.number().optional(),
      })
      .strict()
      .optional(),
    warnings: z.array(z.string()),
    error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }).strict().optional(),
  })
  .strict()
  .describe('The corral.exec.result envelope (version 1), as `corral exec --json` prints it: see docs/exec.md.');
export type ExecResultEnvelope = z.infer<typeof execResultSchema>;

export const execStateSchema = z.enum(['created', 'running', 'completed', 'pending', 'denied', 'failed', 'lost']).describe('running, then the envelope\'s status; lost: the daemon died while it ran (its output so far is kept).');

export const execRecordSchema = z
  .object({
    id: z.string().describe('The exec\'s id (the envelope\'s).'),
    sandbox: z.string().describe('The sbx_ id it runs in.'),
    state: execStateSchema,
    background: z.boolean(),
    command: z.object({ argv: z.array(z.string()).nullable(), shell: z.string().nullable(), cwd: z.string().nullable() }).strict(),
    pid: z.number().int().nullable().describe('The host pid of its top process, once started.'),
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    stdoutBytes: z.number().int().describe('Bytes of stdout so far (offsets for GET /v1/execs/{id}/output).'),
    stderrBytes: z.number().int(),
    result: execResultSchema.nullable().describe('The result envelope once it ended; null while running and for a lost exec.'),
    error: z.object({ code: z.string(), message: z.string() }).strict().nullable().describe('Why an exec whose start was refused failed.'),
    attach: z.object({ stdin: z.boolean(), stdout: z.boolean(), stderr: z.boolean() }).strict().describe('The streams an attached client gets (Docker\'s Attach* flags): stdin is writable (openStdin), stdout and stderr are sent.'),
  })
  .strict();

export const execStartSchema = z
  .object({ tty: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict().optional().describe('The initial terminal size (the exec was created with tty).') })
  .strict();
export type ExecRecord = z.infer<typeof execRecordSchema>;

export const execListSchema = z.object({ execs: z.array(execRecordSchema) }).strict();
export type ExecList = z.infer<typeof execListSchema>;

export const execKillSchema = z
  .object({ signal: z.union([z.string().max(20), z.number().int()]).optional().describe('A name (TERM, SIGINT, ...) or a number; TERM and KILL end the whole tree (TERM, grace, KILL), others go to the command (default KILL).') })
  .strict();

export const execWaitSchema = z
  .object({ timeoutMs: z.number().int().min(0).max(3_600_000).optional().describe('Answer after this long even if it still runs (default 30000).') })
  .strict();

export const execFrameSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('started'), exec: z.string(), pid: z.number().int() }).strict(),
    z.object({ type: z.literal('output'), stream: z.enum(['stdout', 'stderr']), offset: z.number().int(), atUs: z.number().int().describe('When it was produced, µs since the epoch.'), data: z.string(), encoding: z.enum(['utf8', 'base64']) }).strict(),
    z.object({ type: z.literal('gap'), stream: z.enum(['stdout', 'stderr']), from: z.number().int(), to: z.number().int() }).strict().describe('Bytes from..to are no longer kept; the stream resumes at to.'),
    z.object({ type: z.literal('heartbeat'), elapsedMs: z.number() }).strict(),
    z.object({ type: z.literal('exit'), exec: execRecordSchema }).strict(),
  ])
  .describe('One frame of an exec\'s stream: the data of an SSE event (the event name is the type) or a WebSocket text message.');
export type ExecFrameWire = z.infer<typeof execFrameSchema>;

// ---- files ---------------------------------------------------------------------------------

const filePathSchema = z.string().min(1).max(4096).describe("A path in the sandbox's workspace, from its root ('/src/a.ts'; a relative one starts at the root): no '..' above the root, no NUL, at most 4096 bytes.");
const commitIdSchema = z.string().nullable().describe('The commit the change made, or null when nothing changed.');

export const fileInfoSchema = z
  .object({
    path: z.string(),
    name: z.string().describe("The last component ('' for the root)."),
    kind: z.enum(['file', 'dir', 'symlink']),
    mode: z.number().int().describe('Permission bits (420 = 0644).'),
    size: z.number().int().nonnegative().describe("Bytes: a file's length, a link target's length, or all files below a directory."),
    mtime: z.string().describe('ISO 8601 time.'),
    hash: z.string().describe('sha256 of the content (files, link targets) or of the tree (directories).'),
    files: z.number().int().nonnegative().optional().describe('Directories: files and links below.'),
    target: z.string().optional().describe('Symlinks: where the link points.'),
  })
  .strict();
export type FileInfo = z.infer<typeof fileInfoSchema>;

export const fileListSchema = z
  .object({
    path: z.string(),
    entries: z.array(fileInfoSchema).describe('In name order; depth first when recursive.'),
    truncated: z.boolean().describe('True when the limit cut the list short.'),
  })
  .strict();
export type FileList = z.infer<typeof fileListSchema>;

export const fileWriteResultSchema = z
  .object({ path: z.string(), size: z.number().int().nonnegative().describe("The file's size after the write."), mode: z.number().int(), commit: commitIdSchema })
  .strict();
export type FileWriteResult = z.infer<typeof fileWriteResultSchema>;

export const fileEditSchema = z
  .object({
    path: filePathSchema,
    oldText: z.string().min(1).describe('The exact text to replace (whitespace and line endings included); no patterns.'),
    newText: z.string().describe('What replaces it (empty deletes it).'),
    replaceAll: z.boolean().optional().describe('Replace every occurrence (default false: oldText must occur exactly once).'),
  })
  .strict()
  .describe('An exact string replacement in one file.');
export type FileEdit = z.infer<typeof fileEditSchema>;

export const fileEditResultSchema = z.object({ path: z.string(), replacements: z.number().int().positive(), commit: commitIdSchema }).strict();
export type FileEditResult = z.infer<typeof fileEditResultSchema>;

export const fileMkdirSchema = z
  .object({ path: filePathSchema, parents: z.boolean().optional().describe('Create missing parents too, and accept an existing directory (default false).') })
  .strict();
export const fileMkdirResultSchema = z.object({ path: z.string(), commit: commitIdSchema }).strict();
export type FileMkdirResult = z.infer<typeof fileMkdirResultSchema>;

export const fileRemoveResultSchema = z
  .object({ path: z.string(), removed: z.number().int().nonnegative().describe('Files and links removed.'), commit: commitIdSchema })
  .strict();
export type FileRemoveResult = z.infer<typeof fileRemoveResultSchema>;

export const fileMoveSchema = z
  .object({
    from: filePathSchema,
    to: filePathSchema.describe('The new path itself (never a directory to move into).'),
    overwrite: z.boolean().optional().describe('Replace a file or link at `to` (default false: PATH_EXISTS); a directory there is never replaced.'),
  })
  .strict();
export const fileMoveResultSchema = z.object({ from: z.string(), to: z.string(), commit: commitIdSchema }).strict();
export type FileMoveResult = z.infer<typeof fileMoveResultSchema>;

export const fileUploadResultSchema = z
  .object({
    path: z.string().describe('The directory the tar went into.'),
    files: z.number().int().nonnegative(),
    dirs: z.number().int().nonnegative(),
    symlinks: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative().describe('Bytes of file contents.'),
    commit: commitIdSchema,
    skipped: z.array(z.object({ path: z.string(), reason: z.string() }).strict()).describe('Entries not imported (hard links, devices, fifos) and why.'),
    outside: z.array(z.object({ path: z.string(), target: z.string() }).strict()).describe('Symlinks stored whose target is absolute or leaves the upload (never followed by Corral).'),
  })
  .strict();
export type FileUploadResult = z.infer<typeof fileUploadResultSchema>;

export const fileWatchReadySchema = z.object({ path: z.string(), commit: z.string().describe('The head the watch starts from.') }).strict().describe('The data of the first event of a watch (event: ready).');
export const fileChangeEventSchema = z
  .object({ path: z.string(), kind: z.enum(['created', 'modified', 'deleted']), commit: z.string().describe('The commit that made the change.') })
  .strict()
  .describe('The data of a watch event (event: change).');
export type FileChangeEvent = z.infer<typeof fileChangeEventSchema>;

// ---- approvals -------------------------------------------------------------------------------

export const approvalStateSchema = z
  .enum(['pending', 'approved', 'denied', 'expired', 'used'])
  .describe('pending, then approved or denied by a person, or expired past its deadline; used: an approved one whose exec ran.');
export type ApprovalStateWire = z.infer<typeof approvalStateSchema>;

export const approvalSchema = z
  .object({
    id: z.string().describe('The approval\'s id: apr_ and 16 hex digits.'),
    state: approvalStateSchema,
    vault: z.string().describe('The vault the command would run on.'),
    sandbox: z.string().nullable().describe('The sandbox working on that vault (a live one first), or null outside any sandbox.'),
    command: z.string().describe('The command as one line: the shell string, or the argv quoted.'),
    reason: z.string().describe('Why the policy asks a person.'),
    decision: z.record(z.string(), z.unknown()).describe('The policy\'s decision: action, categories, reason, rule.'),
    request: z.record(z.string(), z.unknown()).describe('The exec request it holds (argv or shell, cwd, env, limits, ...): what runs once approved.'),
    requester: z.string().describe('Who ran the command that asked.'),
    createdAt: z.string().describe('ISO 8601 time.'),
    expiresAt: z.string().describe('ISO 8601 time: a pending approval expires then, and so does an approved one not used by then.'),
    answeredBy: z.string().nullable().describe('Who approved or denied it: owner, or key:<id> of the API key; the audit log has the same.'),
    answeredAt: z.string().nullable().describe('ISO 8601 time.'),
    answerReason: z.string().nullable().describe('The reason given with the answer.'),
  })
  .strict()
  .describe('A command the policy sent to a person.');
export type ApprovalWire = z.infer<typeof approvalSchema>;

export const approvalListSchema = z.object({ approvals: z.array(approvalSchema).describe('Oldest first.') }).strict();
export type ApprovalList = z.infer<typeof approvalListSchema>;

// Printable text (tabs and newlines allowed): a reason ends up in the audit log and on terminals.
const answerReasonSchema = z.string().max(2000).regex(/^[^\u0000-\u0008\u000b-\u001f\u007f]*$/, 'a reason must be printable text');

export const approvalApproveSchema = z
  .object({ reason: answerReasonSchema.optional().describe('Why it is approved (default: empty).') })
  .strict()
  .describe('Approve a pending approval; the body may be empty.');

export const approvalDenySchema = z
  .object({ reason: answerReasonSchema.min(1).describe('Why it is denied: the agent sees it in the exec\'s result.') })
  .strict()
  .describe('Deny a pending approval, with a reason.');

// ---- sandbox lifecycle -----------------------------------------------------------------------

export const sandboxExtendSchema = z
  .object({
    ttlSeconds: z.number().int().min(sandboxBounds.minTtlSeconds).max(sandboxBounds.maxTtlSeconds).describe('The new lifetime, counted from now (1 to 7 days).'),
  })
  .strict()
  .describe('A new lifetime for the sandbox: it expires ttlSeconds from now (a sandbox without a TTL gets one).');

export const emptyBodySchema = z.object({}).strict().describe('No fields: the body may be empty or {}.');

// Printable text (tabs and newlines allowed): a message ends up in logs and on terminals.
const checkpointMessageSchema = z.string().max(2000).regex(/^[^\u0000-\u0008\u000b-\u001f\u007f]*$/, 'a message must be printable text');

export const checkpointCreateSchema = z
  .object({
    name: z.string().min(1).max(128).optional().describe("1-128 of A-Z a-z 0-9 _ - . :, not starting with '-' or '.', not HEAD (default: cp-<ISO time>)."),
    message: checkpointMessageSchema.optional().describe('A note kept with the checkpoint (default empty).'),
  })
  .strict()
  .describe("Save a checkpoint of the sandbox's vault; the body may be empty.");

export const checkpointSchema = z
  .object({
    name: z.string(),
    commit: z.string().describe('The commit it points to.'),
    message: z.string(),
    createdAt: z.string().describe('ISO 8601 time.'),
  })
  .strict()
  .describe("A named pointer to a commit of the sandbox's vault.");
export type CheckpointWire = z.infer<typeof checkpointSchema>;

export const checkpointListSchema = z.object({ checkpoints: z.array(checkpointSchema).describe('Oldest first.') }).strict();
export type CheckpointList = z.infer<typeof checkpointListSchema>;

export const checkpointRestoreSchema = z
  .object({ cancelExecs: z.boolean().optional().describe('Cancel running execs first (default false: a restore while execs run is 409 SANDBOX_STATE).') })
  .strict()
  .describe('Restore options; the body may be empty.');

export const checkpointRestoreResultSchema = z
  .object({
    sandbox: z.string(),
    checkpoint: z.string(),
    commit: z.string().describe("The vault's new head: the checkpoint's files, as a commit on top of the state before."),
    previous: z.string().describe('The head before the restore (restore it to undo).'),
    restored: z.string().describe('The commit the checkpoint points to.'),
    cancelled: z.array(z.string()).describe('Execs cancelled first (cancelExecs).'),
  })
  .strict();
export type CheckpointRestoreResult = z.infer<typeof checkpointRestoreResultSchema>;

// ---- events ----------------------------------------------------------------------------------

export const eventTypes = [
  'created',
  'ready',
  'paused',
  'resumed',
  'checkpointed',
  'restored',
  'expired',
  'destroyed',
  'exec.started',
  'exec.exited',
  'approval.requested',
  'approval.answered',
] as const;
export const eventTypeSchema = z.enum(eventTypes).describe('What happened.');

export const corralEventSchema = z
  .object({
    seq: z.number().int().positive().describe('Grows by one per event in this daemon (the SSE id: resume after it with Last-Event-ID).'),
    type: eventTypeSchema,
    at: z.string().describe('ISO 8601 time.'),
    sandbox: z.string().nullable().describe('The sbx_ id concerned, or null (an approval outside any sandbox).'),
    tenant: z.string().nullable().describe("The owning tenant; null: the machine's owner."),
    data: z.record(z.string(), z.unknown()).describe('Per type: paused {reason, execs, processes}, resumed {execs, processes}, checkpointed {checkpoint, commit}, restored {checkpoint, commit, previous, cancelled}, exec.started {exec, background}, exec.exited {exec, status, exitCode, ...}, destroyed {vaultDeleted}.'),
  })
  .strict()
  .describe('One event of the stream (event: <type>, id: <seq>, data: this JSON).');
export type CorralEventWire = z.infer<typeof corralEventSchema>;

export const eventResetSchema = z
  .object({
    requested: z.number().int().nonnegative().describe('The seq the client asked to resume after.'),
    oldestSeq: z.number().int().positive().nullable().describe('The oldest event the daemon still keeps (replayed next), or null when it keeps none.'),
    lastSeq: z.number().int().nonnegative().describe("The daemon's latest seq."),
    reason: z.string().describe('Why the stream cannot resume exactly: events were dropped from the ring, or the daemon restarted.'),
  })
  .strict()
  .describe('The data of `event: reset`: some events after the requested seq are lost; what is kept follows.');

// ---- processes -------------------------------------------------------------------------------

export const processSpecSchema = z
  .object({
    name: z.string().min(1).max(64).describe('Unique among the sandbox\'s processes (like a vault name).'),
    argv: z.array(z.string()).min(1).max(65536).optional().describe('The program and its arguments. Exactly one of argv and shell.'),
    shell: z.string().min(1).optional().describe('A shell string, run as bash -c.'),
    cwd: z.string().max(4096).optional(),
    env: envSchema.optional(),
    timeoutMs: z.number().int().positive().max(86_400_000).optional().describe('Wall-clock limit of one run (default 1 day).'),
    restart: z.enum(['no', 'on-failure']).optional().describe('Restart a run that failed (non-zero exit, signal), with backoff (default no).'),
    maxRestarts: z.number().int().min(0).max(1000).optional().describe('With on-failure: at most this many restarts (default 3).'),
  })
  .strict();

export const processInfoSchema = z
  .object({
    id: z.string(),
    sandbox: z.string(),
    name: z.string(),
    state: z.enum(['running', 'restarting', 'exited', 'failed', 'stopped', 'removed']),
    restart: z.enum(['no', 'on-failure']),
    maxRestarts: z.number().int(),
    restarts: z.number().int(),
    exec: z.string().nullable().describe('The exec of the current (or last) run.'),
    pid: z.number().int().nullable(),
    exitCode: z.number().int().nullable(),
    command: z.object({ argv: z.array(z.string()).nullable(), shell: z.string().nullable(), cwd: z.string().nullable() }).strict(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .strict();
export type ProcessInfoWire = z.infer<typeof processInfoSchema>;
export const processListSchema = z.object({ processes: z.array(processInfoSchema) }).strict();
export type ProcessList = z.infer<typeof processListSchema>;
export const processStopSchema = z.object({ timeoutMs: z.number().int().min(0).max(600_000).optional().describe('How long SIGTERM may take before SIGKILL (default 10000).') }).strict();

/** The named schemas of the OpenAPI document's components, by name. */
// ---- history, diff and audit (the dashboard's timeline and audit pages) --------------------------

const changeSummarySchema = z
  .object({ added: z.number().int(), modified: z.number().int(), deleted: z.number().int(), bytesAdded: z.number().int(), bytesRemoved: z.number().int() })
  .strict()
  .describe('Files and links added, modified and deleted, and the bytes added and removed.');

export const historyEntrySchema = z
  .object({
    id: z.string().describe('The commit id.'),
    parent: z.string().nullable(),
    message: z.string().describe('What made it: for an exec, `exec: <command>`.'),
    origin: z.string().describe('cli, api, exec, restore or import.'),
    actor: z.string(),
    createdAt: z.string().describe('ISO 8601 time.'),
    files: z.number().int().describe('Files and links at this commit.'),
    size: z.number().int().describe('Bytes of all files at this commit.'),
    head: z.boolean().describe("Whether it is the vault's head."),
    checkpoints: z.array(z.string()).describe('Names of the checkpoints pointing at it.'),
    summary: changeSummarySchema.describe('The change from its parent.'),
  })
  .strict();
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

export const historySchema = z
  .object({
    sandbox: z.string(),
    vault: z.string(),
    commits: z.array(historyEntrySchema).describe('Newest first, from the head back.'),
    checkpoints: z.array(checkpointSchema).describe('Every checkpoint of the vault, oldest first (some may point at commits older than the page).'),
    truncated: z.boolean().describe('Whether older commits exist beyond limit.'),
  })
  .strict()
  .describe("A sandbox's workspace timeline.");
export type HistoryWire = z.infer<typeof historySchema>;

export const diffChangeSchema = z
  .object({
    path: z.string(),
    change: z.enum(['added', 'modified', 'deleted']),
    kind: z.enum(['file', 'dir', 'symlink']),
    oldKind: z.enum(['file', 'dir', 'symlink']).optional(),
    oldSize: z.number().int().optional(),
    newSize: z.number().int().optional(),
    oldMode: z.number().int().optional(),
    newMode: z.number().int().optional(),
    oldHash: z.string().optional(),
    newHash: z.string().optional(),
    patch: z.string().optional().describe('A unified diff (3 lines of context) of a text file; absent for binary files, files over 1 MiB, links and files past the patch budget.'),
    binary: z.boolean().optional(),
  })
  .strict();

export const diffSchema = z
  .object({
    from: z.string().describe('The commit id of from.'),
    to: z.string().describe('The commit id of to.'),
    changes: z.array(diffChangeSchema),
    summary: changeSummarySchema,
    truncated: z.boolean().describe('Whether some changes got no patch (over 200 files or 4 MiB of patches): ask for them one by one with path.'),
  })
  .strict()
  .describe('The changes between two versions of a vault.');
export type DiffWire = z.infer<typeof diffSchema>;

export const auditRecordSchema = z
  .object({
    seq: z.number().int(),
    at: z.string().describe('ISO 8601 time.'),
    actor: z.string().describe('owner, key:<id>, or the CLI user.'),
    vault: z.string().nullable(),
    op: z.string().describe('exec, exec.commit, checkpoint.save, approval.approve, key.create, ...'),
    target: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    result: z.string().describe('ok, or error:CODE.'),
    hash: z.string().describe("sha256 over the record and the previous record's hash."),
  })
  .strict();
export type AuditRecordWire = z.infer<typeof auditRecordSchema>;

export const auditListSchema = z.object({ records: z.array(auditRecordSchema).describe('Oldest first: the latest limit records that match.') }).strict();
export type AuditList = z.infer<typeof auditListSchema>;

export const auditVerificationSchema = z
  .object({
    ok: z.boolean(),
    records: z.number().int(),
    headSeq: z.number().int(),
    problems: z.array(z.object({ seq: z.number().int(), problem: z.enum(['changed', 'deleted', 'inserted', 'tail-deleted']), message: z.string() }).strict()),
  })
  .strict()
  .describe("The audit chain's verification: every place where the hash chain does not hold.");
export type AuditVerificationWire = z.infer<typeof auditVerificationSchema>;

export const apiSchemas = {
  ErrorEnvelope: errorEnvelopeSchema,
  Ping: pingSchema,
  System: systemSchema,
  BackendHealth: backendHealthSchema,
  Health: healthSchema,
  Capabilities: capabilitiesSchema,
  CapabilitiesList: capabilitiesListSchema,
  SandboxCreate: sandboxCreateSchema,
  SandboxLimits: sandboxLimitsSchema,
  Sandbox: sandboxSchema,
  SandboxList: sandboxListSchema,
  ExecRequest: execRequestSchema,
  ExecResult: execResultSchema,
  ExecRecord: execRecordSchema,
  ExecList: execListSchema,
  ExecKill: execKillSchema,
  ExecWait: execWaitSchema,
  ExecStart: execStartSchema,
  ExecFrame: execFrameSchema,
  ProcessSpec: processSpecSchema,
  ProcessInfo: processInfoSchema,
  ProcessList: processListSchema,
  ProcessStop: processStopSchema,
  FileInfo: fileInfoSchema,
  FileList: fileListSchema,
  FileWriteResult: fileWriteResultSchema,
  FileEdit: fileEditSchema,
  FileEditResult: fileEditResultSchema,
  FileMkdir: fileMkdirSchema,
  FileMkdirResult: fileMkdirResultSchema,
  FileRemoveResult: fileRemoveResultSchema,
  FileMove: fileMoveSchema,
  FileMoveResult: fileMoveResultSchema,
  FileUploadResult: fileUploadResultSchema,
  FileWatchReady: fileWatchReadySchema,
  FileChangeEvent: fileChangeEventSchema,
  Approval: approvalSchema,
  ApprovalList: approvalListSchema,
  ApprovalApprove: approvalApproveSchema,
  ApprovalDeny: approvalDenySchema,
  SandboxExtend: sandboxExtendSchema,
  EmptyBody: emptyBodySchema,
  CheckpointCreate: checkpointCreateSchema,
  Checkpoint: checkpointSchema,
  CheckpointList: checkpointListSchema,
  CheckpointRestore: checkpointRestoreSchema,
  CheckpointRestoreResult: checkpointRestoreResultSchema,
  CorralEvent: corralEventSchema,
  EventReset: eventResetSchema,
  History: historySchema,
  Diff: diffSchema,
  AuditRecord: auditRecordSchema,
  AuditList: auditListSchema,
  AuditVerification: auditVerificationSchema,
} as const;
export type ApiSchemaName = keyof typeof apiSchemas;
