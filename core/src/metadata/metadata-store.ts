import { join } from 'node:path';
import type { PluginRegistration } from '../plugin/types';
import { PluginType } from '../plugin/types';
import { openMetadataDb, type MetadataDb, type OpenMetadataDbOptions } from './db';
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

  constructor(
    readonly path: string,
    options: OpenMetadataDbOptions = {},
  ) {
    this.db = openMetadataDb(path, options);
    this.namespaces = new SqliteNamespaceStore(this.db);
  }

  addNamespaceUsageCheck(check: NamespaceUsageCheck): void {
    this.namespaces.addUsageCheck(check);
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
