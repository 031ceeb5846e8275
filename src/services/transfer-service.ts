// Placeholder: filled in by its own work package.
import type { Caller, CorralStore } from '../store/corral-store.ts';
import type { ServiceDeps } from './corral.ts';

export class TransferService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }
}
