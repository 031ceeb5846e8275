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
    background: z.boolean().optional().describe('Not yet supported: true is refused (400).'),
  })
  .strict()
  .describe('A command to run in the sandbox, collected: one request, one result envelope.');
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

export const execRecordSchema = z
  .object({
    id: z.string().describe('The exec\'s id (the envelope\'s).'),
    sandbox: z.string().describe('The sbx_ id it ran in.'),
    state: z.enum(['completed', 'pending', 'denied', 'failed']).describe('The envelope\'s status.'),
    result: execResultSchema,
  })
  .strict();
export type ExecRecord = z.infer<typeof execRecordSchema>;

/** The named schemas of the OpenAPI document's components, by name. */
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
} as const;
export type ApiSchemaName = keyof typeof apiSchemas;
