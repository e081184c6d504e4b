import { Command } from 'commander';
import { BERTH_REVISION, BERTH_VERSION } from '@berth/core';
import type { CommandContext } from '../cli';

export function registerVersionCommand(program: Command, ctx: CommandContext): void {
  program
    .command('version')
    .description('print the client and server versions')
    .action(async () => {
      await ctx.withClient(async (client) => {
        const [server, identity] = await Promise.all([client.version(), client.introspection.server()]);
        if (ctx.options().format === 'json') {
          const client = { version: BERTH_VERSION, revision: BERTH_REVISION, node: process.version };
          process.stdout.write(JSON.stringify({ client, server: { ...server, uuid: identity.uuid } }, null, 2) + '\n');
          return;
        }
        process.stdout.write(
          [
            'Client:',
            `  Version:  ${BERTH_VERSION}`,
            `  Revision: ${BERTH_REVISION}`,
            `  Node:     ${process.version}`,
            '',
            'Server:',
            `  Version:  ${server.version}`,
            `  Revision: ${server.revision}`,
            `  UUID:     ${identity.uuid}`,
            '',
          ].join('\n'),
        );
      });
    });
}
