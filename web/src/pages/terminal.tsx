// An interactive terminal in the sandbox: xterm.js over the attach WebSocket (an exec with a PTY,
// flow-controlled with acks by the SDK's Terminal). Loaded on demand: xterm is most of the bundle.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal as Xterm } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import type { Sandbox } from '../../../src/sdk/index.ts';
import { errorText } from '../client.ts';

export function TerminalPanel({ sandbox }: { sandbox: Sandbox }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting…');
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const term = new Xterm({ cols: 100, rows: 24, convertEol: false, cursorBlink: true, fontSize: 13, fontFamily: 'ui-monospace, Menlo, Consolas, monospace', theme: { background: '#111418' } });
    term.open(el);
    let closed = false;
    let session: Awaited<ReturnType<Sandbox['pty']['create']>> | null = null;
    (async () => {
      session = await sandbox.pty.create({ cols: term.cols, rows: term.rows });
      if (closed) return void session.close();
      setStatus(`${session.id} · bash`);
      term.onData((d) => session?.write(d));
      term.onResize(({ cols, rows }) => session?.resize(cols, rows));
      term.focus();
      for await (const chunk of session) term.write(chunk);
      setStatus(`exited${session.record?.exitCode !== null && session.record?.exitCode !== undefined ? ` with ${session.record.exitCode}` : ''}`);
    })().catch((e) => { if (!closed) setStatus(errorText(e)); });
    return () => {
      closed = true;
      void session?.close().catch(() => undefined);
      term.dispose();
    };
  }, [sandbox]);
  return (
    <div class="card">
      <div class="row"><h3>Terminal</h3><span class="grow" /><span class="muted" data-testid="terminal-status">{status}</span></div>
      <div class="terminal" ref={host} data-testid="terminal" />
    </div>
  );
}
