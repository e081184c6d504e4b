import { constants, openSync } from 'fs';
import * as net from 'net';
import * as readline from 'readline';
import type { Logger } from '@berth/core';

type LevelName = 'debug' | 'info' | 'warn' | 'error';

// logrus' text format: `time="…" level=info msg="…" key=value…`.
const levelPattern = /\blevel=(\w+)/;

/**
 * The daemon's side of a shim's `log` FIFO. A shim blocks (or loses logs)
 * when nobody reads it, so it is opened before the shim starts and drained
 * into the plugin's logger for as long as the task lives.
 */
export class ShimLog {
  private constructor(
    private readonly socket: net.Socket,
    lines: readline.Interface,
    logger: Logger,
  ) {
    lines.on('line', (line) => {
      if (line.trim()) logger[levelOf(line)]({ shimLog: true }, line);
    });
    socket.on('error', (err) => logger.debug({ err }, 'reading shim log'));
  }

  /**
   * Opens `fifo` read-write and non-blocking: opening a FIFO read-only blocks
   * (in libuv's thread pool) until a writer appears, and holding the write end
   * too means the stream never sees EOF when a shim restarts or the daemon
   * reconnects to a running one.
   */
  static open(fifo: string, logger: Logger): ShimLog {
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const socket = new net.Socket({ fd, readable: true, writable: false });
    const lines = readline.createInterface({ input: socket, crlfDelay: Infinity });
    return new ShimLog(socket, lines, logger);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Shim info lines (plugin loading, signal loop) are daemon debug noise; warnings and errors stay visible. */
function levelOf(line: string): LevelName {
  const level = levelPattern.exec(line)?.[1];
  switch (level) {
    case 'warning':
    case 'warn':
      return 'warn';
    case 'error':
    case 'fatal':
    case 'panic':
      return 'error';
    default:
      return 'debug';
  }
}
