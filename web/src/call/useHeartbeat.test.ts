// @vitest-environment jsdom
import { cleanup, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { heartbeatPeriodMs, useHeartbeat, type HeartbeatOptions } from "./useHeartbeat";

const T0 = Date.parse("2026-11-24T12:00:00Z");
let beats: number[] = [];

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
  beats = [];
  vi.stubGlobal("fetch", async () => {
    beats.push(Date.now() - T0);
    return new Response(JSON.stringify({ call: { id: 1, status: "active" } }), { status: 200 });
  });
});
afterEach(() => {
  cleanup(); // unmount: no listener of an earlier test stays
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

function options(over: Partial<HeartbeatOptions> = {}): HeartbeatOptions {
  return {
    callId: 1,
    token: "t",
    heartbeatSeconds: 10,
    nextChargeAt: null,
    serverNow: () => Date.now(),
    ended: { current: false },
    mediaConnected: () => true,
    onCall: () => {},
    ...over,
  };
}

describe("useHeartbeat", () => {
  it("beats at once when the page opens, then at the server's period", async () => {
    renderHook(() => useHeartbeat(options()));
    await vi.advanceTimersByTimeAsync(25_000);
    expect(beats).toEqual([0, 10_000, 20_000]);
  });

  it("beats just after each billing boundary, by the server's clock", async () => {
    const serverAhead = 3_000; // the local clock is 3 s behind the server's
    renderHook(() =>
      useHeartbeat(options({
        heartbeatSeconds: 60,
        nextChargeAt: new Date(T0 + 5_000).toISOString(),
        serverNow: () => Date.now() + serverAhead,
      })),
    );
    await vi.advanceTimersByTimeAsync(4_000);
    expect(beats).toEqual([0, 2_400]); // 0.4 s after the boundary on the server's clock
  });

  it("beats when the page comes back into view", async () => {
    renderHook(() => useHeartbeat(options({ heartbeatSeconds: 60 })));
    await vi.advanceTimersByTimeAsync(7_000);
    Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
    await vi.advanceTimersByTimeAsync(0);
    expect(beats).toEqual([0, 7_000]);
  });

  it("stops once the call has ended, and hands every answer on", async () => {
    const ended = { current: false };
    const answers: string[] = [];
    renderHook(() => useHeartbeat(options({ ended, onCall: (c) => answers.push(c.status) })));
    await vi.advanceTimersByTimeAsync(10_000);
    ended.current = true;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(beats).toEqual([0, 10_000]);
    expect(answers).toEqual(["active", "active"]);
  });

  it("keeps the period within reason", () => {
    expect([heartbeatPeriodMs(undefined), heartbeatPeriodMs(0.1), heartbeatPeriodMs(10), heartbeatPeriodMs(3600)]).toEqual([
      2000, 500, 10_000, 60_000,
    ]);
  });
});
