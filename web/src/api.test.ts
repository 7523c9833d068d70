import { describe, expect, it } from "vitest";
import { ApiError, friendlyMessage } from "./api";

describe("friendlyMessage", () => {
  it("says how many coins a call needs", () => {
    const e = new ApiError(402, "insufficient_funds", "not enough coins: 10 needed");
    expect(friendlyMessage(e)).toBe("Not enough coins, 10 needed.");
  });
  it("has a sentence for every error code the API returns", () => {
    for (const code of [
      "host_busy", "client_busy", "host_unavailable", "invalid_credentials", "rate_limited",
      "not_authenticated", "username_taken", "media_unavailable", "call_ended", "busy",
    ]) {
      expect(friendlyMessage(new ApiError(409, code, "x"))).not.toBe("x");
    }
    expect(friendlyMessage(new ApiError(422, "validation_error", "amount: too big"))).toBe("amount: too big");
  });
  it("explains a network failure", () => {
    expect(friendlyMessage(new TypeError("Failed to fetch"))).toMatch(/could not be reached/);
  });
});
