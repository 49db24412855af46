/**
 * Discrete-event simulation primitives: an agenda of timed actions and a FIFO. Actions
 * due at the same time run in the order they were scheduled, which is what makes a run
 * deterministic.
 */

interface Entry {
  t: number;
  n: number;
  action: () => void;
}

const before = (a: Entry, b: Entry): boolean => a.t < b.t || (a.t === b.t && a.n < b.n);

/** Binary min-heap of actions keyed by (time, scheduling order). Times are seconds. */
export class Agenda {
  now = 0;
  private readonly heap: Entry[] = [];
  private scheduled = 0;

  at(t: number, action: () => void): void {
    const heap = this.heap;
    heap.push({ t: Math.max(t, this.now), n: this.scheduled++, action });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  after(delay: number, action: () => void): void {
    this.at(this.now + delay, action);
  }

  /** Runs the earliest action; false when nothing is left. */
  runNext(): boolean {
    const heap = this.heap;
    const top = heap[0];
    if (!top) return false;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    this.now = top.t;
    top.action();
    return true;
  }
}

/** Queue with O(1) push and shift (Array#shift is O(n) on a long waiting line). */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes and returns everything still queued. */
  drain(): T[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}
