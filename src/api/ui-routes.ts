// The web dashboard's static files at /ui/ (built by scripts/setup.sh into dist-web/). Only files
// found by walking the build directory are served, so no part of a request path ever reaches the
// file system. The files are public (no secret is in them): the page calls the API with its key.
// Hashed assets are cached for good; index.html is revalidated, so a rebuild shows at once.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Hono } from 'hono';
import type { ApiEnv } from './api-types.ts';

export const DEFAULT_UI_DIR = fileURLToPath(new URL('../../dist-web', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.json', '.svg', '.txt', '.map']);
// Inline styles: xterm.js and Preact set style attributes. Scripts only from the daemon itself.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const RESCAN_MS = 2000;

interface UiFile {
  path: string;
  type: string;
  body?: Uint8Array;
  gzip?: Uint8Array;
}

export interface UiRouteOptions {
  /** The built dashboard (default: dist-web/ of this checkout). */
  dir?: string;
}

function walk(dir: string, prefix: string, out: Map<string, UiFile>): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) walk(full, `${prefix}${e.name}/`, out);
    else if (e.isFile()) out.set(`${prefix}${e.name}`, { path: full, type: TYPES[extname(e.name)] ?? 'application/octet-stream' });
  }
}

/**
 * Serves GET/HEAD /ui/* from the build; register it before the auth middleware (the files are
 * public). Not in the OpenAPI document: these are the dashboard's files, not the API.
 */
export function registerUiRoutes(app: Hono<ApiEnv>, options: UiRouteOptions = {}): void {
  const dir = options.dir ?? DEFAULT_UI_DIR;
  let files = new Map<string, UiFile>();
  let scannedAt = -Infinity;
  const find = (name: string): UiFile | undefined => {
    const hit = files.get(name);
    if (hit || Date.now() - scannedAt < RESCAN_MS) return hit;
    const next = new Map<string, UiFile>();
    try {
      if (statSync(dir).isDirectory()) walk(dir, '', next);
    } catch {
      // Not built: every path answers 503 below.
    }
    files = next;
    scannedAt = Date.now();
    return files.get(name);
  };

  app.get('/ui', (c) => c.redirect('/ui/', 308));
  app.get('/ui/*', (c) => {
    const rest = c.req.path.slice('/ui/'.length);
    const name = rest === '' ? 'index.html' : rest;
    const file = find(name);
    const common = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'content-security-policy': CSP };
    if (!file) {
      if (!files.has('index.html'))
        return c.text('the dashboard is not built: run scripts/setup.sh (or npm run build:web) in the Corral checkout\n', 503, { ...common, 'cache-control': 'no-store' });
      return c.text('not found\n', 404, { ...common, 'cache-control': 'no-store' });
    }
    try {
      file.body ??= readFileSync(file.path);
    } catch {
      files.delete(name);
      return c.text('not found\n', 404, { ...common, 'cache-control': 'no-store' });
    }
    const ext = extname(name);
    const immutable = name.startsWith('assets/');
    const headers: Record<string, string> = { ...common, 'content-type': file.type, 'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache', vary: 'accept-encoding' };
    let body = file.body;
    if (COMPRESSIBLE.has(ext) && /\bgzip\b/.test(c.req.header('accept-encoding') ?? '') && file.body.length > 512) {
      file.gzip ??= gzipSync(file.body, { level: 9 });
      body = file.gzip;
      headers['content-encoding'] = 'gzip';
    }
    headers['content-length'] = String(body.length);
    if (c.req.method === 'HEAD') return c.body(null, 200, headers);
    return c.body(body as Uint8Array<ArrayBuffer>, 200, headers);
  });
}
