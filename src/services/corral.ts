// Opens a Corral home and wires the services over it: the one entry point the CLI (and later the
// daemon) uses. Every service gets the store and the caller passed in; none holds global state.
import { CorralStore, defaultHome, type Caller, type StoreOptions } from '../store/corral-store.ts';
import { VaultService } from './vault-service.ts';
import { FileService } from './file-service.ts';
import { HistoryService } from './history-service.ts';
import { CheckpointService } from './checkpoint-service.ts';
import { SearchService } from './search-service.ts';
import { TagService } from './tag-service.ts';
import { TransferService } from './transfer-service.ts';
import { BundleService } from './bundle-service.ts';
import { MaintenanceService } from './maintenance-service.ts';
import { CheckoutService } from './checkout-service.ts';
import { ApprovalService } from './approval-service.ts';
import { ExecService } from './exec-service.ts';
import { SandboxService } from './sandbox-service.ts';
import { EventBus } from './event-bus.ts';
import { SandboxFiles } from './sandbox-files.ts';
import { ExecSessions } from './exec-sessions.ts';
import { ProcessService } from './process-service.ts';
import { KeyService } from './key-service.ts';
import { SandboxLifecycle } from './sandbox-lifecycle.ts';

export interface CorralOptions extends StoreOptions {
  home?: string;
  caller: Caller;
}

export class Corral {
  readonly store: CorralStore;
  readonly caller: Caller;
  readonly vaults: VaultService;
  readonly files: FileService;
  readonly history: HistoryService;
  readonly checkpoints: CheckpointService;
  readonly search: SearchService;
  readonly tags: TagService;
  readonly transfer: TransferService;
  readonly bundles: BundleService;
  readonly maintenance: MaintenanceService;
  readonly checkouts: CheckoutService;
  readonly approvals: ApprovalService;
  readonly exec: ExecService;
  readonly sandboxes: SandboxService;
  /** Events of sandboxes, execs and approvals in this process (the daemon's streams and metrics read them). */
  readonly events: EventBus;
  /** Execs in sandboxes as live objects: background, streaming, durable output, wait and kill. */
  readonly execs: ExecSessions;
  /** Named long-running processes of sandboxes (runs are background execs), with restart policies and logs. */
  readonly processes: ProcessService;
  /** API keys and tenants (their quotas). */
  readonly keys: KeyService;
  /** A sandbox's files (its vault) for the API: read, write, edit, list, tar down and up, watch. */
  readonly sandboxFiles: SandboxFiles;
  /** Extend, pause and resume, checkpoints of sandboxes, and the daemon's sweep (TTL expiry, idle auto-stop). */
  readonly lifecycle: SandboxLifecycle;

  constructor(options: CorralOptions) {
    this.caller = options.caller;
    this.store = new CorralStore(options.home ?? defaultHome(), options);
    this.events = new EventBus(() => this.store.now());
    const deps = { store: this.store, caller: this.caller };
    this.vaults = new VaultService(deps);
    this.files = new FileService(deps);
    this.history = new HistoryService(deps);
    this.checkpoints = new CheckpointService(deps);
    this.search = new SearchService(deps);
    this.tags = new TagService(deps);
    this.transfer = new TransferService(deps);
    this.bundles = new BundleService(deps);
    this.maintenance = new MaintenanceService(deps);
    this.checkouts = new CheckoutService(deps);
    this.approvals = new ApprovalService({ ...deps, events: this.events });
    this.exec = new ExecService({ ...deps, checkouts: this.checkouts, checkpoints: this.checkpoints, approvals: this.approvals });
    this.sandboxes = new SandboxService({ ...deps, vaults: this.vaults, checkouts: this.checkouts, events: this.events });
    this.execs = new ExecSessions({ store: this.store, sandboxes: this.sandboxes, exec: this.exec, events: this.events });
    this.processes = new ProcessService({ store: this.store, sandboxes: this.sandboxes, execs: this.execs });
    this.keys = new KeyService(deps);
    this.lifecycle = new SandboxLifecycle({ store: this.store, sandboxes: this.sandboxes, execs: this.execs, checkpoints: this.checkpoints, events: this.events });
    this.sandboxFiles = new SandboxFiles({ store: this.store, sandboxes: this.sandboxes, files: this.files, transfer: this.transfer });
  }

  close(): void {
    this.store.close();
  }
}

/** What every service is built from. */
export interface ServiceDeps {
  store: CorralStore;
  caller: Caller;
}
