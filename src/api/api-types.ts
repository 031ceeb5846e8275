// Types every API module shares: the hono environment (per-request variables) and the logger shape.
import type { KeyScope } from '../protocol/key-scopes.ts';
import type { Capabilities } from '../runtime/backend.ts';

/** The part of pino's Logger the API uses; pino's Logger satisfies it, tests can pass a stub. */
export interface ApiLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What the system routes need of the exec layer: `corral.exec.backends` (a BackendRegistry) fits. */
export interface BackendsView {
  probeAll(): Promise<Capabilities[]>;
  select(name: Capabilities['backend']): Promise<{ backend: { health(): Promise<{ ok: boolean; warnings: string[] }> } }>;
}

/**
 * Who sent a request (set by auth-middleware.ts): the machine's owner (the Unix socket, or any
 * request when the app has no key service), an API key, or nobody (TCP without a key, on the few
 * routes that need none).
 */
export type Principal = { kind: 'owner' } | { kind: 'key'; keyId: string; tenant: string; scopes: KeyScope[] } | { kind: 'anonymous' };

export interface ApiVariables {
  /** The request's id: the client's x-request-id when well-formed, else a new `req_…`. */
  requestId: string;
  principal: Principal;
}

/** How a request reached the daemon: the Unix socket (mode 0600: its owner) or TCP (API keys). */
export type Transport = 'unix' | 'tcp';

/** The env bindings the daemon's listeners pass to `app.fetch` (besides @hono/node-server's own). */
export interface ApiBindings {
  /** Absent (a caller that passes no env) counts as TCP when the app checks keys: fail closed. */
  transport?: Transport;
}

export interface ApiEnv {
  Bindings: ApiBindings;
  Variables: ApiVariables;
}
