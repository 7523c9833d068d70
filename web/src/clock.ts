/**
 * The server's clock as this page can know it. Every call the server sends carries its
 * `server_time`; a response is never received before it was sent, so `server_time − the
 * local time it arrived` is at most the true offset between the clocks. The largest recent
 * sample is the tightest such bound: countdowns set by it never run ahead of the server,
 * whatever the local clock says (a phone minutes off, a laptop that slept).
 * The local time is `performance.now()` — monotonic: a wall clock set forward or back while
 * the page is open (NTP, a user) moves no sample.
 */
const monotonic = (): number => performance.now();
export const CLOCK_WINDOW = 30; // recent samples kept: a drifting local clock is followed

export class ServerClock {
  private samples: number[] = [];

  /** A call read from the server at `receivedAtMs` (local, `performance.now()` by default). */
  observe(serverTime: string | null | undefined, receivedAtMs: number = monotonic()): void {
    if (!serverTime) return;
    const at = Date.parse(serverTime);
    if (Number.isNaN(at)) return;
    this.samples.push(at - receivedAtMs);
    if (this.samples.length > CLOCK_WINDOW) this.samples.shift();
  }

  /** The offset to add to the local clock (0 until the server has said anything). */
  offsetMs(): number {
    return this.samples.length ? Math.max(...this.samples) : 0;
  }

  /** The server's time now, in ms, never ahead of it (local times: `performance.now()`). */
  now(localMs: number = monotonic()): number {
    return localMs + this.offsetMs();
  }
}
