// Hand-computed bytes for the cgroup statistics a runc shim's Stats answers
// (what `ctr tasks metrics` decodes): field numbers above 15 take two tag bytes.
import { cgroupsV1Metrics, cgroupsV2Metrics, packAny, unpackAny } from './index';
import { bytesOf, hex } from './test-fixtures/bytes';

describe('io.containerd.cgroups metrics', () => {
  it('v1: pids (2) and memory (4) with usage at field 33', () => {
    const metrics = cgroupsV1Metrics.Metrics.fromPartial({ pids: { current: '3' }, memory: { usage: { usage: '4096' } } });
    const bytes = cgroupsV1Metrics.Metrics.encode(metrics).finish();
    expect(hex(bytes)).toBe(bytesOf('12 02 08 03', '22 06', '8a02 03', '10 8020'));
    expect(cgroupsV1Metrics.Metrics.decode(bytes)).toEqual(metrics);
  });

  it('v1: decodes cpu usage with per-cpu values packed, as Go sends them', () => {
    const bytes = Buffer.from(bytesOf('1a 09', '0a 07', '08 ac02', '22 02 01 02'), 'hex');
    expect(cgroupsV1Metrics.Metrics.decode(bytes).cpu?.usage).toEqual({ total: '300', kernel: '0', user: '0', perCpu: ['1', '2'] });
  });

  it('v2: memory (4, field 3 unused) with usage at 32 and pids at 1', () => {
    const metrics = cgroupsV2Metrics.Metrics.fromPartial({ pids: { current: '1', limit: '0' }, memory: { usage: '8' } });
    const bytes = cgroupsV2Metrics.Metrics.encode(metrics).finish();
    expect(hex(bytes)).toBe(bytesOf('0a 02 08 01', '22 03', '8002 08'));
  });

  it('keeps values past 2^53 exact, as decimal strings (an unlimited memory limit)', () => {
    const unlimited = '9223372036854771712';
    const metrics = cgroupsV1Metrics.Metrics.fromPartial({ memory: { hierarchicalMemoryLimit: unlimited, usage: { limit: unlimited } } });
    const decoded = cgroupsV1Metrics.Metrics.decode(cgroupsV1Metrics.Metrics.encode(metrics).finish());
    expect(decoded.memory?.hierarchicalMemoryLimit).toBe(unlimited);
    expect(decoded.memory?.usage?.limit).toBe(unlimited);
    // uint64 max, 2^64 - 1, as a ten-byte varint.
    const max = cgroupsV2Metrics.Metrics.decode(Buffer.from(bytesOf('22 0b', '8802 ffffffffffffffffff01'), 'hex'));
    expect(max.memory?.usageLimit).toBe('18446744073709551615');
  });

  it('packs under the bare type names the shim uses', () => {
    const any = packAny(cgroupsV1Metrics.Metrics, cgroupsV1Metrics.Metrics.fromPartial({ pids: { current: '2' } }));
    expect(any.typeUrl).toBe('io.containerd.cgroups.v1.Metrics');
    expect(unpackAny(any, cgroupsV1Metrics.Metrics).pids?.current).toBe('2');
    expect(cgroupsV2Metrics.Metrics.$type).toBe('io.containerd.cgroups.v2.Metrics');
  });
});
