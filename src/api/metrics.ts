// The daemon's metrics in the Prometheus text exposition format 0.0.4 (GET /metrics): a tiny
// registry of counters, gauges and fixed-bucket histograms, and the Corral metrics fed from the
// event bus (execs, policy decisions), the HTTP middleware, the streaming routes and the database.
import { readdirSync } from 'node:fs';
import type { Hono, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { CorralEvent } from '../services/event-bus.ts';
import type { ApiEnv } from './api-types.ts';
import { requireScope } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';

export type Labels = Record<string, string>;

/** The content type of the text exposition format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

// A series per label set; past this many, new label sets are dropped (counted), so hostile or
// buggy label values cannot grow the daemon's memory without bound.
const MAX_SERIES = 2000;
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value as the format writes it: integers plainly, +Inf, -Inf and NaN by name. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  /** Label sets refused because the metric had MAX_SERIES already. */
  dropped = 0;

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const l of labelNames) if (!LABEL.test(l) || l === 'le' || l.startsWith('__')) throw new Error(`invalid label name ${l}`);
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** The label values of `labels` in the declared order; a missing label is ''. */
  protected key(labels: Labels | undefined): string[] {
    return this.labelNames.map((n) => String(labels?.[n] ?? ''));
  }

  protected header(): string {
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
  }

  abstract render(): string;
}

/** A series map keyed by the label values, bounded by MAX_SERIES. */
class SeriesMap<T> {
  readonly map = new Map<string, { values: string[]; value: T }>();

  get(values: string[], make: () => T): T | undefined {
    const k = JSON.stringify(values);
    let s = this.map.get(k);
    if (!s) {
      if (this.map.size >= MAX_SERIES) return undefined;
      s = { values, value: make() };
      this.map.set(k, s);
    }
    return s.value;
  }
}

export class Counter extends Metric {
  readonly type = 'counter';
  private readonly series = new SeriesMap<{ n: number }>();

  /** Adds `n` (≥ 0) to the series of `labels`. */
  inc(labels?: Labels, n = 1): void {
    if (!(n >= 0) || !Number.isFinite(n)) return;
    const s = this.series.get(this.key(labels), () => ({ n: 0 }));
    if (s) s.n += n;
    else this.dropped++;
  }

  /** Makes the series of `labels` exist at 0 (so a rate over it starts from a known point). */
  init(labels?: Labels): void {
    this.inc(labels, 0);
  }

  /** The current value of a series (0 when it does not exist). */
  value(labels?: Labels): number {
    return this.series.map.get(JSON.stringify(this.key(labels)))?.value.n ?? 0;
  }

  render(): string {
    let out = this.header();
    if (this.labelNames.length === 0 && this.series.map.size === 0) out += `${this.name} 0\n`;
    for (const s of this.series.map.values()) out += `${this.name}${labelText(this.labelNames, s.values)} ${formatValue(s.value.n)}\n`;
    return out;
  }
}

export class Gauge extends Metric {
  readonly type = 'gauge';
  private readonly series = new SeriesMap<{ v: number }>();
  private readonly collect: (() => Array<[Labels, number]>) | undefined;

  /** With `collect`, the samples are read from it at every scrape (and set() is not used). */
  constructor(name: string, help: string, labelNames: readonly string[], collect?: () => Array<[Labels, number]>) {
    super(name, help, labelNames);
    this.collect = collect;
  }

  set(labels: Labels | undefined, v: number): void {
    const s = this.series.get(this.key(labels), () => ({ v: 0 }));
    if (s) s.v = v;
    else this.dropped++;
  }

  render(): string {
    let out = this.header();
    if (this.collect) {
      // A failing source (a busy database) leaves the metric without samples for this scrape.
      let samples: Array<[Labels, number]> = [];
      try {
        samples = this.collect();
      } catch {
        samples = [];
      }
      for (const [labels, v] of samples.slice(0, MAX_SERIES)) out += `${this.name}${labelText(this.labelNames, this.key(labels))} ${formatValue(v)}\n`;
      return out;
    }
    if (this.labelNames.length === 0 && this.series.map.size === 0) out += `${this.name} 0\n`;
    for (const s of this.series.map.values()) out += `${this.name}${labelText(this.labelNames, s.values)} ${formatValue(s.value.v)}\n`;
    return out;
  }
}

export class Histogram extends Metric {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  private readonly series = new SeriesMap<{ counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    const sorted = [...buckets].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
    if (sorted.length === 0 || new Set(sorted).size !== sorted.length) throw new Error(`histogram ${name} needs distinct finite buckets`);
    this.buckets = sorted;
  }

  observe(v: number, labels?: Labels): void {
    if (!Number.isFinite(v)) return;
    const s = this.series.get(this.key(labels), () => ({ counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    if (!s) {
      this.dropped++;
      return;
    }
    // Counts per bucket (not cumulative) here; render() accumulates.
    const i = this.buckets.findIndex((b) => v <= b);
    if (i >= 0) s.counts[i]!++;
    s.sum += v;
    s.count++;
  }

  render(): string {
    let out = this.header();
    const all = [...this.series.map.values()];
    if (this.labelNames.length === 0 && all.length === 0) all.push({ values: [], value: { counts: this.buckets.map(() => 0), sum: 0, count: 0 } });
    for (const s of all) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += s.value.counts[i]!;
        out += `${this.name}_bucket${labelText(this.labelNames, s.values, ['le', formatValue(b)])} ${cumulative}\n`;
      });
      out += `${this.name}_bucket${labelText(this.labelNames, s.values, ['le', '+Inf'])} ${s.value.count}\n`;
      out += `${this.name}_sum${labelText(this.labelNames, s.values)} ${formatValue(s.value.sum)}\n`;
      out += `${this.name}_count${labelText(this.labelNames, s.values)} ${s.value.count}\n`;
    }
    return out;
  }
}

/** A set of metrics rendered together; names are unique. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  private add<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name} is registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: () => Array<[Labels, number]>): Gauge {
    return this.add(new Gauge(name, help, labelNames, collect));
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** Every metric in the text exposition format, in registration order. */
  render(): string {
    let out = '';
    for (const m of this.metrics.values()) out += m.render();
    return out;
  }

  /** Label sets dropped over all metrics (see MAX_SERIES). */
  get dropped(): number {
    let n = 0;
    for (const m of this.metrics.values()) n += m.dropped;
    return n;
  }
}

// ---- Corral's metrics --------------------------------------------------------------------------

/** Exec latency buckets in seconds: a /bin/true round trip (ms) up to a long build (5 min). */
export const EXEC_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const SANDBOX_STATES = ['ready', 'paused', 'destroyed'];
const EXEC_STATUSES = ['completed', 'pending', 'denied', 'failed', 'lost'];
const POLICY_ACTIONS = ['allow', 'deny', 'require_approval', 'allow_with_checkpoint'];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
export type StreamName = 'stdout' | 'stderr' | 'stdin' | 'pty';
const STREAMS: readonly StreamName[] = ['stdout', 'stderr', 'stdin', 'pty'];

export interface CorralMetricsDeps {
  /** The event bus (corral.events): exec.started and exec.exited feed the exec metrics. */
  events?: { subscribe(listener: (e: CorralEvent) => void): () => void };
  /** Sandboxes per state, read at every scrape (see sandboxStateCounts). */
  sandboxCounts?: () => Array<{ state: string; count: number }>;
  /** When the daemon started, ms since the epoch (default: now). */
  startedAt?: number;
  now?: () => number;
}

/** A value of a known set, or 'other': events and requests cannot invent label values. */
function known(value: unknown, allowed: readonly string[]): string {
  return typeof value === 'string' && allowed.includes(value) ? value : 'other';
}

/** The metrics the daemon serves at GET /metrics. */
export class CorralMetrics {
  readonly registry = new MetricsRegistry();
  private readonly execsStarted: Counter;
  private readonly execsFinished: Counter;
  private readonly execsFailed: Counter;
  private readonly execDuration: Histogram;
  private readonly decisions: Counter;
  private readonly streamed: Counter;
  private readonly http: Counter;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(deps: CorralMetricsDeps = {}) {
    const now = deps.now ?? Date.now;
    const startedAt = deps.startedAt ?? now();
    const r = this.registry;
    const counts = deps.sandboxCounts;
    r.gauge('corral_sandboxes', 'Sandboxes by state (destroyed ones keep their rows).', ['state'], () => {
      const found = new Map((counts?.() ?? []).map((c) => [c.state, c.count]));
      return [...new Set([...SANDBOX_STATES, ...found.keys()])].map((state) => [{ state }, found.get(state) ?? 0]);
    });
    this.execsStarted = r.counter('corral_execs_started_total', 'Execs started (collected, streamed and background).');
    this.execsFinished = r.counter('corral_execs_finished_total', 'Execs that ended, by status (completed: the command ran, whatever its exit code).', ['status']);
    for (const status of EXEC_STATUSES) this.execsFinished.init({ status });
    this.execsFailed = r.counter('corral_execs_failed_total', 'Execs that could not run or were lost (status failed or lost); a non-zero exit is not a failure.');
    this.execDuration = r.histogram('corral_exec_duration_seconds', 'Wall-clock time of execs that ended, from the request to the result.', EXEC_DURATION_BUCKETS);
    this.decisions = r.counter('corral_policy_decisions_total', 'Policy decisions on execs, by action.', ['action']);
    for (const action of POLICY_ACTIONS) this.decisions.init({ action });
    this.streamed = r.counter('corral_stream_bytes_total', 'Bytes streamed to and from clients, by stream.', ['stream']);
    for (const stream of STREAMS) this.streamed.init({ stream });
    this.http = r.counter('corral_http_requests_total', 'HTTP requests answered, by method, route pattern and status.', ['method', 'route', 'status']);
    r.gauge('process_resident_memory_bytes', 'Resident memory of the daemon in bytes.', [], () => [[{}, process.memoryUsage.rss()]]);
    r.gauge('process_open_fds', 'Open file descriptors of the daemon.', [], () => [[{}, openFds()]]);
    r.gauge('process_start_time_seconds', 'When the daemon started, seconds since the epoch.', [], () => [[{}, Math.floor(startedAt / 1000)]]);
    r.gauge('corral_uptime_seconds', 'Seconds since the daemon started.', [], () => [[{}, Math.max(0, (now() - startedAt) / 1000)]]);
    r.gauge('process_cpu_seconds_total', 'User and system CPU time of the daemon in seconds.', [], () => {
      const u = process.cpuUsage();
      return [[{}, (u.user + u.system) / 1e6]];
    });
    this.unsubscribe = deps.events?.subscribe((e) => this.onEvent(e));
  }

  private onEvent(e: CorralEvent): void {
    if (e.type === 'exec.started') this.execsStarted.inc();
    else if (e.type === 'exec.exited') {
      const status = known(e.data.status, EXEC_STATUSES);
      this.execsFinished.inc({ status });
      if (status === 'failed' || status === 'lost') this.execsFailed.inc();
      const ms = e.data.durationMs;
      if (typeof ms === 'number' && ms >= 0) this.execDuration.observe(ms / 1000);
      if (e.data.decision !== null && e.data.decision !== undefined) this.decisions.inc({ action: known(e.data.decision, POLICY_ACTIONS) });
    }
  }

  /** Counts `n` bytes streamed on `stream` (for the streaming routes). */
  streamBytes(stream: StreamName, n: number): void {
    if (n > 0) this.streamed.inc({ stream: known(stream, STREAMS) }, n);
  }

  /** Counts one answered request; `route` is the matched route's pattern (never the raw path). */
  httpRequest(method: string, route: string, status: number): void {
    this.http.inc({ method: METHODS.has(method) ? method : 'other', route, status: String(status) });
  }

  /** Middleware counting every request by its route pattern (`unmatched` for a 404 or 405 without a route). */
  middleware(): MiddlewareHandler<ApiEnv> {
    return async (c, next) => {
      await next();
      // The last handler that ran: the route's own, or a middleware when none matched.
      const route = matchedRoutes(c)[c.req.routeIndex];
      this.httpRequest(c.req.method, route && route.method !== 'ALL' ? route.path : 'unmatched', c.res.status);
    };
  }

  render(): string {
    return this.registry.render();
  }

  /** Stops listening to the event bus. */
  close(): void {
    this.unsubscribe?.();
  }
}

function openFds(): number {
  try {
    // The directory's own descriptor, open while it is read, is one of them.
    return Math.max(0, readdirSync('/proc/self/fd').length - 1);
  } catch {
    return NaN;
  }
}

/** Sandboxes per state from the database, in one query. */
export function sandboxStateCounts(db: { all<T>(sql: string): T[] }): () => Array<{ state: string; count: number }> {
  return () => db.all<{ state: string; count: number }>('SELECT state, count(*) AS count FROM sandboxes GROUP BY state');
}

/** Serves GET /metrics: the owner, or a key with the admin scope. */
export function registerMetricsRoute(app: Hono<ApiEnv>, docs: RouteDocs, metrics: CorralMetrics): void {
  app.get('/metrics', (c) => {
    requireScope(c, 'admin');
    return c.body(metrics.render(), 200, { 'content-type': METRICS_CONTENT_TYPE });
  });
  docs.add({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tags: ['system'],
    summary: 'Prometheus metrics (text exposition format 0.0.4): sandboxes by state, execs, exec latency, policy decisions, bytes streamed, HTTP requests, the process',
    description: 'Needs the admin scope over TCP. Content-Type: text/plain; version=0.0.4.',
    responses: { 200: { description: 'The metrics, as text/plain; version=0.0.4.' } },
    errors: [401, 403],
  });
}
