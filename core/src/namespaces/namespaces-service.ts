import { containerdEvents } from '@berth/proto';
import type { NamespacesApi } from '../client/types';
import type { AnyMessage, EventPublisher } from '../events/types';
import type { Labels, Namespace, NamespaceStore } from '../metadata/types';

/** Topics of namespace events, as containerd publishes them. */
export const NamespaceTopics = {
  create: '/namespaces/create',
  update: '/namespaces/update',
  delete: '/namespaces/delete',
} as const;

function pack(typeUrl: string, value: Uint8Array): AnyMessage {
  return { typeUrl, value };
}

/**
 * The local namespaces service: the metadata store plus the events containerd
 * publishes for every change. Both the gRPC service and the in-process facade
 * use it, so the two doors behave the same.
 */
export class NamespacesService implements NamespacesApi {
  constructor(
    private readonly store: NamespaceStore,
    private readonly events: EventPublisher,
  ) {}

  async list(): Promise<Namespace[]> {
    return this.store.list();
  }

  async get(name: string): Promise<Namespace> {
    return { name, labels: await this.store.labels(name) };
  }

  async create(name: string, labels: Labels = {}): Promise<Namespace> {
    await this.store.create(name, labels);
    const msg = containerdEvents.NamespaceCreate.encode({ name, labels }).finish();
    await this.events.publish(name, NamespaceTopics.create, pack('containerd.events.NamespaceCreate', msg));
    return { name, labels: await this.store.labels(name) };
  }

  async label(name: string, labels: Labels): Promise<Namespace> {
    for (const [key, value] of Object.entries(labels)) await this.store.setLabel(name, key, value);
    return this.published(name);
  }

  /** Replaces all labels (gRPC Update without a field mask). */
  async replaceLabels(name: string, labels: Labels): Promise<Namespace> {
    await this.store.setLabels(name, labels);
    return this.published(name);
  }

  async delete(name: string): Promise<void> {
    await this.store.delete(name);
    const msg = containerdEvents.NamespaceDelete.encode({ name }).finish();
    await this.events.publish(name, NamespaceTopics.delete, pack('containerd.events.NamespaceDelete', msg));
  }

  private async published(name: string): Promise<Namespace> {
    const current = { name, labels: await this.store.labels(name) };
    const msg = containerdEvents.NamespaceUpdate.encode(current).finish();
    await this.events.publish(name, NamespaceTopics.update, pack('containerd.events.NamespaceUpdate', msg));
    return current;
  }
}
