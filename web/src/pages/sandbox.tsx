// One sandbox: its execs (status, duration), the live output of one, a terminal, its processes and
// their logs.
import { lazy, Suspense } from 'preact/compat';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ExecRecord, ProcessInfo, Sandbox } from '../../../src/sdk/index.ts';
import { age, duration, errorText, type Api } from '../client.ts';

const TerminalPanel = lazy(() => import('./terminal.tsx').then((m) => ({ default: m.TerminalPanel })));

declare global {
  interface Window {
    /** Milliseconds from an output frame's production to its display, for the browser test. */
    __corralLatency?: number[];
  }
}

function commandText(r: ExecRecord): string {
  return r.command.shell ?? (r.command.argv ?? []).join(' ');
}

function execDuration(r: ExecRecord): string {
  if (!r.startedAt) return '';
  return duration((r.finishedAt ? Date.parse(r.finishedAt) : Date.now()) - Date.parse(r.startedAt));
}

function status(r: ExecRecord): string {
  if (r.state === 'running' || r.state === 'created') return r.state;
  if (r.result?.status && r.result.status !== 'completed') return r.result.status;
  return r.exitCode !== null ? `exit ${r.exitCode}` : r.signal ? `signal ${r.signal}` : r.state;
}

function OutputView({ api, exec }: { api: Api; exec: string }) {
  const [text, setText] = useState('');
  const [done, setDone] = useState<string | null>(null);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    setText('');
    setDone(null);
    const abort = new AbortController();
    (async () => {
      const handle = await api.corral.execs.get(exec, { signal: abort.signal });
      const decoder = new TextDecoder();
      for await (const f of handle.output({ signal: abort.signal })) {
        if (f.type === 'output') {
          const chunk = decoder.decode(f.data, { stream: true });
          setText((t) => (t.length > 2_000_000 ? t.slice(-1_000_000) : t) + chunk);
          const shown = performance.timeOrigin + performance.now();
          (window.__corralLatency ??= []).push(shown - f.atUs / 1000);
        } else if (f.type === 'gap') setText((t) => t + `\n[… ${f.to - f.from} bytes of ${f.stream} no longer kept …]\n`);
        else if (f.type === 'exit') setDone(status(f.exec));
      }
    })().catch((e) => { if (!abort.signal.aborted) setDone(errorText(e)); });
    return () => abort.abort();
  }, [api, exec]);
  useEffect(() => { const el = pre.current; if (el) el.scrollTop = el.scrollHeight; }, [text]);
  return (
    <div class="card">
      <div class="row"><h3>Output of {exec}</h3><span class="grow" />{done ? <span class="muted" data-testid="exec-done">{done}</span> : <span class="live">● streaming</span>}</div>
      <pre class="output" ref={pre} data-testid="exec-output">{text}</pre>
    </div>
  );
}

function ProcessLogs({ api, sandbox, id, name }: { api: Api; sandbox: Sandbox; id: string; name: string }) {
  const [lines, setLines] = useState<string[]>([]);
  useEffect(() => {
    setLines([]);
    const abort = new AbortController();
    (async () => {
      const p = await sandbox.processes.get(id, { signal: abort.signal });
      for await (const l of p.logs({ follow: true, tail: 500, signal: abort.signal })) setLines((x) => [...x.slice(-2000), `${l.time.slice(11, 23)} ${l.stream === 'stderr' ? '!' : ' '} ${l.text}`]);
    })().catch((e) => { if (!abort.signal.aborted) setLines((x) => [...x, `[${errorText(e)}]`]); });
    return () => abort.abort();
  }, [api, sandbox, id]);
  return <div class="card"><h3>Logs of {name}</h3><pre class="output">{lines.join('\n')}</pre></div>;
}

export function SandboxPage({ api, id }: { api: Api; id: string }) {
  const [sb, setSb] = useState<Sandbox | null>(null);
  const [execs, setExecs] = useState<ExecRecord[]>([]);
  const [procs, setProcs] = useState<ProcessInfo[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [proc, setProc] = useState<string | null>(null);
  const [terminal, setTerminal] = useState(false);
  const [error, setError] = useState('');
  const [, tick] = useState(0);

  useEffect(() => {
    let sandbox: Sandbox | null = null;
    const loadExecs = async () => {
      if (!sandbox) return;
      const [e, p] = await Promise.all([sandbox.execs.list(), sandbox.processes.list()]);
      setExecs([...e].reverse());
      setProcs(p.map((x) => x.toJSON()));
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stream = api.corral.events({ sandbox: id });
    (async () => {
      sandbox = await api.corral.sandboxes.get(id);
      setSb(sandbox);
      await loadExecs();
      for await (const e of stream) {
        if (e.type === 'reset' || e.type === 'paused' || e.type === 'resumed' || e.type === 'destroyed') { sandbox = await sandbox.refresh(); setSb(sandbox); }
        clearTimeout(timer);
        timer = setTimeout(() => void loadExecs().catch(() => undefined), 30);
      }
    })().catch((e) => setError(errorText(e)));
    const clock = setInterval(() => tick((n) => n + 1), 1000);
    return () => { void stream.close(); clearTimeout(timer); clearInterval(clock); };
  }, [api, id]);

  if (error && !sb) return <p class="error">{error}</p>;
  if (!sb) return <p class="muted">Loading…</p>;
  const running = execs.some((e) => e.state === 'running');
  return (
    <section>
      <div class="row">
        <h1>{sb.name ?? sb.id}</h1>
        <span class={`state state-${sb.state}`}>{sb.state}</span>
        <span class="grow" />
        <a class="button" href={`#/sandboxes/${sb.id}/timeline`}>Timeline</a>
        <button onClick={() => setTerminal((t) => !t)} disabled={sb.state !== 'ready'}>{terminal ? 'Close terminal' : 'Open terminal'}</button>
      </div>
      <p class="muted">{sb.id} · vault {sb.vault} · {sb.backend} backend · policy {sb.policy} · network {sb.network} · created {age(sb.createdAt)} ago{sb.expiresAt ? ` · expires ${sb.expiresAt}` : ''}</p>
      {error && <p class="error">{error}</p>}
      {terminal && <Suspense fallback={<p class="muted">Loading terminal…</p>}><TerminalPanel sandbox={sb} /></Suspense>}
      <div class="cols">
        <div class="card">
          <h3>Execs {running && <span class="live">● running</span>}</h3>
          {execs.length === 0 ? <p class="muted">No execs yet.</p> : (
            <table data-testid="execs">
              <thead><tr><th>Command</th><th>Status</th><th>Duration</th><th>Started</th></tr></thead>
              <tbody>
                {execs.map((e) => (
                  <tr key={e.id} data-exec={e.id} class={selected === e.id ? 'selected clickable' : 'clickable'} onClick={() => setSelected(e.id)}>
                    <td><code>{commandText(e).slice(0, 120)}</code>{e.background && <span class="tag">bg</span>}{e.result?.decision?.action === 'require_approval' && <span class="tag">approval</span>}</td>
                    <td><span class={`state state-${e.state}`}>{status(e)}</span></td>
                    <td>{execDuration(e)}</td>
                    <td>{age(e.startedAt ?? e.createdAt)} ago</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div class="card">
          <h3>Processes</h3>
          {procs.length === 0 ? <p class="muted">No named processes.</p> : (
            <table data-testid="processes">
              <thead><tr><th>Name</th><th>State</th><th>Restarts</th></tr></thead>
              <tbody>
                {procs.map((p) => (
                  <tr key={p.name} class={proc === p.id ? 'selected clickable' : 'clickable'} onClick={() => setProc(p.id)}>
                    <td>{p.name}</td><td><span class={`state state-${p.state}`}>{p.state}</span></td><td>{p.restarts}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      </div>
      {selected && <OutputView api={api} exec={selected} />}
      {proc && <ProcessLogs api={api} sandbox={sb} id={proc} name={procs.find((p) => p.id === proc)?.name ?? proc} />}
    </section>
  );
}
