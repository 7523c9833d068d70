import { describe, expect, it } from "vitest";
import { callsQuery, resultKnown, totalName } from "./pages/Admin";
import { ApiError } from "./api";
import { speak } from "./i18n";

describe("the admin's call filters", () => {
  it("asks for a status, one user's calls and whole local days", () => {
    const url = new URL(callsQuery({ status: "ringing", user_id: "12", since: "2026-11-01", until: "2026-11-02" }), "http://x");
    expect(url.searchParams.get("status")).toBe("ringing");
    expect(url.searchParams.get("user_id")).toBe("12");
    const since = new Date(url.searchParams.get("since")!);
    const until = new Date(url.searchParams.get("until")!);
    expect(until.getTime() - since.getTime()).toBeGreaterThanOrEqual(2 * 23 * 3600 * 1000); // both days
    expect(since.getHours()).toBe(0);
  });
  it("leaves out what is empty or not an id", () => {
    expect(callsQuery({ status: "", user_id: "abc", since: "", until: "" })).toBe("/v1/admin/calls?limit=50");
  });
  it("keeps a money form's key when the answer is unknown", () => {
    expect(resultKnown(new ApiError(409, "x", "y"))).toBe(true);
    expect(resultKnown(new ApiError(503, "busy", "y"))).toBe(false);
    expect(resultKnown(new TypeError("Failed to fetch"))).toBe(false);
  });
});

describe("a date no server time can hold", () => {
  it("filters nothing instead of breaking the page", () => {
    expect(callsQuery({ status: "", user_id: "", since: "20261-01-01", until: "" })).toBe("/v1/admin/calls?limit=50");
  });
});

describe("the ledger check's totals", () => {
  it("are named in the page's language", () => {
    expect(totalName("paid_out")).toBe("Paid out");
    speak("es");
    try {
      expect(totalName("paid_out")).toBe("Retiradas");
      expect(totalName("absorbed_by_platform")).toBe("Asumidas por la plataforma");
    } finally {
      speak("en");
    }
  });
  it("reads a name the page does not know as the server spells it", () => {
    expect(totalName("new_total")).toBe("new total");
  });
});
