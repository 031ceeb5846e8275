// The daemon's HTTP API as a hono app: middleware, error handling, routes and the OpenAPI document.
// Everything comes in through `deps`, so tests build as many apps as they like, side by side.
import { Hono } from 'hono';
import { installErrorHandling } from './api-errors.ts';
import { authMiddleware, type AuthDeps } from './auth-middleware.ts';
import { accessLogMiddleware, bodyLimitMiddleware, DEFAULT_BODY_LIMIT, MCP_BODY_LIMIT, requestIdMiddleware } from './api-middleware.ts';
import type { ApiEnv, ApiLogger, BackendsView } from './api-types.ts';
import { RouteDocs, registerOpenApiRoute } from './openapi.ts';
import { registerSystemRoutes } from './system-routes.ts';
import { registerLifecycleRoutes, registerSandboxRoutes, type LifecycleView, type SandboxesView } from './sandbox-routes.ts';
import { registerEventRoutes, type EventRouteOptions, type EventsView } from './event-routes.ts';
import { registerExecRoutes, type ExecsView } from './exec-routes.ts';
import { registerProcessRoutes, type ProcessesView } from './process-routes.ts';
import type { ExecSessions } from '../services/exec-sessions.ts';
import { isRawBodyRoute, registerFileRoutes, type FileRouteOptions, type SandboxFilesView } from './file-routes.ts';
import { registerApprovalRoutes, type ApprovalsView } from './approval-routes.ts';
import { registerMetricsRoute, type CorralMetrics } from './metrics.ts';
import { registerMcpRoute } from './mcp-route.ts';
import { registerUiRoutes } from './ui-routes.ts';
import { registerHistoryRoutes } from './history-routes.ts';

export interface ApiDeps {
  /** The opened Corral (or any object with the same `exec.backends`; the sandbox and exec routes are served when it has `sandboxes` and `execs`). */
  corral: { exec: { backends: BackendsView }; sandboxes?: SandboxesView; execs?: ExecsView & Pick<ExecSessions, 'destroySandbox' | 'output'>; processes?: ProcessesView; sandboxFiles?: SandboxFilesView; approvals?: ApprovalsView; lifecycle?: LifecycleView; events?: EventsView['events'] };
  logger: ApiLogger;
  /** The Corral version the daemon reports. */
  version: string;
  /** The largest request body accepted, in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** When the daemon started (default: now). */
  startedAt?: number;
  /** API keys for TCP (`{ keys: corral.keys }`); absent: every request is the machine's owner. */
  auth?: AuthDeps;
  /** Limits of the file routes (their uploads are not under bodyLimit). */
  files?: Omit<FileRouteOptions, 'logger'>;
  /** Event stream options (keepalive interval, backlog bound). */
  events?: EventRouteOptions;
  /** The daemon's metrics: GET /metrics, HTTP request counts, and `streamBytes` for the streaming routes. */
  metrics?: CorralMetrics;
}

export type ApiApp = Hono<ApiEnv>;

export function createApi(deps: ApiDeps): ApiApp {
  const app = new Hono<ApiEnv>();
  const docs = new RouteDocs();
  app.use('*', requestIdMiddleware());
  app.use('*', accessLogMiddleware(deps.logger));
  if (deps.metrics) app.use('*', deps.metrics.middleware());
  // The dashboard's static files are public: served before the auth middleware.
  registerUiRoutes(app);
  // Before the body limit: an unauthenticated request is answered before any of its body is read.
  app.use('*', authMiddleware(deps.auth));
  const bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  // File uploads stream under their own limits; MCP's write_file carries a whole file in its JSON.
  app.use('*', bodyLimitMiddleware((method, path) => (isRawBodyRoute(method, path) ? null : path === '/mcp' ? Math.max(bodyLimit, MCP_BODY_LIMIT) : bodyLimit)));
  installErrorHandling(app, deps.logger);

  registerSystemRoutes(app, docs, { backends: deps.corral.exec.backends, version: deps.version, startedAt: deps.startedAt ?? Date.now() });
  if (deps.corral.sandboxes && deps.corral.execs) {
    registerSandboxRoutes(app, docs, deps.corral.sandboxes, deps.corral.execs, deps.corral.lifecycle);
    registerExecRoutes(app, docs, deps.corral.execs, deps.metrics ? (stream, n) => deps.metrics!.streamBytes(stream, n) : undefined);
    if (deps.corral.processes) registerProcessRoutes(app, docs, deps.corral.processes, deps.corral.execs);
    if (deps.corral.lifecycle) registerLifecycleRoutes(app, docs, deps.corral.lifecycle);
    if (deps.corral.events) registerEventRoutes(app, docs, { events: deps.corral.events, sandboxes: deps.corral.sandboxes }, deps.events ?? {});
  }
  if (deps.corral.sandboxFiles) registerFileRoutes(app, docs, deps.corral.sandboxFiles, { ...deps.files, logger: deps.logger });
  if (deps.corral.approvals) registerApprovalRoutes(app, docs, deps.corral.approvals);
  registerHistoryRoutes(app, docs, deps.corral);
  if (deps.metrics) registerMetricsRoute(app, docs, deps.metrics);
  registerMcpRoute(app, docs, deps.corral, deps.version);
  registerOpenApiRoute(app, docs, deps.version);
  return app;
}
