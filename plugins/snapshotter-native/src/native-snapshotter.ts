import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  diskUsage,
  silentLogger,
  snapshotFilter,
  SnapshotMetaStore,
  type Labels,
  type Logger,
  type Mount,
  type SnapshotCleaner,
  type SnapshotInfo,
  type SnapshotOptions,
  type Snapshotter,
  type SnapshotUsage,
  type StoredSnapshot,
} from '@berth/core';
import { copyTree } from './copy-tree';

export interface NativeSnapshotterOptions {
  logger?: Logger;
}

/** Temp names: `new-*` is a snapshot being built, `rm-<id>` one being deleted. */
const NEW_PREFIX = 'new-';
const RM_PREFIX = 'rm-';

/**
 * containerd's native snapshotter: every snapshot is a plain directory
 * `<root>/snapshots/<id>`, an active one a full copy of its parent, mounted with
 * a bind. Slow and space-hungry, but needs no overlayfs, so it works on any
 * filesystem and inside most sandboxes.
 *
 * Crash safety: a directory is built under `new-<random>` and renamed to its id
 * inside the metadata transaction that creates the row, so a snapshot is visible
 * exactly when that transaction commits. A crash before the commit leaves a
 * `new-*` or an id directory with no row, both removed at the next open; a
 * crash during remove leaves `rm-<id>`, put back if its row survived.
 */
export class NativeSnapshotter implements Snapshotter, SnapshotCleaner {
  private readonly snapshotsDir: string;
  /** Temp directories this process is working on, which cleanup() must not touch. */
  private readonly inFlight = new Set<string>();

  private constructor(
    readonly root: string,
    private readonly store: SnapshotMetaStore,
    private readonly logger: Logger,
  ) {
    this.snapshotsDir = join(root, 'snapshots');
  }

  /** Opens (creating if needed) a snapshotter at `root` and removes leftovers of a crash. */
  static async open(root: string, options: NativeSnapshotterOptions = {}): Promise<NativeSnapshotter> {
    mkdirSync(join(root, 'snapshots'), { recursive: true, mode: 0o700 });
    const store = SnapshotMetaStore.open(join(root, 'metadata.db'), { name: 'native snapshotter' });
    const snapshotter = new NativeSnapshotter(root, store, options.logger ?? silentLogger());
    try {
      await snapshotter.cleanup();
    } catch (err) {
      store.close();
      throw err;
    }
    return snapshotter;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return this.store.getInfo(key).info;
  }

  async update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo> {
    return this.store.updateInfo(info, fieldpaths).info;
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const { id, info, usage } = this.store.getInfo(key);
    // Like containerd: only an active snapshot changes, so only it is measured now.
    return info.kind === 'active' ? diskUsage(this.dirOf(id)) : usage;
  }

  async mounts(key: string): Promise<Mount[]> {
    return this.mountsOf(this.store.getSnapshot(key));
  }

  prepare(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('active', key, parent, options);
  }

  view(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('view', key, parent, options);
  }

  async commit(name: string, key: string, options?: SnapshotOptions): Promise<void> {
    await this.store.commitActive(name, key, options?.labels ?? {}, (id) => diskUsage(this.dirOf(id)));
  }

  async remove(key: string): Promise<void> {
    let doomed: string | undefined;
    let restore: (() => void) | undefined;
    try {
      this.store.transaction(() => {
        const { id } = this.store.remove(key);
        const dir = this.dirOf(id);
        if (!existsSync(dir)) return; // a view on a parent has no directory of its own
        doomed = join(this.snapshotsDir, `${RM_PREFIX}${id}`);
        this.inFlight.add(doomed);
        renameSync(dir, doomed);
        restore = () => renameSync(doomed!, dir);
      });
    } catch (err) {
      // The row is still there: put its directory back under its id.
      if (restore) {
        try {
          restore();
        } catch (restoreErr) {
          this.logger.error({ err: restoreErr, key }, 'native snapshotter: cannot restore directory after failed remove');
        }
      }
      if (doomed) this.inFlight.delete(doomed);
      throw err;
    }
    if (doomed) await this.removeDir(doomed);
  }

  async *walk(filters?: string[]): AsyncIterable<SnapshotInfo> {
    const matches = snapshotFilter(filters);
    const infos = this.store.walkInfo().map(({ info }) => info);
    for (const info of infos) if (matches(info)) yield info;
  }

  async close(): Promise<void> {
    this.store.close();
  }

  /**
   * Removes directories no snapshot owns: `new-*` from interrupted prepares,
   * `rm-*` from interrupted removes (put back when the row survived the crash)
   * and id directories whose row never committed. Work this process has in
   * flight is left alone.
   */
  async cleanup(): Promise<void> {
    const entries = await readdir(this.snapshotsDir);
    // Read after the listing: an id directory in it without a row now never gets one (ids are not reused).
    const snapshots = this.store.idMap();
    for (const entry of entries) {
      const path = join(this.snapshotsDir, entry);
      if (this.inFlight.has(path)) continue;
      if (entry.startsWith(NEW_PREFIX)) {
        await this.removeDir(path);
      } else if (entry.startsWith(RM_PREFIX)) {
        const id = Number(entry.slice(RM_PREFIX.length));
        const home = this.dirOf(id);
        if (snapshots.has(id) && !existsSync(home)) {
          this.logger.warn({ id }, 'native snapshotter: restoring directory of an interrupted remove');
          renameSync(path, home);
        } else {
          await this.removeDir(path);
        }
      } else if (/^\d+$/.test(entry)) {
        const snapshot = snapshots.get(Number(entry));
        if (!snapshot || !this.ownsDir(snapshot)) {
          this.logger.warn({ dir: path }, 'native snapshotter: removing directory with no snapshot');
          await this.removeDir(path);
        }
      }
    }
  }

  private async create(kind: 'active' | 'view', key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    const snapshot = { kind, key, parent, labels: options?.labels ?? {} };
    // Fail fast, before copying anything; createSnapshot checks again.
    const parentId = this.store.checkCreate(snapshot);

    let temp: string | undefined;
    if (kind === 'active' || parentId === null) {
      temp = join(this.snapshotsDir, `${NEW_PREFIX}${randomBytes(8).toString('hex')}`);
      this.inFlight.add(temp);
    }
    try {
      if (temp) {
        if (parentId !== null) await copyTree(this.dirOf(parentId), temp);
        else await mkdir(temp, { mode: 0o755 });
      }
      const directory = temp ? { from: temp, to: (id: number) => this.dirOf(id) } : undefined;
      return this.mountsOf(this.store.createSnapshot({ ...snapshot, parentId }, directory));
    } catch (err) {
      // Nothing committed, and createSnapshot moved a published directory back: whatever was built goes.
      if (temp) await this.removeDir(temp);
      throw err;
    } finally {
      if (temp) this.inFlight.delete(temp);
    }
  }

  /** One bind mount, as containerd's native: an active's own dir, a view's parent dir read-only. */
  private mountsOf(snapshot: StoredSnapshot): Mount[] {
    const source = this.ownsDir(snapshot) ? this.dirOf(snapshot.id) : this.dirOf(snapshot.parentIds[0]);
    return [{ type: 'bind', source, options: ['rbind', snapshot.kind === 'view' ? 'ro' : 'rw'] }];
  }

  /** Whether `snapshot` has a directory of its own (a view on a parent borrows the parent's). */
  private ownsDir(snapshot: StoredSnapshot): boolean {
    return !(snapshot.kind === 'view' && snapshot.parentIds.length > 0);
  }

  private dirOf(id: number): string {
    return join(this.snapshotsDir, String(id));
  }

  private async removeDir(path: string): Promise<void> {
    this.inFlight.add(path);
    try {
      await rm(path, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      // Left for the next cleanup(); the snapshot itself is already gone.
      this.logger.warn({ err, dir: path }, 'native snapshotter: cannot remove directory');
    } finally {
      this.inFlight.delete(path);
    }
  }
}
