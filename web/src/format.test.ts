import { describe, expect, it } from "vitest";
import {
  BOUNDARY_BEAT_LAG_MS,
  boundaryBeatDelayMs,
  describeEndReason,
  formatCoins,
  formatDuration,
  formatSignedCoins,
  secondsUntil,
} from "./format";

describe("formatDuration", () => {
  it("formats minutes and seconds", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(65)).toBe("1:05");
    expect(formatDuration(599.9)).toBe("9:59");
    expect(formatDuration(3725)).toBe("1:02:05");
  });
  it("never goes negative", () => {
    expect(formatDuration(-3)).toBe("0:00");
  });
});

describe("formatCoins", () => {
  it("groups thousands and says coin or coins", () => {
    expect(formatCoins(1)).toBe("1 coin");
    expect(formatCoins(10)).toBe("10 coins");
    expect(formatCoins(1234567)).toBe("1,234,567 coins");
    expect(formatCoins(-20)).toBe("−20 coins");
    expect(formatSignedCoins(5)).toBe("+5 coins");
    expect(formatSignedCoins(-5)).toBe("−5 coins");
  });
});

describe("secondsUntil", () => {
  it("counts whole seconds up and stops at zero", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    expect(secondsUntil("2026-01-01T12:00:10Z", now)).toBe(10);
    expect(secondsUntil("2026-01-01T12:00:09.2Z", now)).toBe(10);
    expect(secondsUntil("2026-01-01T11:59:00Z", now)).toBe(0);
    expect(secondsUntil(null, now)).toBeNull();
  });
});

describe("describeEndReason", () => {
  it("explains the reasons the server gives", () => {
    expect(describeEndReason("insufficient_funds")).toBe("the coins ran out");
    expect(describeEndReason("account_frozen")).toBe("a payment dispute froze the account");
    expect(describeEndReason("something_new")).toBe("something new");
    expect(describeEndReason(null)).toBe("");
  });
});

describe("boundaryBeatDelayMs", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");
  it("beats just after the next boundary", () => {
    expect(boundaryBeatDelayMs("2026-01-01T12:00:10Z", now)).toBe(10_000 + BOUNDARY_BEAT_LAG_MS);
  });
  it("does nothing without a boundary, for a bad date or one long past", () => {
    expect(boundaryBeatDelayMs(null, now)).toBeNull();
    expect(boundaryBeatDelayMs("not a date", now)).toBeNull();
    expect(boundaryBeatDelayMs("2026-01-01T11:59:00Z", now)).toBeNull();
    expect(boundaryBeatDelayMs("2027-01-01T12:00:00Z", now)).toBeNull();
  });
});

describe("formatRate", () => {
  it("says the rate per minute, per minutes or per seconds", async () => {
    const { formatRate } = await import("./format");
    expect(formatRate(10, 60)).toBe("10 coins per minute");
    expect(formatRate(25, 300)).toBe("25 coins per 5 minutes");
    expect(formatRate(1, 30)).toBe("1 coin per 30 s");
  });
});

describe("host search and profile lists", () => {
  it("asks the server only for what is filled in", async () => {
    const { hostsQuery } = await import("./pages/ClientHome");
    expect(hostsQuery({ q: "  ", language: "", tag: "" })).toBe("/v1/hosts");
    expect(hostsQuery({ q: "math tutor", language: "es", tag: "algebra" })).toBe("/v1/hosts?q=math+tutor&language=es&tag=algebra");
    const { splitList } = await import("./pages/Profile");
    expect(splitList(" es, EN ,,pt", true)).toEqual(["es", "en", "pt"]);
  });
});
