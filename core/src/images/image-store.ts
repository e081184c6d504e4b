import type { Statement } from 'better-sqlite3';
import { imageEventsV1, packAny } from '@berth/proto';
import { isValidDigest } from '../content/digest';
import type { Descriptor } from '../content/types';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../errdefs';
import type { EventPublisher } from '../events/types';
import { adaptObject, parseFilters } from '../filters';
import type { GarbageCollector } from '../leases/types';
import { validateIdentifier, validateLabels } from '../metadata/identifiers';
import { applyLabelPaths, LabelTable, withoutEmptyValues } from '../metadata/labels';
import type { SqliteMetadataStore } from '../metadata/metadata-store';
import { ensureNamespace, inReadTransaction, inWriteTransaction, sqliteCode } from '../metadata/transactions';
import type { Labels } from '../metadata/types';
import type { Image, ImageStore } from './types';

/** Topics of image events, as containerd publishes them. */
export const ImageTopics = {
  create: '/images/create',
  update: '/images/update',
  delete: '/images/delete',
} as const;

/** Longest image name accepted, in bytes. */
export const MAX_IMAGE_NAME_LENGTH = 4096;

// Characters of a reference (`host[:port]/path:tag@algo:hex`, `[::1]:5000/x`)
// and of the plain names ctr and CRI also store (`sha256:<hex>`, `import-2024-01-01`).
const imageNamePattern = /^[A-Za-z0-9[\]][A-Za-z0-9._\-:/@+[\]]*$/;

/**
 * Throws InvalidArgumentError unless `name` could be an image name. containerd
 * only requires non-empty; this also refuses whitespace, control characters,
 * empty path components and a dangling `:` or `@`, none of which a reference has.
 */
export function validateImageName(name: string): void {
  if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('image name must not be empty');
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
  if (Buffer.byteLength(name, 'utf8') > MAX_IMAGE_NAME_LENGTH) {
    throw new InvalidArgumentError(`image name ${shown}: longer than ${MAX_IMAGE_NAME_LENGTH} characters`);
  }
  if (!imageNamePattern.test(name) || name.includes('//') || /[/:@]$/.test(name)) {
    throw new InvalidArgumentError(`image name ${shown}: not a valid image reference`);
  }
}

/** Throws InvalidArgumentError unless `target` is a descriptor the store can keep. */
export function validateImageTarget(target: Descriptor | undefined): void {
  if (!target || typeof target !== 'object') throw new InvalidArgumentError('image target must be set');
  if (!isValidDigest(target.digest)) {
    throw new InvalidArgumentError(`image target digest ${JSON.stringify(target.digest)}: not a valid digest`);
  }
  if (typeof target.mediaType !== 'string' || target.mediaType === '') {
    throw new InvalidArgumentError('image target media type must be set');
  }
  if (!Number.isSafeInteger(target.size) || target.size < 0) {
    throw new InvalidArgumentError(`image target size ${target.size}: must be a non-negative integer`);
  }
  for (const [key, value] of Object.entries(target.annotations ?? {})) {
    if (typeof value !== 'string') throw new InvalidArgumentError(`image target annotation ${JSON.stringify(key)}: value must be a string`);
  }
}

export interface SqliteImageStoreOptions {
  metadata: SqliteMetadataStore;
  /** Where `/images/*` events go; nothing is published without one. */
  events?: EventPublisher;
  /** Scheduled after a delete, run before a `sync` delete returns. */
  gc?: GarbageCollector;
  /** Unix milliseconds; for tests. */
  clock?: () => number;
}

interface ImageRow {
  name: string;
  target_media_type: string;
  target_digest: string;
  target_size: number;
  target_annotations: string;
  created_at: number;
  updated_at: number;
}

type ImageFields = Pick<Image, 'name' | 'labels' | 'target'>;

/** Images in the metadata db (containerd's images.Store), publishing containerd's image events. */
export class SqliteImageStore implements ImageStore {
  private readonly labels: LabelTable;
  private readonly clock: () => number;
  private readonly sql: {
    get: Statement<[string, string], ImageRow>;
    list: Statement<[string], ImageRow>;
    insert: Statement<[string, string, string, string, number, string, number, number]>;
    update: Statement<[string, string, number, string, number, string, string]>;
    remove: Statement<[string, string]>;
  };

  constructor(private readonly options: SqliteImageStoreOptions) {
    const { db } = options.metadata;
    this.labels = new LabelTable(db, 'image_labels', 'image_name');
    this.clock = options.clock ?? Date.now;
    const columns = 'name, target_media_type, target_digest, target_size, target_annotations, created_at, updated_at';
    this.sql = {
      get: db.prepare(`SELECT ${columns} FROM images WHERE namespace = ? AND name = ?`),
      list: db.prepare(`SELECT ${columns} FROM images WHERE namespace = ? ORDER BY name`),
      insert: db.prepare(
        `INSERT INTO images (namespace, name, target_media_type, target_digest, target_size, target_annotations,
           created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      update: db.prepare(
        `UPDATE images SET target_media_type = ?, target_digest = ?, target_size = ?, target_annotations = ?,
           updated_at = ? WHERE namespace = ? AND name = ?`,
      ),
      remove: db.prepare('DELETE FROM images WHERE namespace = ? AND name = ?'),
    };
  }

  private get db() {
    return this.options.metadata.db;
  }

  async get(namespace: string, name: string): Promise<Image> {
    return inReadTransaction(this.db, () => this.mustGet(namespace, name));
  }

  async list(namespace: string, filters: string[] = []): Promise<Image[]> {
    const filter = parseFilters(filters);
    const images = inReadTransaction(this.db, () => {
      const labels = this.labels.inNamespace(namespace);
      return this.sql.list.all(namespace).map((row) => toImage(row, labels.get(row.name) ?? {}));
    });
    return images.filter((image) => filter.match(adaptImage(image)));
  }

  async create(namespace: string, image: Pick<Image, 'name' | 'target'> & { labels?: Labels }): Promise<Image> {
    validateIdentifier('namespace', namespace);
    const fields: ImageFields = { name: image.name, labels: withoutEmptyValues(image.labels ?? {}), target: image.target };
    validateImage(fields);
    const created = inWriteTransaction(this.db, () => {
      const now = this.clock();
      ensureNamespace(this.db, namespace, now);
      const { target } = fields;
      try {
        this.sql.insert.run(namespace, fields.name, target.mediaType, target.digest, target.size, annotationsJson(target), now, now);
      } catch (err) {
        if (sqliteCode(err) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new AlreadyExistsError(`image ${JSON.stringify(fields.name)}: already exists`, { cause: err });
        }
        throw err;
      }
      this.labels.replace(namespace, fields.name, fields.labels);
      return this.mustGet(namespace, fields.name);
    });
    await this.publish(namespace, ImageTopics.create, packAny(imageEventsV1.ImageCreate, { name: created.name, labels: created.labels }));
    return created;
  }

  async update(namespace: string, image: Pick<Image, 'name'> & Partial<Image>, fieldpaths: string[] = []): Promise<Image> {
    const updated = inWriteTransaction(this.db, () => {
      const current = this.mustGet(namespace, image.name);
      const next = applyImagePaths(current, image, fieldpaths.length > 0 ? fieldpaths : ['labels', 'target']);
      validateImage(next);
      const { target } = next;
      this.sql.update.run(target.mediaType, target.digest, target.size, annotationsJson(target), this.clock(), namespace, image.name);
      this.labels.replace(namespace, image.name, next.labels);
      return this.mustGet(namespace, image.name);
    });
    await this.publish(namespace, ImageTopics.update, packAny(imageEventsV1.ImageUpdate, { name: updated.name, labels: updated.labels }));
    return updated;
  }

  async delete(namespace: string, name: string, options: { sync?: boolean } = {}): Promise<void> {
    inWriteTransaction(this.db, () => {
      if (this.sql.remove.run(namespace, name).changes === 0) throw imageNotFound(name);
    });
    await this.publish(namespace, ImageTopics.delete, packAny(imageEventsV1.ImageDelete, { name }));
    const { gc } = this.options;
    if (options.sync) await gc?.collect();
    else gc?.schedule();
  }

  private mustGet(namespace: string, name: string): Image {
    const row = this.sql.get.get(namespace, name);
    if (!row) throw imageNotFound(name);
    return toImage(row, this.labels.of(namespace, name));
  }

  private async publish(namespace: string, topic: string, event: { typeUrl: string; value: Uint8Array }): Promise<void> {
    await this.options.events?.publish(namespace, topic, event);
  }
}

function imageNotFound(name: string): NotFoundError {
  return new NotFoundError(`image ${JSON.stringify(name)}: not found`);
}

function validateImage(image: ImageFields): void {
  validateImageName(image.name);
  validateLabels(image.labels);
  validateImageTarget(image.target);
}

/**
 * containerd's field paths: `labels`, `labels.<k>`, `target` (replaced as a
 * unit), `annotations`, `annotations.<k>` (the target's); others are refused.
 */
function applyImagePaths(current: Image, requested: Partial<Image>, paths: string[]): ImageFields {
  const { labels, otherPaths } = applyLabelPaths(current.labels, requested.labels ?? {}, paths);
  let target: Descriptor = current.target;
  for (const path of otherPaths) {
    if (path === 'target') {
      if (!requested.target) throw new InvalidArgumentError('image target must be set');
      target = requested.target;
    } else if (path === 'annotations' || path.startsWith('annotations.')) {
      const annotations = applyLabelPaths(
        target.annotations ?? {},
        requested.target?.annotations ?? {},
        [path === 'annotations' ? 'labels' : `labels.${path.slice('annotations.'.length)}`],
      ).labels;
      target = { ...target, annotations };
    } else {
      throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on image ${JSON.stringify(current.name)}`);
    }
  }
  return { name: current.name, labels, target };
}

function annotationsJson(target: Descriptor): string {
  return JSON.stringify(withoutEmptyValues(target.annotations ?? {}));
}

function toImage(row: ImageRow, labels: Labels): Image {
  const annotations = JSON.parse(row.target_annotations) as Record<string, string>;
  const target: Descriptor = { mediaType: row.target_media_type, digest: row.target_digest, size: row.target_size };
  if (Object.keys(annotations).length > 0) target.annotations = annotations;
  return { name: row.name, labels, target, createdAt: new Date(row.created_at), updatedAt: new Date(row.updated_at) };
}

/** Filter fields as containerd's images adaptor: name, target.digest, target.mediatype, labels.<k>, annotations.<k>. */
function adaptImage(image: Image) {
  return adaptObject({
    name: image.name,
    target: { digest: image.target.digest, mediatype: image.target.mediaType },
    labels: image.labels,
    annotations: image.target.annotations ?? {},
  });
}
