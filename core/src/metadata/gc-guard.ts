interface Waiter {
  exclusive: boolean;
  wake: () => void;
}

/**
 * In-process coordination between writers and the garbage collector, the part
 * of containerd's `db.wlock` and content `cs.l` a single sqlite transaction
 * cannot give: some steps span the database and a backend (a blob committed
 * to the content store, then recorded in the db).
 *
 * - Such steps run `shared`; any number at once.
 * - The collector's backend sweep runs `exclusive`: it deletes backend objects
 *   no row names, and must not see one that is committed but not yet recorded.
 *   Waiters are served in order, so a stream of writers cannot starve it.
 * - A live writer holds its ingest (`tryHoldIngest`), so the collector never expires an
 *   ingest someone is still writing to, and a second writer is refused.
 */
export class GcGuard {
  private sharedHolders = 0;
  private exclusiveHeld = false;
  private readonly queue: Waiter[] = [];
  private readonly heldIngests = new Set<string>();

  async shared<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await work();
    } finally {
      this.sharedHolders--;
      this.wakeNext();
    }
  }

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await work();
    } finally {
      this.exclusiveHeld = false;
      this.wakeNext();
    }
  }

  /**
   * Marks the ingest `key` as having a live writer until the returned release
   * is called; undefined if another writer holds it already.
   */
  tryHoldIngest(key: string): (() => void) | undefined {
    if (this.heldIngests.has(key)) return undefined;
    this.heldIngests.add(key);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.heldIngests.delete(key);
    };
  }

  isIngestHeld(key: string): boolean {
    return this.heldIngests.has(key);
  }

  private acquire(exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.canEnter(exclusive)) {
      this.enter(exclusive);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push({ exclusive, wake: resolve }));
  }

  private canEnter(exclusive: boolean): boolean {
    return exclusive ? !this.exclusiveHeld && this.sharedHolders === 0 : !this.exclusiveHeld;
  }

  private enter(exclusive: boolean): void {
    if (exclusive) this.exclusiveHeld = true;
    else this.sharedHolders++;
  }

  private wakeNext(): void {
    while (this.queue.length > 0 && this.canEnter(this.queue[0].exclusive)) {
      const next = this.queue.shift() as Waiter;
      this.enter(next.exclusive);
      next.wake();
      if (next.exclusive) return;
    }
  }
}
