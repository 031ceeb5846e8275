import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { CorralMetrics, formatValue, METRICS_CONTENT_TYPE, MetricsRegistry, sandboxStateCounts } from '../../src/api/metrics.ts';
import { EventBus } from '../../src/services/event-bus.ts';
import { openCorral } from '../helpers.ts';
import { quiet } from './api-test-helpers.ts';

const backends = { probeAll: async () => [], select: async () => ({ backend: { health: async () => ({ ok: true, warnings: [] }) } }) };
const tcp = { transport: 'tcp' as const };

/** The samples of a text exposition: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), line.slice(at + 1) === '+Inf' ? Infinity : Number(line.slice(at + 1)));
  }
  return out;
}

test('the registry writes the text exposition format 0.0.4: HELP, TYPE, escaped labels, cumulative histogram buckets', () => {
  const r = new MetricsRegistry();
  const c = r.counter('t_requests_total', 'Requests.\nSecond line with a \\ backslash.', ['path']);
  c.inc({ path: 'a"b\\c\nd' }, 2);
  c.inc({ path: 'x' });
  c.inc({ path: 'x' }, -5);
  c.inc({ path: 'x' }, Number.NaN);
  const g = r.gauge('t_temp', 'Temperature.');
  g.set(undefined, -1.5);
  r.counter('t_empty_total', 'Never counted.');
  r.counter('t_labelled_total', 'Never counted, with labels.', ['k']);
  const h = r.histogram('t_latency_seconds', 'Latency.', [1, 0.1, 0.5]);
  for (const v of [0.05, 0.1, 0.3, 2, Infinity]) h.observe(v);
  r.gauge('t_live', 'From a callback.', ['state'], () => [[{ state: 'up' }, 3]]);
  r.gauge('t_broken', 'Its source fails.', [], () => {
    throw new Error('database is locked');
  });
  assert.equal(
    r.render(),
    [
      '# HELP t_requests_total Requests.\\nSecond line with a \\\\ backslash.',
      '# TYPE t_requests_total counter',
      't_requests_total{path="a\\"b\\\\c\\nd"} 2',
      't_requests_total{path="x"} 1',
      '# HELP t_temp Temperature.',
      '# TYPE t_temp gauge',
      't_temp -1.5',
      '# HELP t_empty_total Never counted.',
      '# TYPE t_empty_total counter',
      't_empty_total 0',
      '# HELP t_labelled_total Never counted, with labels.',
      '# TYPE t_labelled_total counter',
      '# HELP t_latency_seconds Latency.',
      '# TYPE t_latency_seconds histogram',
      't_latency_seconds_bucket{le="0.1"} 2',
      't_latency_seconds_bucket{le="0.5"} 3',
      't_latency_seconds_bucket{le="1"} 3',
      't_latency_seconds_bucket{le="+Inf"} 4',
      't_latency_seconds_sum 2.45',
      't_latency_seconds_count 4',
      '# HELP t_live From a callback.',
      '# TYPE t_live gauge',
      't_live{state="up"} 3',
      '# HELP t_broken Its source fails.',
      '# TYPE t_broken gauge',
      '',
    ].join('\n'),
  );
  assert.deepEqual([Infinity, -Infinity, Number.NaN, 0.25, 3].map(formatValue), ['+Inf', '-Inf', 'NaN', '0.25', '3']);
  assert.throws(() => r.counter('t_temp', 'again'), /twice/);
  assert.throws(() => r.counter('bad-name', 'x'), /invalid metric name/);
  assert.throws(() => r.counter('t_x', 'x', ['le']), /invalid label name/);
  assert.throws(() => r.histogram('t_h', 'x', []), /buckets/);
});

test('label sets are bounded: past 2000 series a metric drops new ones (and counts them)', () => {
  const r = new MetricsRegistry();
  const c = r.counter('t_total', 'x', ['id']);
  for (let i = 0; i < 2100; i++) c.inc({ id: String(i) });
  assert.equal(r.dropped, 100);
  assert.equal(samples(r.render()).size, 2000);
  c.inc({ id: '5' });
  assert.equal(c.value({ id: '5' }), 2, 'existing series still count');
});

test('CorralMetrics: exec events, policy decisions, stream bytes and sandboxes by state', () => {
  const bus = new EventBus();
  let now = 1_000_000;
  const m = new CorralMetrics({ events: bus, sandboxCounts: () => [{ state: 'ready', count: 2 }, { state: 'destroyed', count: 5 }], startedAt: now, now: () => now });
  now += 90_000;
  bus.publish('exec.started', { sandbox: 'sbx_x', tenant: null, data: { exec: 'exec_1', background: false } });
  bus.publish('exec.started', { sandbox: 'sbx_x', tenant: null, data: { exec: 'exec_2', background: true } });
  bus.publish('exec.started', { sandbox: 'sbx_x', tenant: null, data: { exec: 'exec_3', background: false } });
  bus.publish('exec.exited', { sandbox: 'sbx_x', tenant: null, data: { exec: 'exec_1', status: 'completed', exitCode: 1, durationMs: 3, decision: 'allow', background: false } });
  bus.publish('exec.exited', { sandbox: 'sbx_x', tenant: null, data: { exec: 'exec_2', status: 'failed', exitCode: null, durationMs: 700, decision: null, background: true } });
  bus.publish('exec.exited', { sandbox: 'sbx_x', tenant: null, data: { exec: 'exec_3', status: 'denied', exitCode: null, durationMs: 1, decision: 'deny', background: false } });
  // Hostile or unknown values land in 'other' instead of making new series.
  bus.publish('exec.exited', { sandbox: null, tenant: null, data: { status: 'x'.repeat(10_000), decision: '"}\n', durationMs: 'soon' } });
  bus.publish('created', { sandbox: 'sbx_x', tenant: null });
  m.streamBytes('stdout', 1000);
  m.streamBytes('stdout', 24);
  m.streamBytes('stderr', 0);
  m.streamBytes('bogus' as 'stdout', 5);
  const s = samples(m.render());
  assert.equal(s.get('corral_execs_started_total'), 3);
  assert.equal(s.get('corral_execs_finished_total{status="completed"}'), 1);
  assert.equal(s.get('corral_execs_finished_total{status="failed"}'), 1);
  assert.equal(s.get('corral_execs_finished_total{status="denied"}'), 1);
  assert.equal(s.get('corral_execs_finished_total{status="lost"}'), 0);
  assert.equal(s.get('corral_execs_finished_total{status="other"}'), 1);
  assert.equal(s.get('corral_execs_failed_total'), 1);
  assert.equal(s.get('corral_exec_duration_seconds_count'), 3);
  assert.equal(s.get('corral_exec_duration_seconds_bucket{le="0.005"}'), 2);
  assert.equal(s.get('corral_exec_duration_seconds_bucket{le="0.5"}'), 2);
  assert.equal(s.get('corral_exec_duration_seconds_bucket{le="1"}'), 3);
  assert.equal(s.get('corral_exec_duration_seconds_sum'), 0.704);
  assert.equal(s.get('corral_policy_decisions_total{action="allow"}'), 1);
  assert.equal(s.get('corral_policy_decisions_total{action="deny"}'), 1);
  assert.equal(s.get('corral_policy_decisions_total{action="require_approval"}'), 0);
  assert.equal(s.get('corral_policy_decisions_total{action="other"}'), 1);
  assert.equal(s.get('corral_stream_bytes_total{stream="stdout"}'), 1024);
  assert.equal(s.get('corral_stream_bytes_total{stream="stderr"}'), 0);
  assert.equal(s.get('corral_stream_bytes_total{stream="other"}'), 5);
  assert.equal(s.get('corral_sandboxes{state="ready"}'), 2);
  assert.equal(s.get('corral_sandboxes{state="paused"}'), 0);
  assert.equal(s.get('corral_sandboxes{state="destroyed"}'), 5);
  assert.equal(s.get('corral_uptime_seconds'), 90);
  assert.equal(s.get('process_start_time_seconds'), 1000);
  assert.ok(s.get('process_resident_memory_bytes')! > 1024 * 1024);
  assert.ok(s.get('process_open_fds')! > 2);
  assert.ok(s.get('process_cpu_seconds_total')! > 0);
  m.close();
  bus.publish('exec.started', { sandbox: null, tenant: null, data: {} });
  assert.equal(samples(m.render()).get('corral_execs_started_total'), 3, 'closed: no longer listening');
});

test('GET /metrics: text/plain 0.0.4, HTTP requests by route pattern, sandboxes from the database; admin only over TCP', async () => {
  const corral = openCorral();
  const metrics = new CorralMetrics({ events: corral.events, sandboxCounts: sandboxStateCounts(corral.store.db) });
  const app = createApi({ corral, logger: quiet, version: '0.0.0', metrics, auth: { keys: corral.keys } });
  const a = corral.sandboxes.create({});
  corral.sandboxes.create({});
  corral.sandboxes.destroy(a.id);
  assert.equal((await app.request(`/v1/sandboxes/${a.id}`, {}, { transport: 'unix' })).status, 200);
  assert.equal((await app.request('/v1/sandboxes/sbx_nope', {}, { transport: 'unix' })).status, 400);
  assert.equal((await app.request('/v1/no/such/route?secret=1', {}, { transport: 'unix' })).status, 404);
  assert.equal((await app.request('/v1/ping', { method: 'DELETE' }, { transport: 'unix' })).status, 405);

  const res = await app.request('/metrics', {}, { transport: 'unix' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), METRICS_CONTENT_TYPE);
  const text = await res.text();
  const s = samples(text);
  assert.equal(s.get('corral_sandboxes{state="ready"}'), 1);
  assert.equal(s.get('corral_sandboxes{state="destroyed"}'), 1);
  assert.equal(s.get('corral_http_requests_total{method="GET",route="/v1/sandboxes/:id",status="200"}'), 1);
  assert.equal(s.get('corral_http_requests_total{method="GET",route="/v1/sandboxes/:id",status="400"}'), 1);
  assert.equal(s.get('corral_http_requests_total{method="GET",route="unmatched",status="404"}'), 1);
  assert.equal(s.get('corral_http_requests_total{method="DELETE",route="unmatched",status="405"}'), 1);
  assert.ok(!text.includes('sbx_nope') && !text.includes('secret') && !text.includes(a.id), 'raw paths and queries never become labels');
  // Every line is a comment or a sample of a declared metric.
  for (const line of text.trim().split('\n')) assert.match(line, /^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[^}]*\})? [-+0-9.eInfNa]+)$/, line);

  // Over TCP: a key needs the admin scope.
  assert.equal((await app.request('/metrics', {}, tcp)).status, 401);
  const exec = corral.keys.create({ tenant: 'acme', scopes: ['exec'] }).secret;
  const denied = await app.request('/metrics', { headers: { authorization: `Bearer ${exec}` } }, tcp);
  assert.equal(denied.status, 403);
  assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'PERMISSION_DENIED');
  const admin = corral.keys.create({ tenant: 'acme', scopes: ['admin'] }).secret;
  assert.equal((await app.request('/metrics', { headers: { authorization: `Bearer ${admin}` } }, tcp)).status, 200);

  const doc = (await (await app.request('/openapi.json', {}, { transport: 'unix' })).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
  assert.equal(doc.paths['/metrics']?.get?.operationId, 'getMetrics');
  metrics.close();
});

test('without metrics in its deps, the app serves no /metrics', async () => {
  const app = createApi({ corral: { exec: { backends } }, logger: quiet, version: '0.0.0' });
  assert.equal((await app.request('/metrics')).status, 404);
});
