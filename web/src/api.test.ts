import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, friendlyMessage, request } from "./api";

describe("friendlyMessage", () => {
  it("says how many coins a call needs", () => {
    const e = new ApiError(402, "insufficient_funds", "not enough coins: 10 needed", { needed: 10 });
    expect(friendlyMessage(e)).toBe("Not enough coins, 10 needed.");
    // the number comes from the structured field, never from the English detail
    expect(friendlyMessage(new ApiError(402, "insufficient_funds", "not enough coins: 10 needed"))).toBe("Not enough coins.");
  });
  it("has a sentence for every error code the API returns", () => {
    for (const code of [
      "host_busy", "client_busy", "host_unavailable", "host_offline", "invalid_credentials", "rate_limited",
      "not_authenticated", "username_taken", "media_unavailable", "call_ended", "rate_changed",
      "ring_cooldown", "busy", "account_frozen", "payment_provider_unavailable", "too_many_purchases",
    ]) {
      expect(friendlyMessage(new ApiError(409, code, "x"))).not.toBe("x");
    }
    // the server's rule ("String should match pattern …") never reaches a person
    const pattern = "username: String should match pattern '^[A-Za-z0-9_.-]{3,32}$'";
    expect(friendlyMessage(new ApiError(422, "validation_error", pattern, { field: "username" }))).toBe(
      "A username is 3 to 32 letters, digits, dots, dashes or underscores.",
    );
    expect(friendlyMessage(new ApiError(422, "validation_error", "x: bad", { field: "query.limit" }))).toMatch(/not valid/);
    expect(friendlyMessage(new ApiError(422, "validation_error", "amount: too big"))).not.toMatch(/too big/);
  });
  it("shows the host's new rate and how long to wait, from structured fields", () => {
    const changed = new ApiError(409, "rate_changed", "the host's rate is now 12 coins", { rate: 10000 });
    expect(friendlyMessage(changed)).toBe("This host's rate is now 10,000 coins per interval. Call again to accept it.");
    const wait = new ApiError(429, "ring_cooldown", "wait", { retry_after: 42 });
    expect(friendlyMessage(wait)).toBe("Please wait 42 s before calling again.");
    expect(friendlyMessage(new ApiError(429, "ring_cooldown", "wait"))).toMatch(/wait a moment/);
  });
  it("tells a buyer to try again when the payment service is down", () => {
    const e = new ApiError(503, "payment_provider_unavailable", "stripe is down");
    expect(friendlyMessage(e)).toMatch(/Nothing was charged; try again/);
    expect(friendlyMessage(new ApiError(403, "account_frozen", "frozen"))).toMatch(/frozen/);
  });
  it("explains a network failure", () => {
    expect(friendlyMessage(new TypeError("Failed to fetch"))).toMatch(/could not be reached/);
  });
});

describe("request", () => {
  afterEach(() => vi.unstubAllGlobals());
  it("keeps an error's structured fields", async () => {
    const body = { error: "rate_changed", detail: "the host's rate is now 12 coins", rate: 12 };
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify(body), { status: 409 }));
    await expect(request("/v1/calls", { body: { host_id: 1, expected_rate: 10 } })).rejects.toMatchObject({
      status: 409,
      code: "rate_changed",
      fields: { rate: 12 },
    });
  });
  it("also reads errors shaped {error: {code, message}}", async () => {
    const body = { error: { code: "account_frozen", message: "the account is frozen" } };
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify(body), { status: 403 }));
    await expect(request("/v1/purchases", { body: { pack_id: "eur-330" } })).rejects.toMatchObject({
      status: 403,
      code: "account_frozen",
      detail: "the account is frozen",
    });
  });
});

describe("the addresses the client may ask for", () => {
  it("are the OpenAPI document's paths, checked by tsc", () => {
    const typed = () => {
      void request("/v1/calls/12/receipt?transcript=true");
      // @ts-expect-error a path the server's document does not have
      void request("/v1/call/12");
      // @ts-expect-error a path outside the API
      void request("https://evil.example/v1/me");
    };
    expect(typeof typed).toBe("function");
  });
});
