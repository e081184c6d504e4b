import { FieldAdaptor } from '../filters';
import { EventEnvelope } from './types';

/**
 * The filter view of an envelope, as containerd's Envelope.Field: `topic` and
 * `namespace` (present when non-empty); the first path part alone decides.
 * `timestamp` is not filterable, and `event.*` needs decoding the payload,
 * which the exchange does not do, so those are absent.
 */
export function envelopeAdaptor(envelope: EventEnvelope): FieldAdaptor {
  return (fieldPath) => {
    switch (fieldPath[0]) {
      case 'topic':
        return nonEmpty(envelope.topic);
      case 'namespace':
        return nonEmpty(envelope.namespace);
      default:
        return undefined;
    }
  };
}

function nonEmpty(value: string): string | undefined {
  return value === '' ? undefined : value;
}
