export type Labels = Record<string, string>;

/** A namespace with its labels. */
export interface Namespace {
  name: string;
  labels: Labels;
}

/**
 * Tenancy: every resource lives in one namespace. Names follow containerd's
 * identifier rules (`^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$`, at most 76 chars).
 */
export interface NamespaceStore {
  /** InvalidArgument for a bad name or label; AlreadyExists if present. */
  create(name: string, labels?: Labels): Promise<void>;
  /** Labels of `name`; NotFound if it does not exist. */
  labels(name: string): Promise<Labels>;
  list(): Promise<Namespace[]>;
  /** Sets one label; an empty value removes it. NotFound if absent. */
  setLabel(name: string, key: string, value: string): Promise<void>;
  /** Replaces all labels. NotFound if absent. */
  setLabels(name: string, labels: Labels): Promise<void>;
  /** NotFound if absent; FailedPrecondition while it still holds resources. */
  delete(name: string): Promise<void>;
}
export const NamespaceStore = Symbol.for('io.berth.NamespaceStore');

/**
 * Decides whether a namespace still holds resources of one kind (images,
 * containers, content ...). Stores register one so namespace delete can refuse.
 */
export type NamespaceUsageCheck = (namespace: string) => string | undefined;

/** The metadata database (better-sqlite3, WAL) and the stores on it. */
export interface MetadataStore {
  readonly namespaces: NamespaceStore;
  /** Adds a check run before a namespace is deleted; returns the reason it is in use. */
  addNamespaceUsageCheck(check: NamespaceUsageCheck): void;
  close(): void;
}
export const MetadataStore = Symbol.for('io.berth.MetadataStore');
