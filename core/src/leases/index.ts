export * from './types';
export {
  SqliteLeaseManager,
  validateLeaseId,
  validateLeaseResource,
  MAX_LEASE_ID_LENGTH,
  type SqliteLeaseManagerOptions,
} from './lease-manager';
export { leaseExpiry, formatRfc3339 } from './expiry';
export { leasesPlugin, leasesServicePlugin } from './plugin';
