import pino from 'pino';

/** Structured logger used throughout berth (pino's interface). */
export type Logger = pino.Logger;

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** A JSON logger writing to stderr. */
export function createLogger(level: LogLevel = 'info', bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...bindings } }, pino.destination(2));
}

/** A logger that drops everything (embedding default, tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
