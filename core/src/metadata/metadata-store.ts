import { join } from 'node:path';
import type { interfaces } from 'inversify';
import { FailedPreconditionError } from '../errdefs';
import type { InitContext, PluginRegistration } from '../plugin/types';
import { PluginType } from '../plugin/types';
import { openMetadataDb, type MetadataDb, type OpenMetadataDbOptions } from './db';
import { GcGuard } from './gc-guard';
import { SqliteNamespaceStore } from './namespaces';
import { MetadataStore, NamespaceStore, type NamespaceUsageCheck } from './types';

/**
 * The metadata database and the stores built on it. Other core stores
 * (containers, images, leases ...) share `db` so that one transaction can
 * span several of them.
 */
export class SqliteMetadataStore implements MetadataStore {
  readonly db: MetadataDb;
  readonly namespaces: SqliteNamespaceStore;
  /** Shared by every store on `db` and the garbage collector. */
  readonly gcGuard = new GcGuard();

  constructor(
    readonly path: string,
    options: OpenMetadataDbOptions = {},
  ) {
    this.db = openMetadataDb(path, options);
    this.namespaces = new SqliteNamespaceStore(this.db);
    this.refuseDeletingNamespacesInUse();
  }

  addNamespaceUsageCheck(check: NamespaceUsageCheck): void {
    this.namespaces.addUsageCheck(check);
  }

  /**
   * The tables are part of the schema, so their checks belong here rather
   * than to the stores, which may not all be loaded. Names as containerd's
   * ("blobs" for content, `snapshots on "overlayfs" snapshotter`); leases
   * block too, unlike containerd, so a namespace cannot vanish under a
   * client that is still working in it.
   */
  private refuseDeletingNamespacesInUse(): void {
    for (const [what, table] of [
      ['images', 'images'],
      ['blobs', 'content_blobs'],
      ['containers', 'containers'],
      ['leases', 'leases'],
    ] as const) {
      const any = this.db.prepare(`SELECT 1 FROM ${table} WHERE namespace = ? LIMIT 1`);
      this.addNamespaceUsageCheck((namespace) => (any.get(namespace) === undefined ? undefined : what));
    }
    const snapshotters = this.db
      .prepare<[string], string>('SELECT DISTINCT snapshotter FROM snapshots WHERE namespace = ? ORDER BY snapshotter')
      .pluck();
    this.addNamespaceUsageCheck((namespace) => {
      const names = snapshotters.all(namespace);
      return names.length === 0 ? undefined : names.map((n) => `snapshots on ${JSON.stringify(n)} snapshotter`).join(', ');
    });
  }

  /** Safe to call twice. */
  close(): void {
    if (!this.db.open) return;
    // SQLite's advice for long-lived connections: refresh planner statistics on the way out.
    this.db.pragma('optimize');
    this.db.close();
  }
}

/** File name of the database inside the plugin's root dir. */
export const METADATA_DB_FILE = 'meta.db';

/**
 * Registration of the built-in metadata plugin, `io.berth.metadata.v1.sqlite`.
 * Its instance is the SqliteMetadataStore at `<root>/meta.db`, also bound in
 * the shared container as MetadataStore and NamespaceStore.
 */
export const metadataPlugin: PluginRegistration<unknown, SqliteMetadataStore> = {
  type: PluginType.Metadata,
  id: 'sqlite',
  requires: [],
  init(ctx) {
    const path = join(ctx.root, METADATA_DB_FILE);
    const store = new SqliteMetadataStore(path);
    ctx.meta.exports.path = path;
    // Guarded so a host that binds plugin instances itself does not get a
    // second, ambiguous binding.
    if (!ctx.container.isBound(MetadataStore)) {
      ctx.container.bind<MetadataStore>(MetadataStore).toConstantValue(store);
    }
    if (!ctx.container.isBound(NamespaceStore)) {
      ctx.container.bind<NamespaceStore>(NamespaceStore).toConstantValue(store.namespaces);
    }
    return store;
  },
};

/**
 * The metadata plugin's instance, for plugins that build on the sqlite
 * schema (leases, images, namespaced content, the garbage collector).
 * FailedPrecondition when another metadata plugin was loaded instead.
 */
export function sqliteMetadataStoreOf(ctx: Pick<InitContext, 'getSingle'>): SqliteMetadataStore {
  const store = ctx.getSingle<unknown>(PluginType.Metadata);
  if (!(store instanceof SqliteMetadataStore)) {
    throw new FailedPreconditionError(`needs the ${PluginType.Metadata}.sqlite plugin's database`);
  }
  return store;
}

/** Binds `token` unless the host bound it already (the same guard metadataPlugin uses). */
export function bindConstantOnce<T>(container: interfaces.Container, token: symbol, value: T): void {
  if (!container.isBound(token)) container.bind<T>(token).toConstantValue(value);
}
