import type { AnyMessage } from '../events/types';
import type { Labels } from '../metadata/types';

/** Which runtime runs a container's task, and its options (e.g. `containerd.runc.v1.Options`). */
export interface ContainerRuntime {
  /** e.g. `io.containerd.runc.v2`, or an absolute path to a v2 shim binary. */
  name: string;
  options?: AnyMessage;
}

/** Type URL containerd gives the OCI spec it stores as JSON inside an Any. */
export const OCI_SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';

/** containerd's containers.Container: metadata only; the running part is a task. */
export interface Container {
  /** containerd's identifier rules (as namespaces), at most 76 characters. */
  id: string;
  labels: Labels;
  /** The image reference it was made from; may be empty. */
  image: string;
  runtime: ContainerRuntime;
  /** The OCI runtime spec: `typeUrl` OCI_SPEC_TYPE_URL, `value` its JSON bytes. */
  spec?: AnyMessage;
  snapshotter: string;
  snapshotKey: string;
  createdAt: Date;
  updatedAt: Date;
  extensions: Record<string, AnyMessage>;
  /** containerd 1.7's sandbox id; empty when none. */
  sandbox: string;
}

export type NewContainer = Pick<Container, 'id' | 'runtime'> &
  Partial<Omit<Container, 'id' | 'runtime' | 'createdAt' | 'updatedAt'>>;

/** containerd's containers.Store, per namespace. Publishes /containers/{create,update,delete}. */
export interface ContainerStore {
  /** NotFound if absent. */
  get(namespace: string, id: string): Promise<Container>;
  /** Containers matching any filter (fields `id`, `image`, `runtime.name`, `snapshotter`, `labels.<k>`). */
  list(namespace: string, filters?: string[]): Promise<Container[]>;
  /** AlreadyExists if the id is taken; InvalidArgument for a bad id or a missing runtime name. */
  create(namespace: string, container: NewContainer): Promise<Container>;
  /**
   * Updates `fieldpaths` (`labels`, `labels.<k>`, `image`, `spec`, `snapshotkey`,
   * `extensions`, `extensions.<k>`); none means whichever of labels, image,
   * spec, snapshot key and extensions `container` carries (containerd's full
   * replace; an absent field is kept). `runtime` and `snapshotter` are
   * immutable (InvalidArgument as a path, or when given and different).
   * NotFound if absent.
   */
  update(namespace: string, container: Pick<Container, 'id'> & Partial<Container>, fieldpaths?: string[]): Promise<Container>;
  /** NotFound if absent. */
  delete(namespace: string, id: string): Promise<void>;
}
export const ContainerStore = Symbol.for('io.berth.ContainerStore');

export const ContainerTopics = {
  create: '/containers/create',
  update: '/containers/update',
  delete: '/containers/delete',
} as const;
