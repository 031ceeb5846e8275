// corral keys create|list|revoke and corral tenants list|quota: API keys and tenants, written to the
// database directly (a running daemon sees them at once: it reads the same SQLite file).
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { keyScopes } from '../../protocol/key-scopes.ts';
import type { QuotaPatch, TenantQuota } from '../../services/key-service.ts';
import { parseCount, parseSize, type CliContext } from '../context.ts';
import { escapeControls, examples, formatBytes, table } from '../output.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface QuotaOptions {
  sandboxes?: string;
  concurrentExecs?: string;
  storage?: string;
  clear?: boolean;
}

/** `none` clears one limit; otherwise a count (or a size for storage). */
function quotaValue(text: string | undefined, parse: (t: string) => number): number | null | undefined {
  if (text === undefined) return undefined;
  return text.trim().toLowerCase() === 'none' ? null : parse(text);
}

export function quotaPatch(opts: QuotaOptions): QuotaPatch | null {
  const sets: QuotaPatch = {};
  const sandboxes = quotaValue(opts.sandboxes, (t) => parseCount(t, 'sandboxes'));
  const concurrentExecs = quotaValue(opts.concurrentExecs, (t) => parseCount(t, 'concurrent-execs'));
  const storageBytes = quotaValue(opts.storage, (t) => parseSize(t, 'storage'));
  if (sandboxes !== undefined) sets.sandboxes = sandboxes;
  if (concurrentExecs !== undefined) sets.concurrentExecs = concurrentExecs;
  if (storageBytes !== undefined) sets.storageBytes = storageBytes;
  if (!opts.clear) return Object.keys(sets).length > 0 ? sets : null;
  // --clear drops every limit, then the ones given on the same line apply.
  return { sandboxes: null, concurrentExecs: null, storageBytes: null, ...sets };
}

function formatQuota(q: TenantQuota): string {
  const parts = [
    `sandboxes ${q.sandboxes ?? 'unlimited'}`,
    `concurrent execs ${q.concurrentExecs ?? 'unlimited'}`,
    `storage ${q.storageBytes === null ? 'unlimited' : formatBytes(q.storageBytes)}`,
  ];
  return parts.join(', ');
}

const when = (iso: string | null): string => (iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

export function registerKeyCommands(program: Command, ctx: CliContext): void {
  const keys = program
    .command('keys')
    .description('API keys for the daemon over TCP: create (the secret is shown once), list, revoke')
    .addHelpText(
      'after',
      `
A key belongs to one tenant, which sees only its own vaults, sandboxes and execs, and carries
scopes: ${keyScopes.join(', ')} (admin implies the others). Only a hash of the secret is stored.
${examples('corral keys create --tenant acme --name ci --scope sandboxes:read --scope sandboxes:write --scope exec', 'corral keys list --tenant acme', 'corral keys revoke key_01k0example0000000000000000')}`,
    );

  keys
    .command('create')
    .description('make an API key for a tenant (creating the tenant) and print its secret, once')
    .requiredOption('--tenant <name>', 'the tenant the key acts for: 1-64 of a-z 0-9 _ -')
    .option('--name <name>', 'a label for the key (what it is for)')
    .option('--scope <scope>', `a scope to grant (repeatable): ${keyScopes.join(', ')}`, collect, [])
    .addHelpText(
      'after',
      `
The secret goes to stdout (with --json, in the document) and cannot be shown again: store it now.
Clients send it as Authorization: Bearer <secret>.
${examples('corral keys create --tenant acme --scope admin', 'export CORRAL_API_KEY=$(corral keys create --tenant acme --name agent --scope exec --scope sandboxes:write)')}`,
    )
    .action(
      ctx.action((opts: { tenant: string; name?: string; scope: string[] }) => {
        if (opts.scope.length === 0) throw new CorralError('INVALID_ARGUMENT', `give at least one --scope: ${keyScopes.join(', ')}`, { allowed: [...keyScopes] });
        const key = ctx.corral.keys.create({ tenant: opts.tenant, scopes: opts.scope, ...(opts.name !== undefined ? { name: opts.name } : {}) });
        // Said even with --json: the document on stdout is the only copy of the secret.
        process.stderr.write(`created ${key.id} for tenant ${key.tenant} (${key.scopes.join(', ')}): the secret cannot be shown again, store it now\n`);
        ctx.out.result(key, (k) => k.secret);
      }),
    );

  keys
    .command('list')
    .alias('ls')
    .description('list API keys (revoked ones too, marked), never their secrets')
    .option('--tenant <name>', "only this tenant's keys")
    .addHelpText('after', examples('corral keys list', 'corral keys list --tenant acme --json'))
    .action(
      ctx.action((opts: { tenant?: string }) => {
        const list = ctx.corral.keys.list(opts.tenant !== undefined ? { tenant: opts.tenant } : {});
        ctx.out.result({ keys: list }, (d, c) =>
          d.keys.length
            ? table([
                ['ID', 'TENANT', 'NAME', 'SCOPES', 'CREATED', 'LAST USED', 'STATE'],
                ...d.keys.map((k) => [k.id, k.tenant, escapeControls(k.name ?? '-'), k.scopes.join(','), when(k.createdAt), when(k.lastUsedAt), k.revoked ? `revoked ${when(k.revokedAt)}` : 'active']),
              ]).map((l, i) => (i === 0 ? c.dim(l) : l))
            : "no API keys: create one with 'corral keys create --tenant NAME --scope SCOPE'",
        );
      }),
    );

  keys
    .command('revoke <id>')
    .description('revoke an API key: the daemon refuses it from the next request on')
    .addHelpText('after', examples('corral keys revoke key_01k0example0000000000000000'))
    .action(
      ctx.action((id: string) => {
        const key = ctx.corral.keys.revoke(id);
        ctx.out.result(key, (k) => `revoked ${k.id} (tenant ${k.tenant}${k.name ? `, ${escapeControls(k.name)}` : ''})`);
      }),
    );

  const tenants = program
    .command('tenants')
    .description('tenants of the daemon (made by their first key): list them, show or set their quotas')
    .addHelpText('after', examples('corral tenants list', 'corral tenants quota acme --sandboxes 10 --concurrent-execs 4 --storage 5g'));

  tenants
    .command('list')
    .alias('ls')
    .description('list tenants with their quotas and active keys')
    .addHelpText('after', examples('corral tenants list', 'corral tenants list --json'))
    .action(
      ctx.action(() => {
        const list = ctx.corral.keys.listTenants();
        ctx.out.result({ tenants: list }, (d, c) =>
          d.tenants.length
            ? table([
                ['TENANT', 'KEYS', 'SANDBOXES', 'CONCURRENT EXECS', 'STORAGE'],
                ...d.tenants.map((t) => [t.name, String(t.activeKeys), String(t.quota.sandboxes ?? '-'), String(t.quota.concurrentExecs ?? '-'), t.quota.storageBytes === null ? '-' : formatBytes(t.quota.storageBytes)]),
              ]).map((l, i) => (i === 0 ? c.dim(l) : l))
            : "no tenants: 'corral keys create --tenant NAME --scope SCOPE' makes one",
        );
      }),
    );

  tenants
    .command('quota <tenant>')
    .description("show a tenant's quotas, or set them (a tenant without a row has no limits)")
    .option('--sandboxes <n>', 'most live sandboxes (none: no limit)')
    .option('--concurrent-execs <n>', 'most execs running at once (none: no limit)')
    .option('--storage <size>', "most bytes in the tenant's vaults: 512m, 10g or bytes (none: no limit)")
    .option('--clear', 'remove every limit (limits given on the same line are then set)')
    .addHelpText('after', examples('corral tenants quota acme', 'corral tenants quota acme --sandboxes 10 --storage 5g', 'corral tenants quota acme --concurrent-execs none', 'corral tenants quota acme --clear --json'))
    .action(
      ctx.action((tenant: string, opts: QuotaOptions) => {
        const patch = quotaPatch(opts);
        const quota = patch === null ? ctx.corral.keys.quota(tenant) : ctx.corral.keys.setQuota(tenant, patch).quota;
        ctx.out.result({ tenant, quota }, (d) => `${patch === null ? 'tenant' : 'set the quota of'} ${d.tenant}: ${formatQuota(d.quota)}`);
      }),
    );
}
