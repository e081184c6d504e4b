import type { Descriptor } from '../content/types';
import type { Labels } from '../metadata/types';

/** A named image: a reference name pointing at a manifest or index. */
export interface Image {
  /** e.g. `127.0.0.1:5000/busybox:latest` */
  name: string;
  labels: Labels;
  target: Descriptor;
  createdAt: Date;
  updatedAt: Date;
}

/** containerd's images.Store, per namespace. */
export interface ImageStore {
  /** NotFound if absent. */
  get(namespace: string, name: string): Promise<Image>;
  /** Images matching any filter (fields `name`, `target.digest`, `target.mediatype`, `labels.<k>`). */
  list(namespace: string, filters?: string[]): Promise<Image[]>;
  /** AlreadyExists if the name is taken; InvalidArgument for an empty name or bad target. */
  create(namespace: string, image: Pick<Image, 'name' | 'target'> & { labels?: Labels }): Promise<Image>;
  /**
   * Updates `fieldpaths` (`labels`, `labels.<k>`, `target`, `annotations`?); none
   * means labels and target. NotFound if absent.
   */
  update(namespace: string, image: Pick<Image, 'name'> & Partial<Image>, fieldpaths?: string[]): Promise<Image>;
  /** NotFound if absent. `sync` runs garbage collection before returning (gRPC DeleteImageRequest.sync). */
  delete(namespace: string, name: string, options?: { sync?: boolean }): Promise<void>;
}
export const ImageStore = Symbol.for('io.berth.ImageStore');
