// The daemon API's wire shapes as zod schemas: the one source for request validation, response types,
// the OpenAPI document and (later) the SDK. Browser-safe: no `node:*` imports, only web-standard globals.
import { z } from 'zod';
import { errorCodes, type ErrorCode } from './errors.ts';

export const API_VERSION = 1;

// ---- ids -------------------------------------------------------------------------------------

/** The prefix of every API object's id: sandbox, exec, process, approval, and request. */
export const idPrefixes = ['sbx', 'exec', 'proc', 'apr', 'req'] as const;
export type IdPrefix = (typeof idPrefixes)[number];

// Crockford base32 in lower case (no i, l, o, u): unambiguous when read aloud or copied by hand.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const ID_BODY = /^[0-9a-hjkmnp-tv-z]{26}$/;

/**
 * A new id such as `sbx_01jz3k…`: 26 characters after the prefix, 48 bits of milliseconds (so ids
 * sort by creation time) then 80 random bits from the platform's CSPRNG (unguessable).
 */
export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  const random = crypto.getRandomValues(new Uint8Array(10));
  let out = '';
  let t = Math.max(0, Math.floor(now));
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  // 80 bits = 16 base32 digits, 5 bits each.
  let bits = 0;
  let acc = 0;
  for (const byte of random) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  return `${prefix}_${out}`;
}

/** Whether `value` is a well-formed id with this prefix (says nothing about whether the object exists). */
export function isId(prefix: IdPrefix, value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(`${prefix}_`) && ID_BODY.test(value.slice(prefix.length + 1));
}

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

/** The named schemas of the OpenAPI document's components, by name. */
export const apiSchemas = {
  ErrorEnvelope: errorEnvelopeSchema,
  Ping: pingSchema,
  System: systemSchema,
  BackendHealth: backendHealthSchema,
  Health: healthSchema,
  Capabilities: capabilitiesSchema,
  CapabilitiesList: capabilitiesListSchema,
} as const;
export type ApiSchemaName = keyof typeof apiSchemas;
