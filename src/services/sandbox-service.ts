// Sandboxes: a vault (by default its own fork, made in O(1)) plus how its commands run (backend,
// policy, limits, network, env), kept as a row. Creating one starts no process: processes start only
// for execs, which go through ExecService.run and are recorded with their result envelope. The
// rows' side of the lifecycle is here too (lifetime, ready ↔ paused, what is due to expire or idle);
// the processes' side and the sweep are in sandbox-lifecycle.ts.
import { newId, isId } from '../protocol/ids.ts';
import { policyPresetNames, sandboxBounds } from '../protocol/sandbox-spec.ts';
import type { Sandbox, SandboxState } from '../protocol/api-schemas.ts';
import { CorralError, isCorralError } from '../protocol/errors.ts';
import { validateVaultName } from '../protocol/paths.ts';
import type { PresetName } from '../policy/policy-presets.ts';
import type { Caller, CorralStore } from '../store/corral-store.ts';
import type { CheckoutService } from './checkout-service.ts';
import type { ServiceDeps } from './corral.ts';
import type { EventBus } from './event-bus.ts';
import type { VaultService } from './vault-service.ts';

export type SandboxBackend = 'auto' | 'host' | 'namespace';
export type SandboxNetwork = 'none' | 'host';

export interface SandboxLimits {
  memoryBytes?: number;
  pids?: number;
  /** 100 = one core. */
  cpuPercent?: number;
  tmpSizeBytes?: number;
}

export interface SandboxSpec {
  /** An existing vault; absent: a new empty vault named after the sandbox id. */
  vault?: string;
  /** Work on a fork `<vault>-<id suffix>` (default true); false works on the vault itself. */
  fork?: boolean;
  name?: string;
  backend?: SandboxBackend;
  /** A policy preset name (default workstation); policy files are not taken here. */
  policy?: string;
  limits?: SandboxLimits;
  network?: SandboxNetwork;
  env?: Record<string, string>;
  labels?: Record<string, string>;
  /** Lifetime, 1 s to 7 days (default: none). */
  ttlSeconds?: number;
  /** Seconds without a running exec after which the sweep pauses the sandbox, 1 s to 7 days (default: never). */
  idleTimeoutSeconds?: number;
}

/** What an exec in a sandbox asks for (the sandbox supplies vault, backend, policy, limits, network). */
export interface SandboxExecRequest {
  argv?: string[];
  shell?: string;
  cwd?: string;
  /** Added to the sandbox's env (these win). */
  env?: Record<string, string>;
  timeoutMs?: number;
  stdin?: Uint8Array;
  signal?: AbortSignal;
}

/** Whose objects a call may see: a tenant's own, or (tenant null) everything: the machine's owner. */
export interface Scope {
  tenant: string | null;
}
export const OWNER: Scope = { tenant: null };

export interface SandboxServiceDeps extends ServiceDeps {
  vaults: VaultService;
  checkouts: CheckoutService;
  events?: EventBus;
}

interface SandboxRow {
  id: string;
  name: string | null;
  vault: string;
  source_vault: string | null;
  forked: number;
  backend: string;
  policy: string;
  limits: string;
  network: string;
  env: string;
  labels: string;
  state: SandboxState;
  ttl_seconds: number | null;
  expires_at: number | null;
  created_at: number;
  updated_at: number;
  tenant: string | null;
  idle_timeout_seconds: number | null;
  last_active_at: number | null;
  execs_total: number;
  cpu_ms: number;
  peak_memory_bytes: number | null;
  running_execs?: number;
}

// Every preset the API offers must be one the policy layer knows: the compiler checks it.
const presets: readonly PresetName[] = policyPresetNames;

/** A sandbox's row with the number of its execs running now. */
const SANDBOX_SQL = "SELECT s.*, (SELECT count(*) FROM execs e WHERE e.sandbox_id = s.id AND e.state = 'running') AS running_execs FROM sandboxes s";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
// Printable text only: labels end up in logs and terminals.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LIMIT_KEYS = ['memoryBytes', 'pids', 'cpuPercent', 'tmpSizeBytes'] as const;
/** Random characters of the id kept in a fork's name (60 bits). */
const FORK_SUFFIX = 12;

function invalid(message: string, details: Record<string, unknown> = {}): CorralError {
  return new CorralError('INVALID_ARGUMENT', message, details);
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks env names and values (also used for an exec's env). */
export function validateEnv(env: unknown, what = 'env'): Record<string, string> {
  if (env === undefined) return {};
  if (!isPlainObject(env)) throw invalid(`${what} must be an object of NAME: value strings`);
  const entries = Object.entries(env as object);
  if (entries.length > sandboxBounds.maxEnvVars) throw invalid(`${what} has ${entries.length} variables, over the limit of ${sandboxBounds.maxEnvVars}`, { limit: sandboxBounds.maxEnvVars });
  for (const [k, v] of entries) {
    if (!ENV_NAME.test(k) || k.length > sandboxBounds.maxEnvNameLength) throw invalid(`'${k.slice(0, 60)}' is not a valid environment variable name: letters, digits and _, not starting with a digit`, { name: k.slice(0, 60) });
    if (typeof v !== 'string' || v.includes('\0') || v.length > sandboxBounds.maxEnvValueLength)
      throw invalid(`the value of ${k} must be a string without NUL bytes, at most ${sandboxBounds.maxEnvValueLength} characters`, { name: k });
  }
  return { ...(env as Record<string, string>) };
}

function validateLabels(labels: unknown): Record<string, string> {
  if (labels === undefined) return {};
  if (!isPlainObject(labels)) throw invalid('labels must be an object of key: value strings');
  const entries = Object.entries(labels as object);
  if (entries.length > sandboxBounds.maxLabels) throw invalid(`${entries.length} labels, over the limit of ${sandboxBounds.maxLabels}`, { limit: sandboxBounds.maxLabels });
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k) || k.length > sandboxBounds.maxLabelKeyLength)
      throw invalid(`invalid label key '${k.slice(0, 60)}': 1-${sandboxBounds.maxLabelKeyLength} of A-Z a-z 0-9 . _ / -, starting with a letter or digit`, { key: k.slice(0, 60) });
    if (typeof v !== 'string' || CONTROL.test(v) || v.length > sandboxBounds.maxLabelValueLength)
      throw invalid(`the label ${k} must be printable text of at most ${sandboxBounds.maxLabelValueLength} characters`, { key: k });
  }
  return { ...(labels as Record<string, string>) };
}

function validateLimits(limits: unknown): SandboxLimits {
  if (limits === undefined) return {};
  if (!isPlainObject(limits)) throw invalid('limits must be an object');
  const out: SandboxLimits = {};
  for (const [k, v] of Object.entries(limits as object)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(k)) throw invalid(`unknown limit '${k.slice(0, 60)}': use ${LIMIT_KEYS.join(', ')}`, { limit: k.slice(0, 60) });
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw invalid(`the ${k} limit must be a positive whole number, got ${String(v).slice(0, 40)}`, { limit: k });
    out[k as (typeof LIMIT_KEYS)[number]] = v;
  }
  return out;
}

/** A lifetime or idle timeout: whole seconds, 1 s to 7 days. */
function validateSeconds(value: unknown, what: string): number {
  if (!(typeof value === 'number' && Number.isSafeInteger(value) && value >= sandboxBounds.minTtlSeconds && value <= sandboxBounds.maxTtlSeconds))
    throw invalid(`${what} must be a whole number from ${sandboxBounds.minTtlSeconds} to ${sandboxBounds.maxTtlSeconds} (7 days), got ${String(value).slice(0, 40)}`, { [what]: value });
  return value;
}

/** The spec with every default filled in, or an INVALID_* error naming the first bad field. */
function validateSpec(spec: SandboxSpec): Required<Omit<SandboxSpec, 'vault' | 'name' | 'ttlSeconds' | 'idleTimeoutSeconds'>> & Pick<SandboxSpec, 'vault' | 'name' | 'ttlSeconds' | 'idleTimeoutSeconds'> {
  if (!isPlainObject(spec)) throw invalid('the sandbox spec must be an object');
  if (spec.vault !== undefined) validateVaultName(spec.vault);
  if (spec.name !== undefined) {
    validateVaultName(spec.name);
    if (spec.name.startsWith('sbx_')) throw new CorralError('INVALID_NAME', `a sandbox name cannot start with sbx_ (ids do): got '${spec.name}'`, { name: spec.name });
  }
  if (spec.fork !== undefined && typeof spec.fork !== 'boolean') throw invalid('fork must be true or false');
  const backend = spec.backend ?? 'auto';
  if (!['auto', 'host', 'namespace'].includes(backend)) throw invalid(`unknown backend '${String(backend).slice(0, 40)}': use auto, host or namespace`, { backend: String(backend).slice(0, 40) });
  const policy = spec.policy ?? 'workstation';
  if (typeof policy !== 'string' || !(presets as readonly string[]).includes(policy))
    throw new CorralError('POLICY_INVALID', `unknown policy preset '${String(policy).slice(0, 80)}': use one of ${presets.join(', ')} (policy files are not accepted here)`, { presets: [...presets] });
  const network = spec.network ?? 'none';
  if (network !== 'none' && network !== 'host') throw invalid(`network must be none or host, got '${String(network).slice(0, 40)}'`);
  const ttl = spec.ttlSeconds;
  if (ttl !== undefined) validateSeconds(ttl, 'ttlSeconds');
  const idle = spec.idleTimeoutSeconds;
  if (idle !== undefined) validateSeconds(idle, 'idleTimeoutSeconds');
  return {
    ...(spec.vault !== undefined ? { vault: spec.vault } : {}),
    ...(spec.name !== undefined ? { name: spec.name } : {}),
    ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
    ...(idle !== undefined ? { idleTimeoutSeconds: idle } : {}),
    fork: spec.fork ?? true,
    backend,
    policy,
    limits: validateLimits(spec.limits),
    network,
    env: validateEnv(spec.env),
    labels: validateLabels(spec.labels),
  };
}

function toSandbox(r: SandboxRow): Sandbox {
  return {
    id: r.id,
    name: r.name,
    state: r.state,
    vault: r.vault,
    sourceVault: r.source_vault,
    forked: r.forked === 1,
    backend: r.backend as SandboxBackend,
    policy: r.policy,
    limits: JSON.parse(r.limits) as SandboxLimits,
    network: r.network as SandboxNetwork,
    env: JSON.parse(r.env) as Record<string, string>,
    labels: JSON.parse(r.labels) as Record<string, string>,
    createdAt: new Date(r.created_at).toISOString(),
    expiresAt: r.expires_at === null ? null : new Date(r.expires_at).toISOString(),
    idleTimeoutSeconds: r.idle_timeout_seconds,
    lastActiveAt: new Date(r.last_active_at ?? r.created_at).toISOString(),
    usage: { runningExecs: r.running_execs ?? 0, execs: r.execs_total, cpuMs: r.cpu_ms, peakMemoryBytes: r.peak_memory_bytes },
  };
}

function notFound(idOrName: string): CorralError {
  return new CorralError('SANDBOX_NOT_FOUND', `no sandbox '${idOrName.slice(0, 80)}' (or it expired): GET /v1/sandboxes lists the live ones`, { sandbox: idOrName.slice(0, 80) });
}

export class SandboxService {
  private readonly store: CorralStore;
  private readonly caller: Caller;
  private readonly vaults: VaultService;
  private readonly checkouts: CheckoutService;
  private readonly events: EventBus | undefined;

  constructor(deps: SandboxServiceDeps) {
    this.store = deps.store;
    this.caller = deps.caller;
    this.vaults = deps.vaults;
    this.checkouts = deps.checkouts;
    this.events = deps.events;
  }

  /** Makes a sandbox: rows and (by default) an O(1) fork, no process. Nothing is left behind on failure. */
  create(spec: SandboxSpec = {}, scope: Scope = OWNER): Sandbox {
    const s = validateSpec(spec);
    const now = this.store.now();
    const id = newId('sbx', now);
    const created = this.store.write(this.caller, s.vault ?? null, { op: 'sandbox.create', target: id, details: { name: s.name ?? null, vault: s.vault ?? null, fork: s.fork } }, () => {
      this.checkSandboxQuota(scope);
      if (s.name !== undefined && this.findLive(s.name, scope.tenant)) throw new CorralError('CONFLICT', `a sandbox named '${s.name}' already exists: pick another name or destroy it first`, { name: s.name });
      let vault: string;
      let source: string | null;
      let owned: boolean;
      if (s.vault === undefined) {
        // A new empty vault is the sandbox's own already: a fork of it would isolate nothing.
        vault = this.vaults.create(id).name;
        source = null;
        owned = s.fork;
      } else if (s.fork) {
        source = this.visibleVault(s.vault, scope);
        vault = this.vaults.fork(source, `${source.slice(0, 64 - FORK_SUFFIX - 1)}-${id.slice(-FORK_SUFFIX)}`).name;
        owned = true;
      } else {
        vault = this.visibleVault(s.vault, scope);
        source = vault;
        owned = false;
      }
      if (owned && scope.tenant !== null) this.store.db.run('UPDATE vaults SET tenant = ? WHERE name = ?', scope.tenant, vault);
      const expires = s.ttlSeconds === undefined ? null : now + s.ttlSeconds * 1000;
      this.store.db.run(
        'INSERT INTO sandboxes(id, name, vault, source_vault, forked, backend, policy, limits, network, env, labels, state, ttl_seconds, expires_at, created_at, updated_at, tenant, idle_timeout_seconds, last_active_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        id, s.name ?? null, vault, source, owned ? 1 : 0, s.backend, s.policy, JSON.stringify(s.limits), s.network, JSON.stringify(s.env), JSON.stringify(s.labels), 'ready', s.ttlSeconds ?? null, expires, now, now, scope.tenant, s.idleTimeoutSeconds ?? null, now,
      );
      return toSandbox(this.row(id)!);
    });
    this.events?.publish('created', { sandbox: id, tenant: scope.tenant, data: { vault: created.vault } });
    this.events?.publish('ready', { sandbox: id, tenant: scope.tenant, data: {} });
    return created;
  }

  /** Sandboxes, oldest first: the live ones (ready, paused) unless `state` is given; `label` is `key=value` or `{key: value}`. */
  list(filter: { state?: SandboxState; label?: string | Record<string, string> } = {}, scope: Scope = OWNER): Sandbox[] {
    if (filter.state !== undefined && !['ready', 'paused', 'destroyed'].includes(filter.state)) throw invalid(`state must be ready, paused or destroyed, got '${String(filter.state).slice(0, 40)}'`);
    const wanted = typeof filter.label === 'string' ? parseLabelFilter(filter.label) : (filter.label ?? {});
    this.expireDue();
    const now = this.store.now();
    const rows =
      filter.state === undefined
        ? this.store.db.all<SandboxRow>(`${SANDBOX_SQL} WHERE s.state != 'destroyed' ORDER BY s.rowid`)
        : this.store.db.all<SandboxRow>(`${SANDBOX_SQL} WHERE s.state = ? ORDER BY s.rowid`, filter.state);
    // An expired sandbox whose execs the sweep has not ended yet is gone for callers already.
    return rows.filter((r) => visible(r, scope) && (r.state === 'destroyed' || !expired(r, now))).map(toSandbox).filter((sb) => Object.entries(wanted).every(([k, v]) => sb.labels[k] === v));
  }

  /** A sandbox by id (any state) or by name (live ones); an expired one is destroyed now and not found. */
  get(idOrName: string, scope: Scope = OWNER): Sandbox {
    return toSandbox(this.resolve(idOrName, scope));
  }

  /** Destroys the sandbox (its row stays, state destroyed); its own vault is deleted unless keepFork. Idempotent. */
  destroy(idOrName: string, options: { keepFork?: boolean } = {}, scope: Scope = OWNER): Sandbox {
    const row = this.resolve(idOrName, scope);
    if (row.state === 'destroyed') return toSandbox(row);
    this.destroyRow(row, { keepFork: options.keepFork ?? false, reason: 'request' });
    return toSandbox(this.row(row.id)!);
  }

  /** Destroys every sandbox whose lifetime is over (their own vaults go too). */
  expireDue(): number {
    // A sandbox with execs still running is left to the daemon's sweep, which ends them first.
    const due = this.store.db.all<SandboxRow>(
      "SELECT * FROM sandboxes s WHERE state != 'destroyed' AND expires_at IS NOT NULL AND expires_at <= ? AND NOT EXISTS (SELECT 1 FROM execs e WHERE e.sandbox_id = s.id AND e.state = 'running')",
      this.store.now(),
    );
    for (const row of due) this.destroyRow(row, { keepFork: false, reason: 'expired' });
    return due.length;
  }

  /**
   * A new lifetime: now + ttlSeconds (bounded like create's; a sandbox without a TTL gets one). A
   * paused sandbox may be extended; a destroyed one is SANDBOX_STATE.
   */
  extend(idOrName: string, ttlSeconds: number, scope: Scope = OWNER): Sandbox {
    validateSeconds(ttlSeconds, 'ttlSeconds');
    const row = this.resolve(idOrName, scope);
    if (row.state === 'destroyed') throw stateError(row, 'extend it');
    const now = this.store.now();
    const expires = now + ttlSeconds * 1000;
    this.store.write(this.caller, row.vault, { op: 'sandbox.extend', target: row.id, details: { ttlSeconds, expiresAt: new Date(expires).toISOString() } }, () => {
      this.store.db.run('UPDATE sandboxes SET ttl_seconds = ?, expires_at = ?, updated_at = ? WHERE id = ?', ttlSeconds, expires, now, row.id);
    });
    return toSandbox(this.row(row.id)!);
  }

  /**
   * Moves a live sandbox between ready and paused (the processes are the lifecycle's business);
   * `changed` is false when it was in `to` already. Resuming counts as activity for the idle timeout.
   */
  setRunState(idOrName: string, to: 'ready' | 'paused', reason: string, scope: Scope = OWNER): { sandbox: Sandbox; changed: boolean; tenant: string | null } {
    const row = this.resolve(idOrName, scope);
    if (row.state === 'destroyed') throw stateError(row, to === 'paused' ? 'pause it' : 'resume it');
    if (row.state === to) return { sandbox: toSandbox(row), changed: false, tenant: row.tenant };
    const now = this.store.now();
    this.store.write(this.caller, row.vault, { op: to === 'paused' ? 'sandbox.pause' : 'sandbox.resume', target: row.id, details: { reason } }, () => {
      if (to === 'ready') this.store.db.run("UPDATE sandboxes SET state = 'ready', last_active_at = ?, updated_at = ? WHERE id = ? AND state = 'paused'", now, now, row.id);
      else this.store.db.run("UPDATE sandboxes SET state = 'paused', updated_at = ? WHERE id = ? AND state = 'ready'", now, row.id);
    });
    return { sandbox: toSandbox(this.row(row.id)!), changed: true, tenant: row.tenant };
  }

  /** Live sandboxes whose lifetime is over (the sweep ends their execs, then expire()s them). */
  dueToExpire(): string[] {
    return this.store.db
      .all<{ id: string }>("SELECT id FROM sandboxes WHERE state != 'destroyed' AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at", this.store.now())
      .map((r) => r.id);
  }

  /**
   * Ready sandboxes with an idle timeout, no running exec, and no activity (an exec starting or
   * ending, a resume; else their creation) for that long.
   */
  dueToIdle(): string[] {
    return this.store.db
      .all<{ id: string }>(
        "SELECT id FROM sandboxes s WHERE state = 'ready' AND idle_timeout_seconds IS NOT NULL AND coalesce(last_active_at, created_at) + idle_timeout_seconds * 1000 <= ? AND NOT EXISTS (SELECT 1 FROM execs e WHERE e.sandbox_id = s.id AND e.state = 'running') ORDER BY rowid",
        this.store.now(),
      )
      .map((r) => r.id);
  }

  /** Destroys a sandbox whose lifetime is over (reason expired), whatever still runs: end its execs first. False when it is not due (or gone already). */
  expire(id: string): boolean {
    const row = this.row(id);
    if (!row || row.state === 'destroyed' || !expired(row, this.store.now())) return false;
    this.destroyRow(row, { keepFork: false, reason: 'expired' });
    return true;
  }

  private hasRunningExecs(id: string): boolean {
    return this.store.db.get<{ n: number }>("SELECT count(*) AS n FROM execs WHERE sandbox_id = ? AND state = 'running'", id)!.n > 0;
  }

  private row(id: string): SandboxRow | undefined {
    return this.store.db.get<SandboxRow>(`${SANDBOX_SQL} WHERE s.id = ?`, id);
  }

  /** An existing vault the caller may use (a tenant: only its own), or VAULT_NOT_FOUND. */
  private visibleVault(name: string, scope: Scope): string {
    const vault = this.store.getVault(name).name;
    if (scope.tenant !== null) {
      const owner = this.store.db.get<{ tenant: string | null }>('SELECT tenant FROM vaults WHERE name = ?', vault)?.tenant ?? null;
      if (owner !== scope.tenant) throw new CorralError('VAULT_NOT_FOUND', `no vault named '${name}'`, { vault: name });
    }
    return vault;
  }

  /** The tenant owning a sandbox (null: the machine's owner). */
  tenantOf(sandboxId: string): string | null {
    return this.store.db.get<{ tenant: string | null }>('SELECT tenant FROM sandboxes WHERE id = ?', sandboxId)?.tenant ?? null;
  }

  /**
   * A tenant's storage quota: the logical size of its vaults' heads, plus `adding` bytes about to be
   * written, against its max_storage_bytes; QUOTA_EXCEEDED when over (the owner has none).
   */
  checkStorageQuota(tenant: string | null, adding = 0): void {
    if (tenant === null) return;
    const max = this.store.db.get<{ max_storage_bytes: number | null }>('SELECT max_storage_bytes FROM tenants WHERE name = ?', tenant)?.max_storage_bytes ?? null;
    if (max === null) return;
    const used = this.store.db.get<{ n: number | null }>('SELECT sum(c.size) AS n FROM vaults v JOIN commits c ON c.id = v.head WHERE v.tenant = ?', tenant)?.n ?? 0;
    if (used + adding > max)
      throw new CorralError('QUOTA_EXCEEDED', `tenant ${tenant} stores ${used} bytes${adding ? ` (+${adding} now)` : ''}, its quota is ${max}: delete files or sandboxes first`, { tenant, quota: 'storage', limit: max, used });
  }

  /** A tenant's quota on live sandboxes (tenants without a row, and the owner, have none). */
  private checkSandboxQuota(scope: Scope): void {
    if (scope.tenant === null) return;
    const max = this.store.db.get<{ max_sandboxes: number | null }>('SELECT max_sandboxes FROM tenants WHERE name = ?', scope.tenant)?.max_sandboxes ?? null;
    if (max === null) return;
    const live = this.store.db.get<{ n: number }>("SELECT count(*) AS n FROM sandboxes WHERE tenant = ? AND state != 'destroyed'", scope.tenant)!.n;
    if (live >= max) throw new CorralError('QUOTA_EXCEEDED', `tenant ${scope.tenant} has ${live} live sandboxes, its quota is ${max}: destroy one first`, { tenant: scope.tenant, quota: 'sandboxes', limit: max });
  }

  /** The live sandbox of this tenant (null: the owner's own) with this name. */
  private findLive(name: string, tenant: string | null): SandboxRow | undefined {
    return this.store.db.get<SandboxRow>(`${SANDBOX_SQL} WHERE s.name = ? AND s.tenant IS ? AND s.state != 'destroyed'`, name, tenant);
  }

  /**
   * A name as the caller means it: a tenant's own sandbox; for the owner (who sees every tenant)
   * the owner's own first, else the one tenant sandbox of that name (several: ambiguous, use the id).
   */
  private findByName(name: string, scope: Scope): SandboxRow | undefined {
    const own = this.findLive(name, scope.tenant);
    if (own || scope.tenant !== null) return own;
    const rows = this.store.db.all<SandboxRow>(`${SANDBOX_SQL} WHERE s.name = ? AND s.state != 'destroyed' LIMIT 2`, name);
    if (rows.length > 1) throw new CorralError('CONFLICT', `several tenants have a sandbox named '${name}': use its id (sbx_…), see corral sandbox list`, { name });
    return rows[0];
  }

  /** The row for an id or a live name; expired ones are destroyed here and answer SANDBOX_NOT_FOUND. */
  private resolve(idOrName: string, scope: Scope): SandboxRow {
    if (typeof idOrName !== 'string') throw invalid('a sandbox id or name must be a string');
    let row: SandboxRow | undefined;
    if (idOrName.startsWith('sbx_')) {
      const shown = idOrName.slice(0, 80);
      if (!isId('sbx', idOrName)) throw invalid(`'${shown}' is not a sandbox id: expected sbx_ followed by 26 base32 characters`, { sandbox: shown });
      row = this.row(idOrName);
    } else {
      row = this.findByName(idOrName, scope);
    }
    // Another tenant's sandbox is answered like a missing one: its existence is not for this caller.
    if (!row || !visible(row, scope)) throw notFound(idOrName);
    if (expired(row, this.store.now())) {
      // With execs still running, the vault must outlive them: the sweep ends them, then destroys it.
      if (row.state !== 'destroyed' && !this.hasRunningExecs(row.id)) this.destroyRow(row, { keepFork: false, reason: 'expired' });
      throw notFound(idOrName);
    }
    return row;
  }

  private destroyRow(row: SandboxRow, options: { keepFork: boolean; reason: 'request' | 'expired' }): void {
    const dropVault = row.forked === 1 && !options.keepFork;
    this.store.write(this.caller, row.vault, { op: 'sandbox.destroy', target: row.id, details: { reason: options.reason, vaultDeleted: dropVault } }, () => {
      if (dropVault && this.store.findVault(row.vault)) {
        // Its warm checkout goes with it: nothing else will ever sync that directory again.
        for (const c of this.checkouts.list(row.vault)) if (c.kind === 'warm') this.checkouts.remove(c.dir);
        try {
          this.vaults.delete(row.vault, true);
        } catch (e) {
          if (!isCorralError(e, 'VAULT_NOT_FOUND')) throw e;
        }
      }
      this.store.db.run("UPDATE sandboxes SET state = 'destroyed', updated_at = ? WHERE id = ? AND state != 'destroyed'", this.store.now(), row.id);
    });
    if (options.reason === 'expired') this.events?.publish('expired', { sandbox: row.id, tenant: row.tenant, data: {} });
    this.events?.publish('destroyed', { sandbox: row.id, tenant: row.tenant, data: { vaultDeleted: dropVault } });
  }
}

function stateError(row: SandboxRow, what: string): CorralError {
  return new CorralError('SANDBOX_STATE', `sandbox ${row.id} is ${row.state}: cannot ${what}`, { sandbox: row.id, state: row.state });
}

function expired(row: SandboxRow, now: number): boolean {
  return row.expires_at !== null && row.expires_at <= now;
}

function visible(row: SandboxRow, scope: Scope): boolean {
  return scope.tenant === null || row.tenant === scope.tenant;
}

/** `key=value` (split at the first '=') as a label filter. */
export function parseLabelFilter(text: string): Record<string, string> {
  const at = text.indexOf('=');
  if (at <= 0) throw invalid(`a label filter is key=value, got '${text.slice(0, 80)}'`, { label: text.slice(0, 80) });
  return { [text.slice(0, at)]: text.slice(at + 1) };
}
