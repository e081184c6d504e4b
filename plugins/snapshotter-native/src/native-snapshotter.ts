import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  diskUsage,
  FailedPreconditionError,
  InvalidArgumentError,
  silentLogger,
  snapshotFilter,
  updatedLabels,
  type Labels,
  type Logger,
  type Mount,
  type SnapshotCleaner,
  type SnapshotInfo,
  type SnapshotKind,
  type SnapshotOptions,
  type Snapshotter,
  type SnapshotUsage,
} from '@berth/core';
import { copyTree } from './copy-tree';
import { SnapshotDb, type SnapshotRow } from './snapshot-db';

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
    private readonly db: SnapshotDb,
    private readonly logger: Logger,
  ) {
    this.snapshotsDir = join(root, 'snapshots');
  }

  /** Opens (creating if needed) a snapshotter at `root` and removes leftovers of a crash. */
  static async open(root: string, options: NativeSnapshotterOptions = {}): Promise<NativeSnapshotter> {
    mkdirSync(join(root, 'snapshots'), { recursive: true, mode: 0o700 });
    const db = new SnapshotDb(join(root, 'metadata.db'));
    const snapshotter = new NativeSnapshotter(root, db, options.logger ?? silentLogger());
    try {
      await snapshotter.cleanup();
    } catch (err) {
      db.close();
      throw err;
    }
    return snapshotter;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return this.db.info(this.db.mustGet(key));
  }

  async update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo> {
    return this.db.transaction(() => {
      const row = this.db.mustGet(info.name);
      const labels = updatedLabels(this.db.labels(row.id), info.labels ?? {}, fieldpaths);
      this.db.setLabels(row.id, labels);
      this.db.touch(row.id, Date.now());
      return this.db.info(this.db.mustGet(info.name));
    });
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const row = this.db.mustGet(key);
    // Like containerd: only an active snapshot changes, so only it is measured now.
    if (row.kind !== 'active') return { size: row.usageSize, inodes: row.usageInodes };
    return diskUsage(this.dirOf(row.id));
  }

  async mounts(key: string): Promise<Mount[]> {
    const row = this.db.mustGet(key);
    if (row.kind === 'committed') {
      throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is committed: only active snapshots and views have mounts`);
    }
    return this.mountsOf(row);
  }

  prepare(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('active', key, parent, options);
  }

  view(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('view', key, parent, options);
  }

  async commit(name: string, key: string, options?: SnapshotOptions): Promise<void> {
    if (!name) throw new InvalidArgumentError('snapshot name must not be empty');
    const active = this.activeRow(key);
    // Measured outside the transaction: du of a large tree takes a while.
    const usage = await diskUsage(this.dirOf(active.id));
    this.db.transaction(() => {
      const row = this.activeRow(key);
      if (row.id !== active.id) throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} changed during commit`);
      this.db.commit(row, name, usage, options?.labels ?? {}, Date.now());
    });
  }

  async remove(key: string): Promise<void> {
    let doomed: string | undefined;
    let restore: (() => void) | undefined;
    try {
      this.db.transaction(() => {
        const row = this.db.mustGet(key);
        if (this.db.hasChildren(row.id)) {
          throw new FailedPreconditionError(`cannot remove snapshot ${JSON.stringify(key)}: it has children`);
        }
        this.db.delete(row.id);
        const dir = this.dirOf(row.id);
        if (!existsSync(dir)) return; // a view on a parent has no directory of its own
        doomed = join(this.snapshotsDir, `${RM_PREFIX}${row.id}`);
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
    const infos = this.db.all().map((row) => this.db.info(row));
    for (const info of infos) if (matches(info)) yield info;
  }

  async close(): Promise<void> {
    this.db.close();
  }

  /**
   * Removes directories no snapshot owns: `new-*` from interrupted prepares,
   * `rm-*` from interrupted removes (put back when the row survived the crash)
   * and id directories whose row never committed. Work this process has in
   * flight is left alone.
   */
  async cleanup(): Promise<void> {
    const entries = await readdir(this.snapshotsDir);
    for (const entry of entries) {
      const path = join(this.snapshotsDir, entry);
      if (this.inFlight.has(path)) continue;
      if (entry.startsWith(NEW_PREFIX)) {
        await this.removeDir(path);
      } else if (entry.startsWith(RM_PREFIX)) {
        const id = Number(entry.slice(RM_PREFIX.length));
        const home = this.dirOf(id);
        if (this.db.byId(id) && !existsSync(home)) {
          this.logger.warn({ id }, 'native snapshotter: restoring directory of an interrupted remove');
          renameSync(path, home);
        } else {
          await this.removeDir(path);
        }
      } else if (/^\d+$/.test(entry)) {
        const row = this.db.byId(Number(entry));
        if (!row || !this.ownsDir(row)) {
          this.logger.warn({ dir: path }, 'native snapshotter: removing directory with no snapshot');
          await this.removeDir(path);
        }
      }
    }
  }

  private async create(kind: SnapshotKind, key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    if (!key) throw new InvalidArgumentError('snapshot key must not be empty');
    // Fail fast, before copying anything; the transaction checks again.
    const parentRow = parent ? this.db.parent(parent) : undefined;
    if (this.db.get(key)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}: already exists`);
    const labels = options?.labels ?? {};

    let temp: string | undefined;
    if (kind === 'active' || !parentRow) {
      temp = join(this.snapshotsDir, `${NEW_PREFIX}${randomBytes(8).toString('hex')}`);
      this.inFlight.add(temp);
    }
    let renamedTo: string | undefined;
    try {
      if (temp) {
        if (parentRow) await copyTree(this.dirOf(parentRow.id), temp);
        else await mkdir(temp, { mode: 0o755 });
      }
      const row = this.db.transaction(() => {
        const current = parent ? this.db.parent(parent) : undefined;
        if (current?.id !== parentRow?.id) {
          throw new FailedPreconditionError(`parent ${JSON.stringify(parent)} changed while preparing ${JSON.stringify(key)}`);
        }
        const created = this.db.insert(key, kind, current?.id ?? null, labels, Date.now());
        if (temp) {
          renamedTo = this.dirOf(created.id);
          renameSync(temp, renamedTo);
          // The rename must be on disk before the row that points at it is.
          syncDir(this.snapshotsDir);
        }
        return created;
      });
      return this.mountsOf(row);
    } catch (err) {
      // Nothing committed: whatever was built goes.
      const leftover = renamedTo && existsSync(renamedTo) ? renamedTo : temp;
      if (leftover) await this.removeDir(leftover);
      throw err;
    } finally {
      if (temp) this.inFlight.delete(temp);
    }
  }

  private activeRow(key: string): SnapshotRow {
    const row = this.db.mustGet(key);
    if (row.kind !== 'active') {
      throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is not active (it is ${row.kind})`);
    }
    return row;
  }

  /** One bind mount, as containerd's native: an active's own dir, a view's parent dir read-only. */
  private mountsOf(row: SnapshotRow): Mount[] {
    const source = row.kind === 'view' && row.parentId !== null ? this.dirOf(row.parentId) : this.dirOf(row.id);
    return [{ type: 'bind', source, options: ['rbind', row.kind === 'view' ? 'ro' : 'rw'] }];
  }

  /** Whether `row` has a directory of its own (a view on a parent borrows the parent's). */
  private ownsDir(row: SnapshotRow): boolean {
    return !(row.kind === 'view' && row.parentId !== null);
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

function syncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
