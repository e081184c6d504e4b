import type { Container, ContainerStore, NewContainer } from '../containers/types';
import type { Labels } from '../metadata/types';
import { need, type LocalStores } from './local-apis';
import type { ContainersApi } from './types';

/** Containers in-process, over the ContainerStore plugin. */
export class LocalContainers implements ContainersApi {
  constructor(
    private readonly stores: LocalStores,
    private readonly namespace: string,
  ) {}

  private get store(): ContainerStore {
    return need(this.stores.containers, 'containers');
  }

  create(container: NewContainer): Promise<Container> {
    return this.store.create(this.namespace, container);
  }
  get(id: string): Promise<Container> {
    return this.store.get(this.namespace, id);
  }
  list(filters?: string[]): Promise<Container[]> {
    return this.store.list(this.namespace, filters);
  }
  update(container: Pick<Container, 'id'> & Partial<Container>, fieldpaths?: string[]): Promise<Container> {
    return this.store.update(this.namespace, container, fieldpaths);
  }
  label(id: string, labels: Labels): Promise<Container> {
    // No paths would mean "replace all labels"; labelling nothing changes nothing.
    if (Object.keys(labels).length === 0) return this.get(id);
    return this.store.update(this.namespace, { id, labels }, Object.keys(labels).map((k) => `labels.${k}`));
  }
  delete(id: string): Promise<void> {
    return this.store.delete(this.namespace, id);
  }
}
