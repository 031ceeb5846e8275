// API keys and tenants. A key belongs to one tenant and carries scopes; its secret is shown once
// at creation and only its sha256 is stored, so the database alone cannot authenticate anyone.
// Tenants hold the quotas (sandboxes, concurrent execs, storage) the services enforce.
import { randomBytes } from 'node:crypto';
import { CorralError } from '../protocol/errors.ts';
import { isId, newId } from '../protocol/ids.ts';
import { validateKeyScopes, validateTenantName, type KeyScope } from '../protocol/key-scopes.ts';
import type { Caller, CorralStore } from '../store/corral-store.ts';
import { sha256 } from '../store/object-store.ts';
import type { ServiceDeps } from './corral.ts';

export interface ApiKey {
  id: string;
  tenant: string;
  name: string | null;
  scopes: KeyScope[];
  createdAt: string;
  lastUsedAt: string | null;
  revoked: boolean;
  revokedAt: string | null;
}

/** A new key: the only time its secret exists outside the client that holds it. */
export interface CreatedKey {
  id: string;
  /** `crl_` + 43 base64url characters (256 random bits). Not stored: it cannot be shown again. */
  secret: string;
  tenant: string;
  name: string | null;
  scopes: KeyScope[];
  createdAt: string;
}

/** What a verified secret grants. */
export interface VerifiedKey {
  keyId: string;
  tenant: string;
  scopes: KeyScope[];
}

/** A tenant's limits; null is no limit. */
export interface TenantQuota {
  /** Live (not destroyed) sandboxes. */
  sandboxes: number | null;
  /** Execs running at once. */
  concurrentExecs: number | null;
  /** Bytes held by the tenant's vaults. */
  storageBytes: number | null;
}

export interface Tenant {
  name: string;
  quota: TenantQuota;
  /** Keys not revoked. */
  activeKeys: number;
  createdAt: string;
}

/** A change to a quota: a number sets a limit, null clears it, an absent field stays as it is. */
export type QuotaPatch = { [K in keyof TenantQuota]?: number | null };

interface KeyRow {
  id: string;
  tenant: string;
  name: string | null;
  scopes: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

interface TenantRow {
  name: string;
  max_sandboxes: number | null;
  max_concurrent_execs: number | null;
  max_storage_bytes: number | null;
  created_at: number;
  keys: number;
}

const SECRET_PREFIX = 'crl_';
const SECRET = /^crl_[A-Za-z0-9_-]{43}$/;
const MAX_KEY_NAME = 128;
// Printable text only: key names are shown in terminals and logs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
/** last_used_at is written at most this often per key, so verifying is a read on the hot path. */
export const LAST_USED_RESOLUTION_MS = 60_000;

const quotaColumns = { sandboxes: 'max_sandboxes', concurrentExecs: 'max_concurrent_execs', storageBytes: 'max_storage_bytes' } as const;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function toKey(r: KeyRow): ApiKey {
  return {
    id: r.id,
    tenant: r.tenant,
    name: r.name,
    scopes: JSON.parse(r.scopes) as KeyScope[],
    createdAt: iso(r.created_at)!,
    lastUsedAt: iso(r.last_used_at),
    revoked: r.revoked_at !== null,
    revokedAt: iso(r.revoked_at),
  };
}

function toTenant(r: TenantRow): Tenant {
  return {
    name: r.name,
    quota: { sandboxes: r.max_sandboxes, concurrentExecs: r.max_concurrent_execs, storageBytes: r.max_storage_bytes },
    activeKeys: r.keys,
    createdAt: iso(r.created_at)!,
  };
}

/** One message for every failure (missing, malformed, unknown, revoked): no oracle for a guesser. */
export function unauthenticated(): CorralError {
  return new CorralError('UNAUTHENTICATED', 'a valid API key is required: send Authorization: Bearer <secret> (the machine owner creates keys with corral keys create)', {});
}

function validateKeyName(name: unknown): string | null {
  if (name === undefined || name === null) return null;
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_KEY_NAME || CONTROL.test(name))
    throw new CorralError('INVALID_NAME', `a key name must be 1-${MAX_KEY_NAME} printable characters`, { name: String(name).slice(0, 80) });
  return name;
}

function validateKeyId(id: unknown): string {
  if (!isId('key', id)) {
    const shown = String(id).slice(0, 80);
    throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not a key id: expected key_ followed by 26 base32 characters (corral keys list shows them)`, { key: shown });
  }
  return id;
}

function validateQuotaPatch(patch: unknown): QuotaPatch {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new CorralError('INVALID_ARGUMENT', 'a quota must be an object of sandboxes, concurrentExecs, storageBytes');
  const out: QuotaPatch = {};
  for (const [k, v] of Object.entries(patch)) {
    if (!(k in quotaColumns)) throw new CorralError('INVALID_ARGUMENT', `unknown quota '${k.slice(0, 40)}': use ${Object.keys(quotaColumns).join(', ')}`, { quota: k.slice(0, 40) });
    if (v === undefined) continue;
    if (v !== null && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0))
      throw new CorralError('INVALID_ARGUMENT', `the ${k} quota must be a whole number of 0 or more, or null to clear it; got ${String(v).slice(0, 40)}`, { quota: k });
    out[k as keyof TenantQuota] = v as number | null;
  }
  return out;
}

export class KeyService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor(deps: ServiceDeps) {
    this.store = deps.store;
    this.caller = deps.caller;
  }

  /** Makes a key for `tenant` (the tenant row too, when missing). The secret is in the answer and nowhere else. */
  create(input: { tenant: string; name?: string | null; scopes: readonly string[] }): CreatedKey {
    const tenant = validateTenantName(input.tenant);
    const name = validateKeyName(input.name);
    const scopes = validateKeyScopes(input.scopes);
    const now = this.store.now();
    const id = newId('key', now);
    const secret = SECRET_PREFIX + randomBytes(32).toString('base64url');
    this.store.write(this.caller, null, { op: 'key.create', target: id, details: { tenant, name, scopes } }, () => {
      this.store.db.run('INSERT OR IGNORE INTO tenants(name, created_at) VALUES (?, ?)', tenant, now);
      this.store.db.run('INSERT INTO api_keys(id, tenant, name, scopes, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)', id, tenant, name, JSON.stringify(scopes), sha256(secret), now);
    });
    return { id, secret, tenant, name, scopes, createdAt: iso(now)! };
  }

  /** Keys, oldest first (revoked ones too, flagged); never a secret or a hash. */
  list(filter: { tenant?: string } = {}): ApiKey[] {
    const cols = 'id, tenant, name, scopes, created_at, last_used_at, revoked_at';
    if (filter.tenant === undefined) return this.store.db.all<KeyRow>(`SELECT ${cols} FROM api_keys ORDER BY created_at, id`).map(toKey);
    const tenant = validateTenantName(filter.tenant);
    return this.store.db.all<KeyRow>(`SELECT ${cols} FROM api_keys WHERE tenant = ? ORDER BY created_at, id`, tenant).map(toKey);
  }

  /** Revokes a key at once (the daemon's next request with it fails). Revoking a revoked key changes nothing. */
  revoke(id: string): ApiKey {
    const keyId = validateKeyId(id);
    let already = false;
    return this.store.write(
      this.caller,
      null,
      { op: 'key.revoke', target: keyId },
      () => {
        const row = this.keyRow(keyId);
        if (!row) throw new CorralError('KEY_NOT_FOUND', `no API key '${keyId}': corral keys list shows them`, { key: keyId });
        already = row.revoked_at !== null;
        if (!already) this.store.db.run('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', this.store.now(), keyId);
        return toKey(this.keyRow(keyId)!);
      },
      (k) => ({ tenant: k.tenant, alreadyRevoked: already }),
    );
  }

  /**
   * What `secret` grants, or UNAUTHENTICATED (one message whether it is malformed, unknown or
   * revoked). Records the use at most once a minute per key, so most calls only read.
   */
  verify(secret: unknown): VerifiedKey {
    if (typeof secret !== 'string' || !SECRET.test(secret)) throw unauthenticated();
    // Looked up by the hash: the secret's bytes are never compared, so timing tells nothing of them.
    const row = this.store.db.get<KeyRow>('SELECT id, tenant, scopes, last_used_at, revoked_at FROM api_keys WHERE hash = ?', sha256(secret));
    if (!row || row.revoked_at !== null) throw unauthenticated();
    const now = this.store.now();
    if (row.last_used_at === null || now - row.last_used_at >= LAST_USED_RESOLUTION_MS) {
      try {
        this.store.db.run('UPDATE api_keys SET last_used_at = ? WHERE id = ?', now, row.id);
      } catch {
        // A busy or read-only database must not turn a valid key away: the timestamp is a hint.
      }
    }
    return { keyId: row.id, tenant: row.tenant, scopes: JSON.parse(row.scopes) as KeyScope[] };
  }

  /** Changes a tenant's quota (creating the tenant row when missing); returns the tenant. */
  setQuota(tenant: string, patch: QuotaPatch): Tenant {
    const name = validateTenantName(tenant);
    const changes = validateQuotaPatch(patch);
    return this.store.write(this.caller, null, { op: 'tenant.quota', target: name, details: { ...changes } }, () => {
      this.store.db.run('INSERT OR IGNORE INTO tenants(name, created_at) VALUES (?, ?)', name, this.store.now());
      for (const [k, v] of Object.entries(changes)) this.store.db.run(`UPDATE tenants SET ${quotaColumns[k as keyof TenantQuota]} = ? WHERE name = ?`, v, name);
      return toTenant(this.tenantRow(name)!);
    });
  }

  /** A tenant's quota; a tenant without a row has no limits. */
  quota(tenant: string): TenantQuota {
    const row = this.tenantRow(validateTenantName(tenant));
    return row ? toTenant(row).quota : { sandboxes: null, concurrentExecs: null, storageBytes: null };
  }

  /** One tenant, or undefined when it has no row. */
  findTenant(tenant: string): Tenant | undefined {
    const row = this.tenantRow(validateTenantName(tenant));
    return row && toTenant(row);
  }

  /** Every tenant with a row (made by a key or a quota), by name. */
  listTenants(): Tenant[] {
    return this.store.db.all<TenantRow>(`${TENANT_SELECT} ORDER BY t.name`).map(toTenant);
  }

  private keyRow(id: string): KeyRow | undefined {
    return this.store.db.get<KeyRow>('SELECT id, tenant, name, scopes, created_at, last_used_at, revoked_at FROM api_keys WHERE id = ?', id);
  }

  private tenantRow(name: string): TenantRow | undefined {
    return this.store.db.get<TenantRow>(`${TENANT_SELECT} WHERE t.name = ?`, name);
  }
}

const TENANT_SELECT =
  'SELECT t.name, t.max_sandboxes, t.max_concurrent_execs, t.max_storage_bytes, t.created_at, (SELECT count(*) FROM api_keys k WHERE k.tenant = t.name AND k.revoked_at IS NULL) AS keys FROM tenants t';
