import { InvalidArgumentError } from '../errdefs';
import { EventEnvelope } from './types';

// containerd's identifier rules (identifiers.Validate): they keep namespaces and
// topic components safe as path components and in logs.
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const MAX_IDENTIFIER_LENGTH = 76;

function identifierProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > MAX_IDENTIFIER_LENGTH) return `must be at most ${MAX_IDENTIFIER_LENGTH} characters`;
  if (!IDENTIFIER.test(value)) return `must match ${IDENTIFIER.source}`;
  return undefined;
}

/** Throws InvalidArgument unless `namespace` is a valid containerd identifier. */
export function validateNamespaceName(namespace: string): void {
  const problem = identifierProblem(namespace);
  if (problem) throw new InvalidArgumentError(`invalid namespace ${JSON.stringify(namespace)}: ${problem}`);
}

/**
 * Throws InvalidArgument unless `topic` is `/`-rooted and every component is an
 * identifier, as containerd's exchange requires (`/tasks/exit`, `/images/create`).
 */
export function validateTopic(topic: string): void {
  const fail = (problem: string) => new InvalidArgumentError(`invalid topic ${JSON.stringify(topic)}: ${problem}`);
  if (topic === '') throw fail('must not be empty');
  if (!topic.startsWith('/')) throw fail("must start with '/'");
  if (topic === '/') throw fail('must have at least one component');
  for (const component of topic.slice(1).split('/')) {
    const problem = identifierProblem(component);
    if (problem) throw fail(`component ${JSON.stringify(component)} ${problem}`);
  }
}

/** What forward() accepts: publish's rules plus a timestamp set by the original publisher. */
export function validateEnvelope(envelope: EventEnvelope): void {
  validateNamespaceName(envelope.namespace);
  validateTopic(envelope.topic);
  const { timestamp } = envelope;
  if (!(timestamp instanceof Date) || Number.isNaN(timestamp.getTime())) {
    throw new InvalidArgumentError(`event on topic ${JSON.stringify(envelope.topic)}: timestamp must be set on forwarded event`);
  }
}
