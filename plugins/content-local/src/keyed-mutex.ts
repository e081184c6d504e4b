/**
 * Runs async work one at a time per key, in call order. Different keys run
 * concurrently. Used so that publishing, deleting and relabelling one blob
 * never interleave.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = new Promise<void>((resolve) => (release = resolve));
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      // Only the last waiter's tail is in the map; drop it so the map stays small.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
