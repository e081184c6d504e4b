// Go's time.Time{} (0001-01-01T00:00:00Z). containerd puts it in exited_at and
// similar non-nullable timestamps to mean "not set", so it shows up on the wire
// as seconds = -62135596800.
const goZeroTimeMillis = -62_135_596_800_000;

/** A fresh Date equal to Go's zero time (Dates are mutable, so no shared constant). */
export function goZeroTime(): Date {
  return new Date(goZeroTimeMillis);
}

/** True for a missing timestamp or Go's zero time, both of which mean "never" in containerd. */
export function isUnsetTime(date: Date | undefined): boolean {
  return date === undefined || date.getTime() === goZeroTimeMillis;
}
