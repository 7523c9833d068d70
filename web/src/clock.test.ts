import { describe, expect, it } from "vitest";
import { CLOCK_WINDOW, ServerClock } from "./clock";

const iso = (ms: number) => new Date(ms).toISOString();

describe("ServerClock", () => {
  it("follows the server, not a local clock that is minutes off", () => {
    const clock = new ServerClock();
    const server = Date.parse("2026-11-24T12:00:00Z");
    const local = server - 5 * 60_000; // this phone is 5 minutes behind
    clock.observe(iso(server), local + 120); // arrived after 120 ms on the way
    clock.observe(iso(server + 1000), local + 1000 + 30); // a faster response: a tighter bound
    expect(clock.now(local + 2000)).toBe(server + 2000 - 30);
  });

  it("never runs ahead of the server: every sample bounds it from below", () => {
    const clock = new ServerClock();
    for (const latency of [80, 15, 200, 40]) clock.observe(iso(10_000), 10_000 + latency);
    expect(clock.now(20_000)).toBe(20_000 - 15);
    expect(clock.now(20_000)).toBeLessThanOrEqual(20_000);
  });

  it("says nothing until the server has, and ignores what is not a time", () => {
    const clock = new ServerClock();
    clock.observe(undefined, 5);
    clock.observe("not a date", 5);
    expect(clock.now(1234)).toBe(1234);
  });

  it("forgets old samples, so a local clock that drifts is followed", () => {
    const clock = new ServerClock();
    clock.observe(iso(1_000_000), 1_000_000 - 500); // long ago, the local clock was 500 ms slow
    for (let i = 0; i < CLOCK_WINDOW; i++) clock.observe(iso(2_000_000 + i), 2_000_000 + i);
    expect(clock.offsetMs()).toBe(0);
  });
});
