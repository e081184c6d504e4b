import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv-draft-04';

/** Where Debian's golang-github-opencontainers-specs-dev installs the runtime-spec JSON schema. */
export const SCHEMA_DIR = '/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema';

/**
 * A validator for config.json against the OCI runtime-spec schema. Throws
 * (failing the test) when the schema is not installed, or when a spec does not
 * validate, listing every violation.
 */
export function loadSpecValidator(): (spec: unknown) => void {
  const entry = join(SCHEMA_DIR, 'config-schema.json');
  if (!existsSync(entry)) {
    throw new Error(
      `OCI runtime-spec schema not found at ${entry}: run scripts/setup.sh ` +
        '(it installs Debian package golang-github-opencontainers-specs-dev)',
    );
  }
  const ajv = new Ajv({ allErrors: true, strict: false });
  // The schema files refer to each other by file name ("defs.json#/..."), so
  // each is registered under its own name.
  for (const file of readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.json'))) {
    ajv.addSchema(JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')), file);
  }
  const validate = ajv.getSchema('config-schema.json');
  if (!validate) throw new Error(`config-schema.json did not compile from ${SCHEMA_DIR}`);
  return (spec: unknown) => {
    if (!validate(spec)) {
      throw new Error(`spec does not match the OCI runtime-spec schema:\n${ajv.errorsText(validate.errors, { separator: '\n' })}`);
    }
  };
}
