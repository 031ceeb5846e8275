// Read-only routes about the daemon and its machine: ping, system, health, capabilities.
import { readFileSync } from 'node:fs';
import { arch, cpus, freemem, hostname, loadavg, platform, release, totalmem, type, uptime } from 'node:os';
import type { Hono } from 'hono';
import { API_VERSION, type BackendCapabilities, type CapabilitiesList, type Health, type Ping, type SystemInfo } from '../protocol/api-schemas.ts';
import type { Capabilities } from '../runtime/backend.ts';
import type { ApiEnv, BackendsView } from './api-types.ts';
import type { RouteDocs } from './openapi.ts';

export interface SystemRouteDeps {
  backends: BackendsView;
  version: string;
  /** When the daemon started (ms since the epoch), for its uptime. */
  startedAt: number;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The distribution's PRETTY_NAME from os-release, when there is one. */
export function osReleaseName(text: string | null): string | null {
  const m = text?.match(/^PRETTY_NAME=(.*)$/m);
  if (!m) return null;
  return m[1]!.trim().replace(/^(["'])(.*)\1$/, '$2') || null;
}

/** MemAvailable from /proc/meminfo in bytes (free + reclaimable), when the kernel reports it. */
export function memAvailable(text: string | null): number | null {
  const m = text?.match(/^MemAvailable:\s+(\d+)\s+kB$/m);
  return m ? Number(m[1]) * 1024 : null;
}

export function systemInfo(startedAt: number, now = Date.now()): SystemInfo {
  const cpuList = cpus();
  const [l1 = 0, l5 = 0, l15 = 0] = loadavg();
  return {
    kernel: release(),
    os: { platform: platform(), type: type(), name: osReleaseName(readText('/etc/os-release')) },
    arch: arch(),
    hostname: hostname(),
    memory: { totalBytes: totalmem(), availableBytes: memAvailable(readText('/proc/meminfo')) ?? freemem() },
    cpus: { count: cpuList.length, model: cpuList[0]?.model.trim() || null },
    loadAverage: [l1, l5, l15],
    uptimeSeconds: uptime(),
    daemon: { pid: process.pid, uptimeSeconds: Math.max(0, (now - startedAt) / 1000), node: process.version },
  };
}

/** Each backend's health: an unavailable one is not ok, with its probe's reason as the warning. */
export async function backendHealth(backends: BackendsView): Promise<Health> {
  const probes = await backends.probeAll();
  const list = await Promise.all(
    probes.map(async (caps) => {
      if (!caps.available) return { name: caps.backend, ok: false, warnings: [caps.reason ?? 'unavailable: run `corral doctor`'] };
      const { backend } = await backends.select(caps.backend);
      const h = await backend.health();
      return { name: caps.backend, ok: h.ok, warnings: h.warnings };
    }),
  );
  return { ok: list.some((b) => b.ok), backends: list };
}

// The runtime's Capabilities must fit the wire schema: the compiler checks it here.
const toWire = (caps: Capabilities): BackendCapabilities => caps;

export function registerSystemRoutes(app: Hono<ApiEnv>, docs: RouteDocs, deps: SystemRouteDeps): void {
  app.get('/v1/ping', (c) => c.json({ ok: true, version: deps.version, apiVersion: API_VERSION } satisfies Ping));
  docs.add({ method: 'get', path: '/v1/ping', operationId: 'ping', tags: ['system'], summary: 'Whether the daemon answers, and its version', responses: { 200: { description: 'The daemon is up.', schema: 'Ping' } } });

  app.get('/v1/system', (c) => c.json(systemInfo(deps.startedAt)));
  docs.add({
    method: 'get',
    path: '/v1/system',
    operationId: 'getSystem',
    tags: ['system'],
    summary: 'The machine the daemon runs on: kernel, OS, arch, hostname, memory, CPUs, load, uptime',
    responses: { 200: { description: 'The machine facts, read now.', schema: 'System' } },
  });

  app.get('/v1/health', async (c) => {
    const health = await backendHealth(deps.backends);
    return c.json(health, health.ok ? 200 : 503);
  });
  docs.add({
    method: 'get',
    path: '/v1/health',
    operationId: 'getHealth',
    tags: ['system'],
    summary: 'Each backend\'s health and warnings',
    responses: { 200: { description: 'At least one backend can run commands.', schema: 'Health' }, 503: { description: 'No backend can run commands.', schema: 'Health' } },
  });

  app.get('/v1/capabilities', async (c) => c.json({ backends: (await deps.backends.probeAll()).map(toWire) } satisfies CapabilitiesList));
  docs.add({
    method: 'get',
    path: '/v1/capabilities',
    operationId: 'getCapabilities',
    tags: ['system'],
    summary: 'Each backend\'s probe: isolation, enforceable limits, change detection',
    responses: { 200: { description: 'The probes (cached by the backends).', schema: 'CapabilitiesList' } },
  });
}
