import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  diskUsage,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  silentLogger,
  snapshotFilter,
  updatedLabels,
  validateLabels,
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
import { mountPointsUnder } from './mount-points';
import { snapshotMounts, type SnapshotLayout } from './mounts';
import { defaultOverlayOptions } from './overlay-support';
import { SnapshotDb, type SnapshotRow } from './snapshot-db';

/** Label containerd's `upperdir_label` option adds to every snapshot's info. */
export const UPPERDIR_LABEL = 'containerd.io/snapshot/overlay.upperdir';

/** File name of the snapshotter's metadata database under its root. */
export const OVERLAY_METADATA_DB = 'metadata.db';

const tempPrefix = 'new-';
const snapshotDirName = /^[1-9][0-9]*$/;

export interface OverlaySnapshotterOptions {
  /** Delete a removed snapshot's directory inside remove() instead of leaving it to cleanup(). */
  syncRemove?: boolean;
  /** Add UPPERDIR_LABEL (the snapshot's `fs` path) to the labels stat() and walk() report. */
  upperdirLabel?: boolean;
  /** Extra overlay mount options, after the defaults (`index=off`, `userxattr` when needed). */
  mountOptions?: readonly string[];
  logger?: Logger;
}

/**
 * containerd's overlayfs snapshotter. Each snapshot is a directory
 * `<root>/snapshots/<id>/` holding `fs` (its layer: the upper dir while
 * active) and, while active, overlay's `work` dir; parents become lower dirs.
 * Which snapshots exist is decided by `<root>/metadata.db` alone: a directory
 * is built under a `new-*` name and renamed to its id inside the transaction
 * that inserts its row, so a crash leaves the old state or the new one, and
 * whatever has no row is a leftover that open() and cleanup() delete.
 *
 * This class does not mount anything; callers mount the returned mounts.
 */
export class OverlaySnapshotter implements Snapshotter, SnapshotCleaner {
  private readonly snapshotsDir: string;
  private readonly overlayOptions: readonly string[];
  private readonly logger: Logger;
  /** Temp dirs of prepare()/view() calls under way, which cleanup() must leave alone. */
  private readonly building = new Set<string>();
  private readonly layout: SnapshotLayout = {
    fsPath: (id) => join(this.snapshotDir(id), 'fs'),
    workPath: (id) => join(this.snapshotDir(id), 'work'),
  };

  private constructor(
    readonly root: string,
    private readonly db: SnapshotDb,
    private readonly options: OverlaySnapshotterOptions,
  ) {
    this.snapshotsDir = join(root, 'snapshots');
    this.overlayOptions = [...defaultOverlayOptions(), ...(options.mountOptions ?? [])];
    this.logger = options.logger ?? silentLogger();
  }

  /**
   * Opens the snapshotter at `root`, creating it if needed, and deletes what
   * an interrupted run left behind. Does not check that overlay works here:
   * checkOverlaySupport() does, at plugin init.
   */
  static async open(root: string, options: OverlaySnapshotterOptions = {}): Promise<OverlaySnapshotter> {
    await mkdir(join(root, 'snapshots'), { recursive: true, mode: 0o700 });
    const db = SnapshotDb.open(join(root, OVERLAY_METADATA_DB));
    const snapshotter = new OverlaySnapshotter(root, db, options);
    try {
      await snapshotter.recover();
    } catch (err) {
      db.close();
      throw err;
    }
    return snapshotter;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const db = this.openDb();
    const row = this.existing(db, key);
    return this.info(row, db.labels(row.id));
  }

  async update(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    const db = this.openDb();
    // A client may send back what stat() gave it; the synthetic label is not ours to store.
    const requested = Object.fromEntries(Object.entries(info.labels ?? {}).filter(([k]) => k !== UPPERDIR_LABEL));
    return db.transaction(() => {
      const row = this.existing(db, info.name);
      const labels = updatedLabels(db.labels(row.id), requested, fieldpaths);
      validateLabels(labels);
      db.replaceLabels(row.id, labels, new Date());
      return this.info(this.existing(db, info.name), db.labels(row.id));
    });
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const row = this.existing(this.openDb(), key);
    // Only an active snapshot's layer still changes; a committed one's was measured at commit.
    if (row.kind === 'active') return diskUsage(this.layout.fsPath(row.id));
    return { size: row.size, inodes: row.inodes };
  }

  async mounts(key: string): Promise<Mount[]> {
    const db = this.openDb();
    const row = this.existing(db, key);
    if (row.kind === 'committed') {
      throw new FailedPreconditionError(
        `snapshot ${JSON.stringify(key)} is committed: only active snapshots and views have mounts`,
      );
    }
    return this.mountsOf(db, row);
  }

  async prepare(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('active', key, parent, options);
  }

  async view(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('view', key, parent, options);
  }

  async commit(name: string, key: string, options: SnapshotOptions = {}): Promise<void> {
    const db = this.openDb();
    requireName('name', name);
    const labels = options.labels ?? {};
    validateLabels(labels);
    const active = this.existing(db, key);
    if (active.kind !== 'active') throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is not active`);
    if (db.get(name)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(name)}: already exists`);
    const usage = await diskUsage(this.layout.fsPath(active.id));
    db.transaction(() => {
      // Looked up again: a remove() or another commit may have run while du walked the tree.
      const row = db.get(key);
      if (!row || row.id !== active.id) throw new NotFoundError(`snapshot ${JSON.stringify(key)}: not found`);
      if (row.kind !== 'active') throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is not active`);
      asAlreadyExists(name, () => db.commit(row.id, name, usage, labels, new Date()));
    });
    // Only an active snapshot needs overlay's work dir; a leftover is harmless and open() drops it.
    await rm(this.layout.workPath(active.id), { recursive: true, force: true }).catch((err: unknown) =>
      this.logger.warn({ err, snapshot: name }, 'removing the work dir of a committed snapshot'),
    );
  }

  async remove(key: string): Promise<void> {
    const db = this.openDb();
    const id = db.transaction(() => {
      const row = this.existing(db, key);
      if (db.hasChildren(row.id)) {
        throw new FailedPreconditionError(`cannot remove snapshot ${JSON.stringify(key)}: it has children`);
      }
      db.delete(row.id);
      return row.id;
    });
    if (this.options.syncRemove) await this.removeSnapshotDir(this.snapshotDir(id));
  }

  async *walk(filters: string[] = []): AsyncIterable<SnapshotInfo> {
    const matches = snapshotFilter(filters);
    // Read everything first: the caller may call back into the snapshotter between items.
    const infos = this.openDb()
      .all()
      .map(({ row, labels }) => this.info(row, labels))
      .filter(matches);
    yield* infos;
  }

  /** Deletes the directories of removed snapshots and of interrupted creations. */
  async cleanup(): Promise<void> {
    const names = await readdir(this.snapshotsDir);
    // Ids read after the listing: a directory in it that has no row now never will, as ids are not reused.
    const ids = this.openDb().ids();
    for (const name of names) {
      const path = join(this.snapshotsDir, name);
      if (this.isLeftover(name, ids) && !this.building.has(path)) await this.removeSnapshotDir(path);
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }

  private async create(kind: SnapshotKind, key: string, parent: string, options: SnapshotOptions): Promise<Mount[]> {
    const db = this.openDb();
    requireName('key', key);
    const labels = options.labels ?? {};
    validateLabels(labels);
    // Cheap early answers; the transaction below checks both again.
    if (db.get(key)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}: already exists`);
    const parentRow = parent === '' ? undefined : this.committedParent(db, parent);

    // Named here, not by mkdtemp, so that cleanup() knows it is ours before it exists.
    const temp = join(this.snapshotsDir, `${tempPrefix}${randomBytes(8).toString('hex')}`);
    this.building.add(temp);
    try {
      await mkdir(temp, { mode: 0o700 });
      const fsDir = join(temp, 'fs');
      await mkdir(fsDir);
      if (parentRow) {
        // overlay takes its root dir's owner and mode from the upper dir, so a
        // container sees the image's root, not ours.
        const parentRoot = await stat(this.layout.fsPath(parentRow.id));
        await chown(fsDir, parentRoot.uid, parentRoot.gid);
        await chmod(fsDir, parentRoot.mode & 0o7777);
      } else {
        await chmod(fsDir, 0o755);
      }
      if (kind === 'active') {
        await mkdir(join(temp, 'work'));
        await chmod(join(temp, 'work'), 0o711);
      }
      await fsyncDir(temp);
      const row = this.publish(db, temp, { kind, key, parent, labels });
      return this.mountsOf(db, row);
    } finally {
      this.building.delete(temp);
      await rm(temp, { recursive: true, force: true });
    }
  }

  /**
   * Inserts the row and renames `temp` to the new id in one transaction. If
   * the commit fails after the rename, the directory is taken away again; if
   * the process dies there, the directory has no row and open() deletes it.
   */
  private publish(
    db: SnapshotDb,
    temp: string,
    snapshot: { kind: SnapshotKind; key: string; parent: string; labels: Labels },
  ): SnapshotRow {
    let published: string | undefined;
    try {
      return db.transaction(() => {
        const parentRow = snapshot.parent === '' ? undefined : this.committedParent(db, snapshot.parent);
        const id = asAlreadyExists(snapshot.key, () =>
          db.insert({ ...snapshot, parentId: parentRow?.id ?? null, now: new Date() }),
        );
        const target = this.snapshotDir(id);
        if (existsSync(target)) throw new InternalError(`snapshot directory ${target} exists before its snapshot`);
        renameSync(temp, target);
        published = target;
        // The rename must be on disk before the row that points at it is.
        fsyncDirSync(this.snapshotsDir);
        return this.existing(db, snapshot.key);
      });
    } catch (err) {
      if (published) rmSync(published, { recursive: true, force: true });
      throw err;
    }
  }

  private mountsOf(db: SnapshotDb, row: SnapshotRow): Mount[] {
    return snapshotMounts(this.layout, row, db.ancestors(row.id), this.overlayOptions);
  }

  private committedParent(db: SnapshotDb, parent: string): SnapshotRow {
    const row = db.get(parent);
    if (!row) throw new NotFoundError(`parent snapshot ${JSON.stringify(parent)}: not found`);
    if (row.kind !== 'committed') {
      throw new InvalidArgumentError(`parent snapshot ${JSON.stringify(parent)} is not committed`);
    }
    return row;
  }

  private existing(db: SnapshotDb, key: string): SnapshotRow {
    const row = db.get(key);
    if (!row) throw new NotFoundError(`snapshot ${JSON.stringify(key)}: not found`);
    return row;
  }

  private info(row: SnapshotRow, labels: Labels): SnapshotInfo {
    return {
      kind: row.kind,
      name: row.key,
      parent: row.parentKey,
      labels: this.options.upperdirLabel ? { ...labels, [UPPERDIR_LABEL]: this.layout.fsPath(row.id) } : labels,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  private openDb(): SnapshotDb {
    if (!this.db.isOpen) throw new FailedPreconditionError(`overlay snapshotter at ${this.root} is closed`);
    return this.db;
  }

  private snapshotDir(id: number): string {
    return join(this.snapshotsDir, String(id));
  }

  private isLeftover(name: string, ids: ReadonlySet<number>): boolean {
    return name.startsWith(tempPrefix) || (snapshotDirName.test(name) && !ids.has(Number(name)));
  }

  /** Start-up: delete leftovers, and say so when a snapshot's directory is missing. */
  private async recover(): Promise<void> {
    const names = new Set(await readdir(this.snapshotsDir));
    const ids = this.db.ids();
    for (const name of names) {
      if (this.isLeftover(name, ids)) await this.removeSnapshotDir(join(this.snapshotsDir, name));
    }
    for (const { row } of this.db.all()) {
      if (!names.has(String(row.id))) {
        this.logger.error({ snapshot: row.key, id: row.id }, 'snapshot directory is missing');
      } else if (row.kind !== 'active') {
        await rm(this.layout.workPath(row.id), { recursive: true, force: true });
      }
    }
  }

  private async removeSnapshotDir(path: string): Promise<void> {
    const mounted = mountPointsUnder(path);
    if (mounted.length > 0) {
      // Deleting now would delete through the mount into whatever is mounted there.
      this.logger.warn({ path, mounted }, 'not deleting a snapshot directory that is still mounted on');
      return;
    }
    try {
      await rm(path, { recursive: true, force: true });
    } catch (err) {
      this.logger.warn({ err, path }, 'deleting a snapshot directory');
    }
  }
}

function requireName(what: string, value: string): void {
  if (typeof value !== 'string' || value === '') throw new InvalidArgumentError(`snapshot ${what} must not be empty`);
}

/** Runs `write`, turning a UNIQUE violation on the key into AlreadyExists. */
function asAlreadyExists<T>(key: string, write: () => T): T {
  try {
    return write();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
      throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}: already exists`, { cause: err });
    }
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
