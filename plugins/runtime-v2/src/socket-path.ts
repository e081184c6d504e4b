/** The file path of a unix socket address (`unix:///run/x.sock` or `/run/x.sock`). */
export function socketPathOf(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}
