// Who is calling. The Unix socket (mode 0600) only lets its owner connect, so a request over it is
// the machine's owner; over TCP a request needs `Authorization: Bearer <secret>` of a live API key,
// except the few routes a client uses before it has one. Routes then ask requireScope() for the
// scope they need and scopeOf() for the tenant whose objects the caller may see.
import type { Context, MiddlewareHandler } from 'hono';
import { CorralError, isCorralError } from '../protocol/errors.ts';
import { hasScope, type KeyScope } from '../protocol/key-scopes.ts';
import { unauthenticated, type KeyService } from '../services/key-service.ts';
import type { Scope } from '../services/sandbox-service.ts';
import { errorResponse } from './api-errors.ts';
import type { ApiEnv, Principal } from './api-types.ts';

export interface AuthDeps {
  keys: Pick<KeyService, 'verify'>;
}

/** Routes that answer without a key (method and exact path): liveness and the API's description. */
export const PUBLIC_ROUTES: readonly string[] = ['GET /v1/ping', 'HEAD /v1/ping', 'GET /openapi.json', 'HEAD /openapi.json'];

const OWNER: Principal = { kind: 'owner' };
const ANONYMOUS: Principal = { kind: 'anonymous' };
// RFC 6750: the scheme is case-insensitive; the token is one run of token68 characters.
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

/** 401 with the challenge RFC 6750 asks for; `invalid` when a credential was sent and refused. */
function challenge(c: Context<ApiEnv>, err: CorralError, invalid: boolean): Response {
  return errorResponse(c, err, { 'www-authenticate': `Bearer realm="corral"${invalid ? ', error="invalid_token"' : ''}` });
}

/**
 * Sets `principal` for every request. Without `auth` (an app with no key service) every request
 * is the owner; with it, the owner is whoever comes over the Unix socket, and TCP (or a caller that
 * names no transport: fail closed) needs a valid key, whose Authorization header is checked before
 * any body is read or any route is matched.
 */
export function authMiddleware(auth: AuthDeps | undefined): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    if (!auth || c.env?.transport === 'unix') {
      c.set('principal', OWNER);
      return next();
    }
    const header = c.req.header('authorization');
    if (header === undefined) {
      if (!PUBLIC_ROUTES.includes(`${c.req.method} ${c.req.path}`)) return challenge(c, unauthenticated(), false);
      c.set('principal', ANONYMOUS);
      return next();
    }
    // A key sent to a public route is checked too, so a client can test its key with a ping.
    const token = BEARER.exec(header)?.[1];
    try {
      if (token === undefined) throw unauthenticated();
      const key = auth.keys.verify(token);
      c.set('principal', { kind: 'key', keyId: key.keyId, tenant: key.tenant, scopes: key.scopes });
    } catch (e) {
      if (isCorralError(e, 'UNAUTHENTICATED')) return challenge(c, e, true);
      throw e;
    }
    return next();
  };
}

/** Who is calling (anonymous when the auth middleware did not run). */
export function principalOf(c: Context<ApiEnv>): Principal {
  // Unset only when the middleware did not run: nobody, then.
  return (c.get('principal') as Principal | undefined) ?? ANONYMOUS;
}

/** Throws PERMISSION_DENIED (naming the scope) unless the caller is the owner or a key with `scope` (or admin). */
export function requireScope(c: Context<ApiEnv>, scope: KeyScope): void {
  const p = principalOf(c);
  if (p.kind === 'owner') return;
  if (p.kind === 'anonymous') throw unauthenticated();
  if (!hasScope(p.scopes, scope))
    throw new CorralError('PERMISSION_DENIED', `this API key lacks the scope ${scope}, which this route needs: use a key created with --scope ${scope} (or admin)`, { scope, granted: p.scopes });
}

/** Whose objects the caller may see: everything for the owner, else the key's tenant. */
export function scopeOf(c: Context<ApiEnv>): Scope {
  const p = principalOf(c);
  if (p.kind === 'owner') return { tenant: null };
  if (p.kind === 'key') return { tenant: p.tenant };
  throw unauthenticated();
}

/** Who to name in audit records and logs: `owner` or `key:<id>` (never a secret). */
export function actorOf(c: Context<ApiEnv>): string {
  const p = principalOf(c);
  return p.kind === 'key' ? `key:${p.keyId}` : p.kind;
}
