/**
 * Looks up a field path (e.g. `['labels', 'foo']`) on the object being filtered.
 * Returns undefined when the field is absent.
 */
export type FieldAdaptor = (fieldPath: string[]) => string | undefined;

/** A parsed filter: true when the object's fields satisfy it. */
export interface Filter {
  match(adaptor: FieldAdaptor): boolean;
}
