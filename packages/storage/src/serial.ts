/** Runs async operations one at a time, in call order (the stores' single-writer discipline). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Queues `run` after every earlier operation, whether those succeeded or failed. */
  run<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op, op);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
