/**
 * Open connections per peer host, for `--max-connections-per-address`: one
 * host (a misbehaving worker, a script in a loop) cannot take every slot of
 * `--max-connections`. A host is the address without its port (hostOf).
 */
export class AddressCounts {
  private readonly byHost = new Map<string, number>();

  /** One more connection from `host`; returns how many it has now. */
  add(host: string): number {
    const n = (this.byHost.get(host) ?? 0) + 1;
    this.byHost.set(host, n);
    return n;
  }

  /** A connection from `host` is gone. */
  remove(host: string): void {
    const n = this.byHost.get(host);
    if (n === undefined) return;
    if (n <= 1) this.byHost.delete(host);
    else this.byHost.set(host, n - 1);
  }
}
