// Bounds of a sandbox spec, shared by the API's zod schemas and the sandbox service's own checks.
// No zod here: the service (loaded by every CLI call) must not pay for the schemas.

/** The policy presets a request may name (policy files are host paths: never taken from a request). */
export const policyPresetNames = ['permissive', 'workstation', 'strict', 'paranoid', 'read-only', 'workspace-write', 'full-access'] as const;

/** Bounds on a sandbox spec, shared by the schemas and the service's own checks. */
export const sandboxBounds = {
  minTtlSeconds: 1,
  maxTtlSeconds: 7 * 24 * 3600,
  maxEnvVars: 128,
  maxEnvNameLength: 256,
  maxEnvValueLength: 32 * 1024,
  maxLabels: 64,
  maxLabelKeyLength: 63,
  maxLabelValueLength: 256,
} as const;
