import type * as grpc from '@grpc/grpc-js';
import type { Any, containersV1 } from '@berth/proto';
import type { Container, NewContainer } from '../containers/types';
import { InternalError, InvalidArgumentError } from '../errdefs';
import type { AnyMessage } from '../events/types';
import type { Labels } from '../metadata/types';
import { unaryCall, type RemoteClients } from './remote-apis';
import type { ContainersApi } from './types';

function toProtoAny(any: AnyMessage): Any {
  const { value } = any;
  return { typeUrl: any.typeUrl, value: Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

/** A whole proto container; fields the caller left out are their proto defaults. */
function toProtoContainer(container: Pick<Container, 'id'> & Partial<Container>): containersV1.Container {
  const message: containersV1.Container = {
    id: container.id,
    labels: { ...(container.labels ?? {}) },
    image: container.image ?? '',
    snapshotter: container.snapshotter ?? '',
    snapshotKey: container.snapshotKey ?? '',
    extensions: Object.fromEntries(Object.entries(container.extensions ?? {}).map(([name, value]) => [name, toProtoAny(value)])),
    sandbox: container.sandbox ?? '',
  };
  if (container.runtime) {
    message.runtime = { name: container.runtime.name };
    if (container.runtime.options) message.runtime.options = toProtoAny(container.runtime.options);
  }
  if (container.spec) message.spec = toProtoAny(container.spec);
  return message;
}

function fromProtoContainer(message: containersV1.Container | undefined): Container {
  if (!message) throw new InternalError('server answered without a container');
  const container: Container = {
    id: message.id,
    labels: { ...message.labels },
    image: message.image,
    runtime: { name: message.runtime?.name ?? '' },
    snapshotter: message.snapshotter,
    snapshotKey: message.snapshotKey,
    createdAt: message.createdAt ?? new Date(0),
    updatedAt: message.updatedAt ?? new Date(0),
    extensions: { ...message.extensions },
    sandbox: message.sandbox,
  };
  if (message.runtime?.options) container.runtime.options = message.runtime.options;
  if (message.spec) container.spec = message.spec;
  return container;
}

/** What the store would replace without field paths, named explicitly (see update). */
function pathsGiven(container: Partial<Container>): string[] {
  const paths: string[] = [];
  if (container.labels !== undefined) paths.push('labels');
  if (container.spec !== undefined) paths.push('spec');
  if (container.extensions !== undefined) paths.push('extensions');
  if (container.image !== undefined) paths.push('image');
  if (container.snapshotKey !== undefined) paths.push('snapshotkey');
  return paths;
}

/** Containers over gRPC (containerd.services.containers.v1.Containers). */
export class RemoteContainers implements ContainersApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
  ) {}

  private get client(): containersV1.ContainersClient {
    return this.clients.containers;
  }

  async create(container: NewContainer): Promise<Container> {
    const req: containersV1.CreateContainerRequest = { container: toProtoContainer(container) };
    const res = await unaryCall<containersV1.CreateContainerResponse>((cb) => this.client.create(req, this.md(), cb));
    return fromProtoContainer(res.container);
  }

  async get(id: string): Promise<Container> {
    const res = await unaryCall<containersV1.GetContainerResponse>((cb) => this.client.get({ id }, this.md(), cb));
    return fromProtoContainer(res.container);
  }

  async list(filters: string[] = []): Promise<Container[]> {
    const res = await unaryCall<containersV1.ListContainersResponse>((cb) => this.client.list({ filters }, this.md(), cb));
    return res.containers.map(fromProtoContainer);
  }

  /**
   * The wire carries whole containers, so without `fieldpaths` the fields
   * the caller set are sent as the mask: the result is the same as the
   * in-process store's, where absent fields are kept. A runtime or
   * snapshotter in the request is checked against the stored one first,
   * as the store refuses to change either.
   */
  async update(container: Pick<Container, 'id'> & Partial<Container>, fieldpaths: string[] = []): Promise<Container> {
    let paths = fieldpaths;
    if (paths.length === 0) {
      if (container.runtime !== undefined || container.snapshotter !== undefined) {
        const current = await this.get(container.id);
        if (container.snapshotter !== undefined && container.snapshotter !== current.snapshotter) {
          throw new InvalidArgumentError(`container ${JSON.stringify(container.id)}: snapshotter is immutable`);
        }
        if (container.runtime !== undefined && container.runtime.name !== current.runtime.name) {
          throw new InvalidArgumentError(`container ${JSON.stringify(container.id)}: runtime name is immutable`);
        }
      }
      paths = pathsGiven(container);
      // Nothing to change: answer with the stored container, as the store does.
      if (paths.length === 0) return this.get(container.id);
    }
    const req: containersV1.UpdateContainerRequest = { container: toProtoContainer(container), updateMask: paths };
    const res = await unaryCall<containersV1.UpdateContainerResponse>((cb) => this.client.update(req, this.md(), cb));
    return fromProtoContainer(res.container);
  }

  label(id: string, labels: Labels): Promise<Container> {
    const paths = Object.keys(labels).map((key) => `labels.${key}`);
    // No paths would mean a full update, which replaces every label.
    if (paths.length === 0) return this.get(id);
    return this.update({ id, labels }, paths);
  }

  async delete(id: string): Promise<void> {
    await unaryCall((cb) => this.client.delete({ id }, this.md(), cb));
  }
}
