import type { SnapshotInfo } from '@berth/core';
import { mountCommands, snapshotTree } from './snapshots';

function info(name: string, parent = '', kind: SnapshotInfo['kind'] = 'committed'): SnapshotInfo {
  return { name, parent, kind, labels: {}, createdAt: new Date(0), updatedAt: new Date(0) };
}

describe('snapshots command output', () => {
  it('prints the tree as ctr does: roots first, two spaces and \\_ per level, children under their parent', () => {
    const tree = snapshotTree([info('c', 'b'), info('a'), info('b', 'a'), info('x', 'a', 'active'), info('other'), info('orphan', 'gone')]);
    expect(tree).toBe([' a', '  \\_ b', '    \\_ c', '  \\_ x', ' orphan', ' other', ''].join('\n'));
  });

  it('prints mount commands as ctr does, one per mount, joined to the target', () => {
    const out = mountCommands('/mnt/t', [
      { type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2'] },
      { type: 'bind', source: '/src', target: 'sub', options: ['ro', 'rbind'] },
    ]);
    expect(out).toBe('mount -t overlay overlay /mnt/t -o index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2\nmount -t bind /src /mnt/t/sub -o ro,rbind\n');
  });
});
