// The OpenAPI 3.1 document, generated from the same zod schemas that validate requests: each route
// registers its description next to its handler, and the components are the named schemas of
// src/protocol/api-schemas.ts converted by z.toJSONSchema (JSON Schema 2020-12, OpenAPI 3.1's dialect).
import type { Hono } from 'hono';
import { z } from 'zod';
import { API_VERSION, apiSchemas, type ApiSchemaName } from '../protocol/api-schemas.ts';
import type { ApiEnv } from './api-types.ts';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteDoc {
  method: Method;
  /** hono style (`/v1/sandboxes/:id`); written as `{id}` in the document. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** The request body's schema (JSON), by component name. */
  body?: ApiSchemaName;
  /** A request body that is not JSON (raw bytes), by media type. */
  rawBody?: { contentType: string; description: string };
  /** Query parameters (strings unless `type` says otherwise). */
  query?: { name: string; description: string; required?: boolean; type?: 'string' | 'integer' | 'boolean' }[];
  /** Success responses: status → description and schema name (JSON), or `contentType` for a body that is not JSON. Errors are added for every route. */
  responses: Record<number, { description: string; schema?: ApiSchemaName; contentType?: string }>;
  /** Error statuses worth naming besides the default (e.g. 404 for a route with an id). */
  errors?: number[];
}

/** The routes an app serves, collected as they are registered (one per app: no module state). */
export class RouteDocs {
  readonly routes: RouteDoc[] = [];

  add(doc: RouteDoc): void {
    this.routes.push(doc);
  }
}

const PARAM = /:([A-Za-z_][A-Za-z0-9_]*)/g;

/** Builds the OpenAPI 3.1 document for `docs`. */
export function buildOpenApi(docs: RouteDocs, version: string): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const [name, schema] of Object.entries(apiSchemas)) registry.add(schema, { id: name });
  const generated = z.toJSONSchema(registry, { target: 'draft-2020-12', io: 'output', uri: (id) => `#/components/schemas/${id}` }) as { schemas: Record<string, Record<string, unknown>> };
  const schemas: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(generated.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = schema;
    schemas[name] = rest;
  }

  const ref = (name: ApiSchemaName) => ({ $ref: `#/components/schemas/${name}` });
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: ref('ErrorEnvelope') } } });
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of docs.routes) {
    const path = r.path.replace(PARAM, '{$1}');
    const params: Record<string, unknown>[] = [...r.path.matchAll(PARAM)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    for (const q of r.query ?? []) params.push({ name: q.name, in: 'query', required: q.required ?? false, description: q.description, schema: { type: q.type ?? 'string' } });
    const responses: Record<string, unknown> = {};
    for (const [status, res] of Object.entries(r.responses)) {
      responses[status] = res.schema
        ? { description: res.description, content: { 'application/json': { schema: ref(res.schema) } } }
        : res.contentType
          ? { description: res.description, content: { [res.contentType]: {} } }
          : { description: res.description };
    }
    for (const status of r.errors ?? []) responses[String(status)] ??= errorResponse(`Error (${status}).`);
    if (r.body) responses['400'] ??= errorResponse('The body is not JSON, does not match the schema, or has unknown fields.');
    if (r.body || r.rawBody) responses['413'] ??= errorResponse('The body is over the size limit.');
    responses['default'] = errorResponse('An error: the envelope carries the code, message, details and request id.');
    paths[path] ??= {};
    paths[path][r.method] = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      tags: r.tags,
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: ref(r.body) } } } } : {}),
      ...(r.rawBody ? { requestBody: { required: true, description: r.rawBody.description, content: { [r.rawBody.contentType]: {} } } } : {}),
      responses,
    };
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'Corral daemon API',
      version,
      description: `Corral's HTTP API (major version ${API_VERSION}, under /v${API_VERSION}). Every response carries x-request-id; every error is {"error":{"code","message","details","requestId"}}.`,
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: { schemas },
  };
}

/** Serves the document at GET /openapi.json (built once per app, on first request). */
export function registerOpenApiRoute(app: Hono<ApiEnv>, docs: RouteDocs, version: string): void {
  let document: Record<string, unknown> | undefined;
  app.get('/openapi.json', (c) => {
    document ??= buildOpenApi(docs, version);
    return c.json(document);
  });
}
