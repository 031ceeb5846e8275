// Sandboxes: state, backend, vault, policy, running execs, resource use, age; updated live from the event stream.
import { useEffect, useState } from 'preact/hooks';
import type { Sandbox } from '../../../src/sdk/index.ts';
import { age, bytes, duration, errorText, type Api } from '../client.ts';

const LIFECYCLE = ['created', 'ready', 'paused', 'resumed', 'expired', 'destroyed', 'exec.started', 'exec.exited', 'checkpointed', 'restored'] as const;

export function SandboxesPage({ api }: { api: Api }) {
  const [list, setList] = useState<Sandbox[] | null>(null);
  const [running, setRunning] = useState<Record<string, number>>({});
  const [error, setError] = useState('');
  const [, tick] = useState(0);

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = () =>
      api.corral.sandboxes.list().then(
        (l) => {
          setList(l);
          setRunning(Object.fromEntries(l.map((s) => [s.id, s.usage.runningExecs])));
          setError('');
        },
        (e) => setError(errorText(e)),
      );
    void load();
    const stream = api.corral.events({ types: [...LIFECYCLE] });
    (async () => {
      for await (const e of stream) {
        if (e.type === 'exec.started' && e.sandbox) setRunning((r) => ({ ...r, [e.sandbox!]: (r[e.sandbox!] ?? 0) + 1 }));
        else if (e.type === 'exec.exited' && e.sandbox) setRunning((r) => ({ ...r, [e.sandbox!]: Math.max(0, (r[e.sandbox!] ?? 0) - 1) }));
        if (e.type === 'exec.started') continue;
        // Bursts of events make one reload (an exec's end changes the resource use too).
        clearTimeout(timer);
        timer = setTimeout(load, 50);
      }
    })().catch((e) => setError(errorText(e)));
    const clock = setInterval(() => tick((n) => n + 1), 5000);
    return () => { void stream.close(); clearTimeout(timer); clearInterval(clock); };
  }, [api]);

  const create = () => api.corral.sandboxes.create({}).catch((e) => setError(errorText(e)));
  return (
    <section>
      <div class="row">
        <h1>Sandboxes</h1>
        <span class="live" title="updated live from GET /v1/events">● live</span>
        <span class="grow" />
        <button onClick={create}>New sandbox</button>
      </div>
      {error && <p class="error">{error}</p>}
      {list === null ? <p class="muted">Loading…</p> : list.length === 0 ? <p class="muted">No sandboxes yet. Create one here, with <code>corral sandbox create</code>, or from an agent.</p> : (
        <table data-testid="sandboxes">
          <thead><tr><th>Sandbox</th><th>State</th><th>Backend</th><th>Vault</th><th>Policy</th><th>Running</th><th>Resource use</th><th>Age</th><th>Expires</th></tr></thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.id} data-sandbox={s.id}>
                <td><a href={`#/sandboxes/${s.id}`}>{s.name ?? s.id}</a>{s.name && <div class="muted small">{s.id}</div>}</td>
                <td><span class={`state state-${s.state}`}>{s.state}</span></td>
                <td>{s.backend}</td>
                <td>{s.vault}</td>
                <td>{s.policy}</td>
                <td>{running[s.id] ? `${running[s.id]} exec${running[s.id] === 1 ? '' : 's'}` : ''}</td>
                <td class="small" data-testid="usage">{s.usage.execs} exec{s.usage.execs === 1 ? '' : 's'}, CPU {duration(s.usage.cpuMs)}{s.usage.peakMemoryBytes !== null ? `, peak ${bytes(s.usage.peakMemoryBytes)}` : ''}</td>
                <td title={s.createdAt}>{age(s.createdAt)}</td>
                <td>{s.expiresAt ? `in ${age(new Date(Date.now() * 2 - Date.parse(s.expiresAt)).toISOString())}` : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
