/** Operators that compare a field with a value. */
export type ValueOperator = '==' | '!=' | '~=';

/**
 * One `fieldpath[operator value]` term of a filter. `present` is the form
 * without operator: it only asks whether the field exists.
 */
export type Selector =
  | { fieldPath: string[]; operator: 'present' }
  | { fieldPath: string[]; operator: ValueOperator; value: string };
