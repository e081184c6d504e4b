import { InvalidArgumentError } from '../errdefs';

/**
 * A filter string that does not parse. Carries the expression and the offset
 * (UTF-16 index) of the offending input so callers can point at it.
 */
export class FilterSyntaxError extends InvalidArgumentError {
  readonly expression: string;
  readonly position: number;
  readonly reason: string;

  constructor(expression: string, position: number, reason: string, options?: { cause?: unknown }) {
    super(`invalid filter ${JSON.stringify(expression)} at position ${position}: ${reason}`, options);
    this.expression = expression;
    this.position = position;
    this.reason = reason;
  }
}
