/** The largest index.json, manifest.json, oci-layout, manifest, index or config an archive may hold, by default. */
export const DEFAULT_JSON_SIZE_LIMIT = 4 * 1024 * 1024;

/** The OCI image layout version this reads and writes. */
export const OCI_LAYOUT_VERSION = '1.0.0';
