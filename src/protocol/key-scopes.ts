// API key scopes and tenant names: the rules the key service, the API's auth and the SDK share.
// No zod and no Node here, so the CLI's start-up and a browser bundle can load it.
import { CorralError } from './errors.ts';

/** What an API key may do. `admin` implies every other scope (within the key's tenant). */
export const keyScopes = ['sandboxes:read', 'sandboxes:write', 'exec', 'files', 'approvals', 'admin'] as const;
export type KeyScope = (typeof keyScopes)[number];

/** Whether a key holding `granted` may act where `needed` is required. */
export function hasScope(granted: readonly KeyScope[], needed: KeyScope): boolean {
  return granted.includes('admin') || granted.includes(needed);
}

/** Checks a list of scopes: at least one, each known; returns them once each, in the canonical order. */
export function validateKeyScopes(scopes: unknown): KeyScope[] {
  if (!Array.isArray(scopes) || scopes.length === 0)
    throw new CorralError('INVALID_ARGUMENT', `give at least one scope: ${keyScopes.join(', ')}`, { allowed: [...keyScopes] });
  for (const s of scopes) {
    if (typeof s !== 'string' || !(keyScopes as readonly string[]).includes(s)) {
      const shown = String(s).slice(0, 40);
      throw new CorralError('INVALID_ARGUMENT', `unknown scope '${shown}': use ${keyScopes.join(', ')}`, { scope: shown, allowed: [...keyScopes] });
    }
  }
  return keyScopes.filter((k) => scopes.includes(k));
}

// Lower case only: tenant names end up in ids of logs and metrics, where case must not matter.
const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function validateTenantName(name: unknown): string {
  if (typeof name !== 'string' || !TENANT_NAME.test(name)) {
    const shown = typeof name === 'string' ? name.slice(0, 80) : String(name);
    throw new CorralError('INVALID_NAME', `invalid tenant name ${JSON.stringify(shown)}: use 1-64 of a-z 0-9 _ -, starting with a letter or digit`, { tenant: shown });
  }
  return name;
}
