// The daemon's HTTP API as a hono app: middleware, error handling, routes and the OpenAPI document.
// Everything comes in through `deps`, so tests build as many apps as they like, side by side.
import { Hono } from 'hono';
import { installErrorHandling } from './api-errors.ts';
import { accessLogMiddleware, bodyLimitMiddleware, DEFAULT_BODY_LIMIT, requestIdMiddleware } from './api-middleware.ts';
import type { ApiEnv, ApiLogger, BackendsView } from './api-types.ts';
import { RouteDocs, registerOpenApiRoute } from './openapi.ts';
import { registerSystemRoutes } from './system-routes.ts';
import { registerSandboxRoutes, type SandboxesView } from './sandbox-routes.ts';
import { registerExecRoutes, type ExecsView } from './exec-routes.ts';

export interface ApiDeps {
  /** The opened Corral (or any object with the same `exec.backends`; the sandbox and exec routes are served when it has `sandboxes`). */
  corral: { exec: { backends: BackendsView }; sandboxes?: SandboxesView & ExecsView };
  logger: ApiLogger;
  /** The Corral version the daemon reports. */
  version: string;
  /** The largest request body accepted, in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** When the daemon started (default: now). */
  startedAt?: number;
}

export type ApiApp = Hono<ApiEnv>;

export function createApi(deps: ApiDeps): ApiApp {
  const app = new Hono<ApiEnv>();
  const docs = new RouteDocs();
  app.use('*', requestIdMiddleware());
  app.use('*', accessLogMiddleware(deps.logger));
  app.use('*', bodyLimitMiddleware(deps.bodyLimit ?? DEFAULT_BODY_LIMIT));
  installErrorHandling(app, deps.logger);

  registerSystemRoutes(app, docs, { backends: deps.corral.exec.backends, version: deps.version, startedAt: deps.startedAt ?? Date.now() });
  if (deps.corral.sandboxes) {
    registerSandboxRoutes(app, docs, deps.corral.sandboxes);
    registerExecRoutes(app, docs, deps.corral.sandboxes);
  }
  registerOpenApiRoute(app, docs, deps.version);
  return app;
}
