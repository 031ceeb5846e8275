// Types every API module shares: the hono environment (per-request variables) and the logger shape.
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

export interface ApiVariables {
  /** The request's id: the client's x-request-id when well-formed, else a new `req_…`. */
  requestId: string;
}

export interface ApiEnv {
  Variables: ApiVariables;
}
