export { Applier, Comparer, type ApplyOptions, type CompareOptions, type SymlinkPolicy } from './types';
