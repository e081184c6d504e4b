import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../errdefs';
import { updatedLabels } from '../../snapshots/labels';
import type {
  Mount,
  SnapshotCleaner,
  SnapshotInfo,
  SnapshotKind,
  SnapshotOptions,
  Snapshotter,
  SnapshotUsage,
} from '../../snapshots/types';
import { snapshotFilter } from '../../snapshots/walk-filter';
import type { Labels } from '../types';

interface Entry {
  kind: SnapshotKind;
  parent: string;
  labels: Labels;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * A raw snapshotter in memory with containerd's rules, for tests of the
 * layers above it. Mounts are fake binds of `/memory/<key>`; every call is
 * recorded in `calls`, and `failNext` makes the next call of a method fail.
 */
export class MemorySnapshotter implements Snapshotter, SnapshotCleaner {
  readonly snapshots = new Map<string, Entry>();
  readonly calls: { method: string; args: unknown[] }[] = [];
  cleanups = 0;
  private failures = new Map<string, Error>();

  failNext(method: keyof Snapshotter, err: Error): void {
    this.failures.set(method, err);
  }

  async stat(key: string): Promise<SnapshotInfo> {
    this.record('stat', key);
    return this.info(key, this.get(key));
  }

  async update(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    this.record('update', info, fieldpaths);
    const entry = this.get(info.name);
    entry.labels = updatedLabels(entry.labels, info.labels, fieldpaths);
    entry.updatedAt = new Date();
    return this.info(info.name, entry);
  }

  async usage(key: string): Promise<SnapshotUsage> {
    this.record('usage', key);
    this.get(key);
    return { size: 4096, inodes: 1 };
  }

  async mounts(key: string): Promise<Mount[]> {
    this.record('mounts', key);
    const entry = this.get(key);
    if (entry.kind === 'committed') throw new FailedPreconditionError(`snapshot ${key} is committed`);
    return this.mountsOf(key, entry);
  }

  async prepare(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    this.record('prepare', key, parent, options);
    return this.create('active', key, parent, options);
  }

  async view(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    this.record('view', key, parent, options);
    return this.create('view', key, parent, options);
  }

  async commit(name: string, key: string, options: SnapshotOptions = {}): Promise<void> {
    this.record('commit', name, key, options);
    const entry = this.get(key);
    if (entry.kind !== 'active') throw new FailedPreconditionError(`snapshot ${key} is not active`);
    if (this.snapshots.has(name)) throw new AlreadyExistsError(`snapshot ${name}: already exists`);
    this.snapshots.delete(key);
    const now = new Date();
    this.snapshots.set(name, { kind: 'committed', parent: entry.parent, labels: { ...(options.labels ?? {}) }, createdAt: now, updatedAt: now });
  }

  async remove(key: string): Promise<void> {
    this.record('remove', key);
    this.get(key);
    for (const entry of this.snapshots.values()) {
      if (entry.parent === key) throw new FailedPreconditionError(`cannot remove snapshot ${key}: it has children`);
    }
    this.snapshots.delete(key);
  }

  async *walk(filters: string[] = []): AsyncIterable<SnapshotInfo> {
    this.record('walk', filters);
    const matches = snapshotFilter(filters);
    const infos = [...this.snapshots].map(([key, entry]) => this.info(key, entry)).filter(matches);
    yield* infos;
  }

  async cleanup(): Promise<void> {
    this.record('cleanup');
    this.cleanups++;
  }

  async close(): Promise<void> {}

  /** Calls of one method, by their first argument. */
  keysOf(method: string): unknown[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args[0]);
  }

  private create(kind: SnapshotKind, key: string, parent: string, options: SnapshotOptions): Mount[] {
    if (this.snapshots.has(key)) throw new AlreadyExistsError(`snapshot ${key}: already exists`);
    if (parent !== '') {
      const p = this.snapshots.get(parent);
      if (!p) throw new NotFoundError(`parent ${parent}: not found`);
      if (p.kind !== 'committed') throw new InvalidArgumentError(`parent ${parent} is not committed`);
    }
    const now = new Date();
    const entry: Entry = { kind, parent, labels: { ...(options.labels ?? {}) }, createdAt: now, updatedAt: now };
    this.snapshots.set(key, entry);
    return this.mountsOf(key, entry);
  }

  private mountsOf(key: string, entry: Entry): Mount[] {
    return [{ type: 'bind', source: `/memory/${key}`, options: ['rbind', entry.kind === 'view' ? 'ro' : 'rw'] }];
  }

  private get(key: string): Entry {
    const entry = this.snapshots.get(key);
    if (!entry) throw new NotFoundError(`snapshot ${key}: not found`);
    return entry;
  }

  private info(name: string, entry: Entry): SnapshotInfo {
    return { name, kind: entry.kind, parent: entry.parent, labels: { ...entry.labels }, createdAt: entry.createdAt, updatedAt: entry.updatedAt };
  }

  private record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
    const failure = this.failures.get(method);
    if (failure) {
      this.failures.delete(method);
      throw failure;
    }
  }
}
