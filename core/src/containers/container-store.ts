import type { Statement } from 'better-sqlite3';
import { containerdEvents, packAny, type Any } from '@berth/proto';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../errdefs';
import type { AnyMessage, EventPublisher } from '../events/types';
import { adaptObject, parseFilters } from '../filters';
import type { GarbageCollector } from '../leases/types';
import { validateIdentifier, validateLabels } from '../metadata/identifiers';
import { applyLabelPaths, LabelTable, withoutEmptyValues } from '../metadata/labels';
import type { SqliteMetadataStore } from '../metadata/metadata-store';
import { ensureNamespace, inReadTransaction, inWriteTransaction, sqliteCode } from '../metadata/transactions';
import type { Labels } from '../metadata/types';
import { ContainerTopics, type Container, type ContainerStore, type NewContainer } from './types';

export interface SqliteContainerStoreOptions {
  metadata: SqliteMetadataStore;
  /** Where `/containers/*` events go; nothing is published without one. */
  events?: EventPublisher;
  /** Scheduled after a delete, so the snapshot the container kept can go. */
  gc?: Pick<GarbageCollector, 'schedule'>;
  /** Unix milliseconds; for tests. */
  clock?: () => number;
}

/** What an update without field paths replaces, as in containerd. */
const FULL_UPDATE_PATHS = ['labels', 'spec', 'extensions', 'image', 'snapshotkey'] as const;

interface ContainerRow {
  id: string;
  image: string;
  runtime_name: string;
  runtime_options_type: string | null;
  runtime_options: Buffer | null;
  spec_type: string | null;
  spec: Buffer | null;
  snapshotter: string;
  snapshot_key: string;
  sandbox_id: string;
  created_at: number;
  updated_at: number;
}

interface ExtensionRow {
  container_id: string;
  name: string;
  type_url: string;
  value: Buffer;
}

/** The stored part of a container; times are the store's own. */
type ContainerFields = Omit<Container, 'createdAt' | 'updatedAt'>;

/**
 * Containers in the metadata db (containerd's containers.Store), publishing
 * containerd's container events. Every container is a garbage collection
 * root: it keeps its snapshot and what its `containerd.io/gc.ref.*` labels name.
 */
export class SqliteContainerStore implements ContainerStore {
  private readonly labels: LabelTable;
  private readonly clock: () => number;
  private readonly sql: {
    get: Statement<[string, string], ContainerRow>;
    list: Statement<[string], ContainerRow>;
    insert: Statement<
      [string, string, string, string, string | null, Buffer | null, string | null, Buffer | null, string, string, string, number, number]
    >;
    update: Statement<[string, string | null, Buffer | null, string, number, string, string]>;
    remove: Statement<[string, string]>;
    extensionsOf: Statement<[string, string], ExtensionRow>;
    extensionsIn: Statement<[string], ExtensionRow>;
    clearExtensions: Statement<[string, string]>;
    putExtension: Statement<[string, string, string, string, Buffer]>;
  };

  constructor(private readonly options: SqliteContainerStoreOptions) {
    const { db } = options.metadata;
    this.labels = new LabelTable(db, 'container_labels', 'container_id');
    this.clock = options.clock ?? Date.now;
    const columns = `id, image, runtime_name, runtime_options_type, runtime_options, spec_type, spec,
      snapshotter, snapshot_key, sandbox_id, created_at, updated_at`;
    const extensionColumns = 'container_id, name, type_url, value';
    this.sql = {
      get: db.prepare(`SELECT ${columns} FROM containers WHERE namespace = ? AND id = ?`),
      list: db.prepare(`SELECT ${columns} FROM containers WHERE namespace = ? ORDER BY id`),
      insert: db.prepare(
        `INSERT INTO containers (namespace, ${columns.replace(/\s+/g, ' ')}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      update: db.prepare(
        'UPDATE containers SET image = ?, spec_type = ?, spec = ?, snapshot_key = ?, updated_at = ? WHERE namespace = ? AND id = ?',
      ),
      remove: db.prepare('DELETE FROM containers WHERE namespace = ? AND id = ?'),
      extensionsOf: db.prepare(
        `SELECT ${extensionColumns} FROM container_extensions WHERE namespace = ? AND container_id = ? ORDER BY name`,
      ),
      extensionsIn: db.prepare(
        `SELECT ${extensionColumns} FROM container_extensions WHERE namespace = ? ORDER BY container_id, name`,
      ),
      clearExtensions: db.prepare('DELETE FROM container_extensions WHERE namespace = ? AND container_id = ?'),
      putExtension: db.prepare(
        'INSERT INTO container_extensions (namespace, container_id, name, type_url, value) VALUES (?, ?, ?, ?, ?)',
      ),
    };
  }

  private get db() {
    return this.options.metadata.db;
  }

  async get(namespace: string, id: string): Promise<Container> {
    return inReadTransaction(this.db, () => this.mustGet(namespace, id));
  }

  async list(namespace: string, filters: string[] = []): Promise<Container[]> {
    const filter = parseFilters(filters);
    const containers = inReadTransaction(this.db, () => {
      const labels = this.labels.inNamespace(namespace);
      const extensions = groupExtensions(this.sql.extensionsIn.all(namespace));
      return this.sql.list.all(namespace).map((row) => toContainer(row, labels.get(row.id) ?? {}, extensions.get(row.id) ?? {}));
    });
    return containers.filter((container) => filter.match(adaptContainer(container)));
  }

  async create(namespace: string, container: NewContainer): Promise<Container> {
    validateIdentifier('namespace', namespace);
    const fields = newContainerFields(container);
    validateContainer(fields);
    const created = inWriteTransaction(this.db, () => {
      const now = this.clock();
      ensureNamespace(this.db, namespace, now);
      const { runtime, spec } = fields;
      try {
        this.sql.insert.run(
          namespace,
          fields.id,
          fields.image,
          runtime.name,
          runtime.options ? runtime.options.typeUrl : null,
          runtime.options ? bytesOf(runtime.options) : null,
          spec ? spec.typeUrl : null,
          spec ? bytesOf(spec) : null,
          fields.snapshotter,
          fields.snapshotKey,
          fields.sandbox,
          now,
          now,
        );
      } catch (err) {
        if (sqliteCode(err) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new AlreadyExistsError(`container ${JSON.stringify(fields.id)}: already exists`, { cause: err });
        }
        throw err;
      }
      this.labels.replace(namespace, fields.id, fields.labels);
      this.replaceExtensions(namespace, fields.id, fields.extensions);
      return this.mustGet(namespace, fields.id);
    });
    const runtime: containerdEvents.ContainerCreate_Runtime = { name: created.runtime.name };
    if (created.runtime.options) runtime.options = toProtoAny(created.runtime.options);
    await this.publish(namespace, ContainerTopics.create, packAny(containerdEvents.ContainerCreate, { id: created.id, image: created.image, runtime }));
    return created;
  }

  async update(namespace: string, container: Pick<Container, 'id'> & Partial<Container>, fieldpaths: string[] = []): Promise<Container> {
    if (typeof container.id !== 'string' || container.id === '') throw new InvalidArgumentError('container id must not be empty');
    const updated = inWriteTransaction(this.db, () => {
      const current = this.mustGet(namespace, container.id);
      const paths = fieldpaths.length > 0 ? fieldpaths : fullUpdatePaths(current, container);
      // A full update that carries none of the replaceable fields changes nothing.
      if (paths.length === 0) return undefined;
      const next = applyContainerPaths(current, container, paths);
      validateContainer(next);
      const { spec } = next;
      this.sql.update.run(
        next.image,
        spec ? spec.typeUrl : null,
        spec ? bytesOf(spec) : null,
        next.snapshotKey,
        this.clock(),
        namespace,
        container.id,
      );
      this.labels.replace(namespace, container.id, next.labels);
      this.replaceExtensions(namespace, container.id, next.extensions);
      return this.mustGet(namespace, container.id);
    });
    if (!updated) return this.get(namespace, container.id);
    await this.publish(
      namespace,
      ContainerTopics.update,
      packAny(containerdEvents.ContainerUpdate, {
        id: updated.id,
        image: updated.image,
        labels: updated.labels,
        snapshotKey: updated.snapshotKey,
      }),
    );
    return updated;
  }

  async delete(namespace: string, id: string): Promise<void> {
    inWriteTransaction(this.db, () => {
      if (this.sql.remove.run(namespace, id).changes === 0) throw containerNotFound(namespace, id);
    });
    await this.publish(namespace, ContainerTopics.delete, packAny(containerdEvents.ContainerDelete, { id }));
    // Its snapshot and what its labels referenced may be unreachable now.
    this.options.gc?.schedule();
  }

  private mustGet(namespace: string, id: string): Container {
    const row = this.sql.get.get(namespace, id);
    if (!row) throw containerNotFound(namespace, id);
    const extensions = groupExtensions(this.sql.extensionsOf.all(namespace, id)).get(id) ?? {};
    return toContainer(row, this.labels.of(namespace, id), extensions);
  }

  private replaceExtensions(namespace: string, id: string, extensions: Record<string, AnyMessage>): void {
    this.sql.clearExtensions.run(namespace, id);
    for (const [name, value] of Object.entries(extensions)) {
      this.sql.putExtension.run(namespace, id, name, value.typeUrl, bytesOf(value));
    }
  }

  private async publish(namespace: string, topic: string, event: AnyMessage): Promise<void> {
    await this.options.events?.publish(namespace, topic, event);
  }
}

function containerNotFound(namespace: string, id: string): NotFoundError {
  return new NotFoundError(`container ${JSON.stringify(id)} in namespace ${JSON.stringify(namespace)}: not found`);
}

/** A new container's stored fields, with the defaults of an empty proto message. */
function newContainerFields(container: NewContainer): ContainerFields {
  if (!container || typeof container !== 'object') throw new InvalidArgumentError('container must be set');
  const fields: ContainerFields = {
    id: container.id,
    labels: withoutEmptyValues(container.labels ?? {}),
    image: container.image ?? '',
    runtime: copyRuntime(container.runtime),
    snapshotter: container.snapshotter ?? '',
    snapshotKey: container.snapshotKey ?? '',
    extensions: { ...(container.extensions ?? {}) },
    sandbox: container.sandbox ?? '',
  };
  if (container.spec !== undefined) fields.spec = container.spec;
  return fields;
}

function copyRuntime(runtime: Container['runtime'] | undefined): Container['runtime'] {
  if (!runtime || typeof runtime !== 'object') return { name: '' };
  return runtime.options === undefined ? { name: runtime.name } : { name: runtime.name, options: runtime.options };
}

/**
 * containerd's rules: the id is an identifier, labels are valid, a runtime is
 * named, extension names are not empty; image and spec are taken as given.
 */
function validateContainer(container: ContainerFields): void {
  validateIdentifier('container id', container.id);
  validateLabels(container.labels);
  const shown = JSON.stringify(container.id);
  if (typeof container.runtime.name !== 'string' || container.runtime.name === '') {
    throw new InvalidArgumentError(`container ${shown}: must specify a runtime name`);
  }
  for (const [what, value] of [
    ['image', container.image],
    ['snapshotter', container.snapshotter],
    ['snapshot key', container.snapshotKey],
    ['sandbox', container.sandbox],
  ] as const) {
    if (typeof value !== 'string') throw new InvalidArgumentError(`container ${shown}: ${what} must be a string`);
  }
  if (container.runtime.options !== undefined) validateAny(shown, 'runtime options', container.runtime.options);
  if (container.spec !== undefined) validateAny(shown, 'spec', container.spec);
  for (const [name, value] of Object.entries(container.extensions)) {
    if (name === '') throw new InvalidArgumentError(`container ${shown}: extension names must not be empty`);
    validateAny(shown, `extension ${JSON.stringify(name)}`, value);
  }
}

function validateAny(container: string, what: string, value: AnyMessage): void {
  if (!value || typeof value.typeUrl !== 'string' || !(value.value instanceof Uint8Array)) {
    throw new InvalidArgumentError(`container ${container}: ${what} must be an Any (a type URL and bytes)`);
  }
}

/**
 * The paths an update without field paths replaces: those of labels, spec,
 * extensions, image and snapshot key the request carries (containerd's
 * full replace, where a TypeScript caller's absent field means "keep").
 * A runtime or snapshotter that differs from the stored one is refused:
 * both are immutable.
 */
function fullUpdatePaths(current: Container, requested: Partial<Container>): string[] {
  const shown = JSON.stringify(current.id);
  if (requested.snapshotter !== undefined && requested.snapshotter !== current.snapshotter) {
    throw new InvalidArgumentError(`container ${shown}: snapshotter is immutable`);
  }
  if (requested.runtime !== undefined && requested.runtime?.name !== current.runtime.name) {
    throw new InvalidArgumentError(`container ${shown}: runtime name is immutable`);
  }
  const given: Record<(typeof FULL_UPDATE_PATHS)[number], boolean> = {
    labels: requested.labels !== undefined,
    spec: requested.spec !== undefined,
    extensions: requested.extensions !== undefined,
    image: requested.image !== undefined,
    snapshotkey: requested.snapshotKey !== undefined,
  };
  return FULL_UPDATE_PATHS.filter((path) => given[path]);
}

/**
 * containerd's field paths: `labels`, `labels.<k>`, `extensions`,
 * `extensions.<k>`, `image`, `spec`, `snapshotkey`; anything else (the
 * immutable `runtime` and `snapshotter` among them) is refused.
 */
function applyContainerPaths(
  current: Container,
  requested: Pick<Container, 'id'> & Partial<Container>,
  paths: readonly string[],
): ContainerFields {
  const shown = JSON.stringify(current.id);
  const { labels, otherPaths } = applyLabelPaths(current.labels, requested.labels ?? {}, paths);
  const next: ContainerFields = {
    id: current.id,
    labels,
    image: current.image,
    runtime: current.runtime,
    snapshotter: current.snapshotter,
    snapshotKey: current.snapshotKey,
    extensions: { ...current.extensions },
    sandbox: current.sandbox,
  };
  if (current.spec !== undefined) next.spec = current.spec;
  const requestedExtensions = requested.extensions ?? {};
  for (const path of otherPaths) {
    if (path.startsWith('extensions.')) {
      const name = path.slice('extensions.'.length);
      if (name === '') throw new InvalidArgumentError(`field path ${JSON.stringify(path)}: extension name must not be empty`);
      if (Object.prototype.hasOwnProperty.call(requestedExtensions, name)) next.extensions[name] = requestedExtensions[name];
      else delete next.extensions[name];
      continue;
    }
    switch (path) {
      case 'extensions':
        next.extensions = { ...requestedExtensions };
        break;
      case 'image':
        next.image = requested.image ?? '';
        break;
      case 'spec':
        if (requested.spec === undefined) delete next.spec;
        else next.spec = requested.spec;
        break;
      case 'snapshotkey':
        next.snapshotKey = requested.snapshotKey ?? '';
        break;
      default:
        throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on container ${shown}`);
    }
  }
  return next;
}

/** The bytes of an Any as better-sqlite3 binds a BLOB. */
function bytesOf(any: AnyMessage): Buffer {
  const { value } = any;
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function toProtoAny(any: AnyMessage): Any {
  return { typeUrl: any.typeUrl, value: bytesOf(any) };
}

function groupExtensions(rows: ExtensionRow[]): Map<string, Record<string, AnyMessage>> {
  const entries = new Map<string, [string, AnyMessage][]>();
  for (const row of rows) {
    let list = entries.get(row.container_id);
    if (!list) entries.set(row.container_id, (list = []));
    list.push([row.name, { typeUrl: row.type_url, value: row.value }]);
  }
  // Object.fromEntries, so an extension named `__proto__` stays an extension.
  return new Map([...entries].map(([id, list]) => [id, Object.fromEntries(list)]));
}

function toContainer(row: ContainerRow, labels: Labels, extensions: Record<string, AnyMessage>): Container {
  const container: Container = {
    id: row.id,
    labels,
    image: row.image,
    runtime: { name: row.runtime_name },
    snapshotter: row.snapshotter,
    snapshotKey: row.snapshot_key,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    extensions,
    sandbox: row.sandbox_id,
  };
  if (row.runtime_options_type !== null && row.runtime_options !== null) {
    container.runtime.options = { typeUrl: row.runtime_options_type, value: row.runtime_options };
  }
  if (row.spec_type !== null && row.spec !== null) container.spec = { typeUrl: row.spec_type, value: row.spec };
  return container;
}

/**
 * Filter fields as containerd's container adaptor: `id`, `image`,
 * `runtime.name`, `labels.<k>`, plus `snapshotter` and `sandbox`. Empty
 * strings count as absent, as for proto fields.
 */
function adaptContainer(container: Container) {
  const present = (value: string) => (value === '' ? undefined : value);
  return adaptObject({
    id: container.id,
    image: present(container.image),
    runtime: { name: present(container.runtime.name) },
    snapshotter: present(container.snapshotter),
    sandbox: present(container.sandbox),
    labels: container.labels,
  });
}
