export * from './types';
export type { Selector, ValueOperator } from './ast';
export { FilterSyntaxError } from './errors';
export { parseFilter, parseFilters, parseSelectors } from './filter';
export { compileSelectors, matchEverything } from './compile';
export { formatFilter, formatField, formatValue } from './format';
export { adaptObject } from './adapt';
