import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
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
  type StoredInfo,
  type StoredSnapshot,
} from '@berth/core';
import { mountPointsUnder } from './mount-points';
import { snapshotMounts, type SnapshotLayout } from './mounts';
import { defaultOverlayOptions } from './overlay-support';

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
    private readonly store: SnapshotMetaStore,
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
    const store = SnapshotMetaStore.open(join(root, OVERLAY_METADATA_DB), { name: `overlay snapshotter at ${root}` });
    const snapshotter = new OverlaySnapshotter(root, store, options);
    try {
      await snapshotter.recover();
    } catch (err) {
      store.close();
      throw err;
    }
    return snapshotter;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return this.info(this.store.getInfo(key));
  }

  async update(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    // A client may send back what stat() gave it; the synthetic label is not ours to store.
    const labels = Object.fromEntries(Object.entries(info.labels ?? {}).filter(([k]) => k !== UPPERDIR_LABEL));
    return this.info(this.store.updateInfo({ name: info.name, labels }, fieldpaths));
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const { id, info, usage } = this.store.getInfo(key);
    // Only an active snapshot's layer still changes; a committed one's was measured at commit.
    return info.kind === 'active' ? diskUsage(this.layout.fsPath(id)) : usage;
  }

  async mounts(key: string): Promise<Mount[]> {
    return this.mountsOf(this.store.getSnapshot(key));
  }

  async prepare(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('active', key, parent, options);
  }

  async view(key: string, parent: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('view', key, parent, options);
  }

  async commit(name: string, key: string, options: SnapshotOptions = {}): Promise<void> {
    const measure = (id: number) => diskUsage(this.layout.fsPath(id));
    const id = await this.store.commitActive(name, key, options.labels ?? {}, measure);
    // Only an active snapshot needs overlay's work dir; a leftover is harmless and open() drops it.
    await rm(this.layout.workPath(id), { recursive: true, force: true }).catch((err: unknown) =>
      this.logger.warn({ err, snapshot: name }, 'removing the work dir of a committed snapshot'),
    );
  }

  async remove(key: string): Promise<void> {
    const { id } = this.store.remove(key);
    if (this.options.syncRemove) await this.removeSnapshotDir(this.snapshotDir(id));
  }

  async *walk(filters: string[] = []): AsyncIterable<SnapshotInfo> {
    const matches = snapshotFilter(filters);
    // Read everything first: the caller may call back into the snapshotter between items.
    const infos = this.store
      .walkInfo()
      .map((stored) => this.info(stored))
      .filter(matches);
    yield* infos;
  }

  /** Deletes the directories of removed snapshots and of interrupted creations. */
  async cleanup(): Promise<void> {
    const names = await readdir(this.snapshotsDir);
    // Ids read after the listing: a directory in it that has no row now never will, as ids are not reused.
    const ids = this.store.idMap();
    for (const name of names) {
      const path = join(this.snapshotsDir, name);
      if (this.isLeftover(name, ids) && !this.building.has(path)) await this.removeSnapshotDir(path);
    }
  }

  async close(): Promise<void> {
    this.store.close();
  }

  private async create(kind: 'active' | 'view', key: string, parent: string, options: SnapshotOptions): Promise<Mount[]> {
    const snapshot = { kind, key, parent, labels: options.labels ?? {} };
    // Cheap early answers; createSnapshot checks again.
    const parentId = this.store.checkCreate(snapshot);

    // Named here, not by mkdtemp, so that cleanup() knows it is ours before it exists.
    const temp = join(this.snapshotsDir, `${tempPrefix}${randomBytes(8).toString('hex')}`);
    this.building.add(temp);
    try {
      await mkdir(temp, { mode: 0o700 });
      const fsDir = join(temp, 'fs');
      await mkdir(fsDir);
      if (parentId !== null) {
        // overlay takes its root dir's owner and mode from the upper dir, so a
        // container sees the image's root, not ours.
        const parentRoot = await stat(this.layout.fsPath(parentId));
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
      const directory = { from: temp, to: (id: number) => this.snapshotDir(id) };
      return this.mountsOf(this.store.createSnapshot({ ...snapshot, parentId }, directory));
    } finally {
      this.building.delete(temp);
      await rm(temp, { recursive: true, force: true });
    }
  }

  private mountsOf(snapshot: StoredSnapshot): Mount[] {
    return snapshotMounts(this.layout, snapshot, snapshot.parentIds, this.overlayOptions);
  }

  /** The public info, with UPPERDIR_LABEL added when configured. */
  private info({ id, info }: StoredInfo): SnapshotInfo {
    if (!this.options.upperdirLabel) return info;
    return { ...info, labels: { ...info.labels, [UPPERDIR_LABEL]: this.layout.fsPath(id) } };
  }

  private snapshotDir(id: number): string {
    return join(this.snapshotsDir, String(id));
  }

  private isLeftover(name: string, ids: ReadonlyMap<number, StoredSnapshot>): boolean {
    return name.startsWith(tempPrefix) || (snapshotDirName.test(name) && !ids.has(Number(name)));
  }

  /** Start-up: delete leftovers, and say so when a snapshot's directory is missing. */
  private async recover(): Promise<void> {
    const names = new Set(await readdir(this.snapshotsDir));
    const snapshots = this.store.idMap();
    for (const name of names) {
      if (this.isLeftover(name, snapshots)) await this.removeSnapshotDir(join(this.snapshotsDir, name));
    }
    for (const { id, key, kind } of snapshots.values()) {
      if (!names.has(String(id))) {
        this.logger.error({ snapshot: key, id }, 'snapshot directory is missing');
      } else if (kind !== 'active') {
        await rm(this.layout.workPath(id), { recursive: true, force: true });
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

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
