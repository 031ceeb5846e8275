// The dashboard's connection to the daemon: the SDK for everything it covers, a small JSON helper
// for the rest (history, diff, audit). The key comes once in the URL fragment (#key=crl_…, as
// `corral dashboard` prints it), is kept in sessionStorage (this tab only) and removed from the URL.
import { Corral, CorralApiError } from '../../src/sdk/index.ts';

const STORAGE = 'corral.key';

/** Takes a key from the fragment (and clears it from the address bar), else the stored one. */
export function takeKey(): string | null {
  const m = /^#(?:key|token)=([A-Za-z0-9._~+/=-]+)/.exec(location.hash);
  if (m?.[1]) {
    sessionStorage.setItem(STORAGE, m[1]);
    history.replaceState(null, '', location.pathname + location.search + '#/');
  }
  return sessionStorage.getItem(STORAGE);
}

export function saveKey(key: string): void {
  sessionStorage.setItem(STORAGE, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(STORAGE);
}

export interface Api {
  corral: Corral;
  get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T>;
}

export function connect(key: string | null): Api {
  const corral = Corral.connect({ url: location.origin, ...(key ? { apiKey: key } : {}), timeoutMs: 30_000 });
  const get = async <T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> => {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') qs.set(k, String(v));
    const res = await fetch(path + (qs.size ? `?${qs}` : ''), { headers: key ? { authorization: `Bearer ${key}` } : {} });
    const body = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
    if (!res.ok) throw new CorralApiError((body?.error?.code ?? 'INTERNAL') as 'INTERNAL', body?.error?.message ?? `HTTP ${res.status}`, { status: res.status });
    return body as T;
  };
  return { corral, get };
}

export function errorText(e: unknown): string {
  if (e instanceof CorralApiError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

export function isUnauthenticated(e: unknown): boolean {
  return e instanceof CorralApiError && (e.code === 'UNAUTHENTICATED' || e.status === 401);
}

/** "3 min ago" style ages. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1000)}s`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(1)} GiB`;
}
