// The lease header is read the same way by every service; the helper lives in @berth/core.
export { LEASE_METADATA_KEY, leaseOf } from '@berth/core';
