import { readFileSync } from 'fs';
import { parse as parseToml, TomlError } from 'smol-toml';
import { NotFoundError } from '../errdefs';
import { BerthConfig, BerthConfigSchema } from './berth-config';
import { ConfigError, configIssuesFromZod } from './config-error';

/**
 * Parses and validates a config file's text. `sourceName` (usually the file's
 * path) prefixes every error line. Throws ConfigError (InvalidArgument) listing
 * every unknown key and wrong value, or naming the line of a TOML syntax error.
 */
export function parseConfig(text: string, sourceName: string): BerthConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      // smol-toml's message carries a code excerpt after the first line; the
      // position is already in line/column, so keep the sentence only.
      const reason = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
      throw new ConfigError(
        sourceName,
        [{ path: '', message: `invalid TOML: ${reason}`, line: err.line, column: err.column }],
        { cause: err },
      );
    }
    throw err;
  }
  const result = BerthConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(sourceName, configIssuesFromZod(result.error.issues, raw));
  }
  return result.data;
}

/**
 * Reads and parses a config file. A missing file is NotFound, so berthd can fall
 * back to defaults for its default path yet fail for an explicit `--config`.
 * Synchronous: it runs once, before anything else could use the event loop.
 */
export function loadConfigFile(path: string): BerthConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`config file ${path}: not found`, { cause: err });
    }
    throw err;
  }
  return parseConfig(text, path);
}
