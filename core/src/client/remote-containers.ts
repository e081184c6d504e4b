import type * as grpc from '@grpc/grpc-js';
import { NotImplementedError } from '../errdefs';
import type { Container, NewContainer } from '../containers/types';
import type { Labels } from '../metadata/types';
import type { RemoteClients } from './remote-apis';
import type { ContainersApi } from './types';

/** Containers over gRPC (containerd.services.containers.v1.Containers). */
export class RemoteContainers implements ContainersApi {
  constructor(
    private readonly clients: RemoteClients,
    private readonly md: () => grpc.Metadata,
  ) {}

  create(_container: NewContainer): Promise<Container> {
    throw new NotImplementedError('containers.create: not implemented yet');
  }
  get(_id: string): Promise<Container> {
    throw new NotImplementedError('containers.get: not implemented yet');
  }
  list(_filters?: string[]): Promise<Container[]> {
    throw new NotImplementedError('containers.list: not implemented yet');
  }
  update(_container: Pick<Container, 'id'> & Partial<Container>, _fieldpaths?: string[]): Promise<Container> {
    throw new NotImplementedError('containers.update: not implemented yet');
  }
  label(_id: string, _labels: Labels): Promise<Container> {
    throw new NotImplementedError('containers.label: not implemented yet');
  }
  delete(_id: string): Promise<void> {
    throw new NotImplementedError('containers.delete: not implemented yet');
  }
}
