import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ApiError, request } from "./api";
import { entryKindLabel } from "./coins";
import { speak } from "./i18n";
import {
  actionDone,
  actionRequest,
  checkWithdrawal,
  coinsAsMoney,
  holdSentence,
  hostHistoryLine,
  parseCoins,
  payoutErrorMessage,
  payoutMoney,
  payoutNotes,
  payoutStatusLabel,
  payoutStatusTone,
  reviewActions,
  safeExternalUrl,
  setupNote,
  withdrawView,
  type Earnings,
  type Payout,
} from "./payouts";

const plain = (s: string) => s.replace(/[\u00a0\u202f]/g, " ");

function earnings(over: Partial<Earnings> = {}): Earnings {
  return {
    balance: 6000, pending: 0, matured: 5000, maturing: 1000, paid: 0, hold_days: 14, minimum: 1000,
    currency: "eur", rate: 3, provider: "manual", payouts_enabled: true, ...over,
  };
}

function payout(over: Partial<Payout> = {}): Payout {
  return {
    id: 9, host_id: 4, amount: 2000, currency: "eur", rate: 3, amount_minor: 6000, provider: "manual",
    status: "requested", reference: null, reason: null, coins_returned: 0, created_at: "2026-03-01T10:00:00Z",
    reviewed_at: null, settled_at: null, ...over,
  };
}

describe("money equivalents", () => {
  it("turns coins into money at the server's rate (minor units per coin)", () => {
    expect(coinsAsMoney(2000, 3, "eur", "en-US")).toBe("€60.00");
    expect(coinsAsMoney(1, 3, "usd", "en-US")).toBe("$0.03");
    expect(coinsAsMoney(0, 3, "eur", "en-US")).toBe("€0.00");
    expect(plain(coinsAsMoney(123457, 3, "eur", "es-ES"))).toBe("3703,71 €");
    expect(coinsAsMoney(1000, 7, "jpy", "en-US")).toBe("¥7,000");
  });
  it("shows a payout's own amount, fixed at its request", () => {
    expect(payoutMoney(payout(), "en-US")).toBe("€60.00");
    expect(payoutMoney(payout({ amount_minor: 123456, currency: "usd" }), "en-US")).toBe("$1,234.56");
  });
});

describe("parseCoins", () => {
  it("reads whole coins, with or without thousands commas", () => {
    expect(parseCoins("2000")).toBe(2000);
    expect(parseCoins(" 2000 ")).toBe(2000);
    expect(parseCoins("2,000")).toBe(2000);
    expect(parseCoins("1,234,567")).toBe(1234567);
    expect(parseCoins("2 000")).toBe(2000);
    expect(parseCoins("0")).toBe(0);
  });
  it("refuses anything else", () => {
    for (const raw of ["", "abc", "-5", "+5", "1.5", "1,5", "12,34", "1e3", "0x10", "9".repeat(13)]) {
      expect(parseCoins(raw)).toBeNull();
    }
  });
});

describe("checkWithdrawal", () => {
  const e = earnings();
  it("accepts an amount between the minimum and what has matured", () => {
    expect(checkWithdrawal("1000", e)).toEqual({ ok: true, amount: 1000 });
    expect(checkWithdrawal("5,000", e)).toEqual({ ok: true, amount: 5000 });
  });
  it("asks for an amount, and a whole one", () => {
    expect(checkWithdrawal("  ", e)).toEqual({ ok: false, message: "Enter how many coins to withdraw." });
    expect(checkWithdrawal("12.5", e)).toMatchObject({ ok: false, message: expect.stringMatching(/whole number/) });
    expect(checkWithdrawal("0", e)).toMatchObject({ ok: false, message: expect.stringMatching(/whole number/) });
  });
  it("says the minimum, in coins and money", () => {
    expect(checkWithdrawal("999", e, "en-US")).toEqual({ ok: false, message: "A payout is at least 1,000 coins (€30.00)." });
  });
  it("says what has matured and what is still maturing", () => {
    expect(checkWithdrawal("5001", e)).toEqual({
      ok: false,
      message: "Only 5,000 coins are withdrawable now. 1,000 coins more become withdrawable within 14 days.",
    });
    expect(checkWithdrawal("5001", earnings({ maturing: 0 }))).toEqual({
      ok: false, message: "Only 5,000 coins are withdrawable now.",
    });
    expect(checkWithdrawal("2000", earnings({ matured: 1, maturing: 1, minimum: 1, hold_days: 1 }))).toEqual({
      ok: false, message: "Only 1 coin is withdrawable now. 1 coin more becomes withdrawable within 1 day.",
    });
  });
});

describe("withdrawView and the Stripe setup", () => {
  it("offers the form, the setup link, or says when", () => {
    expect(withdrawView(earnings())).toBe("form");
    expect(withdrawView(earnings({ matured: 999 }))).toBe("not-yet");
    expect(withdrawView(earnings({ provider: "stripe", payouts_enabled: false }))).toBe("setup");
    expect(withdrawView(earnings({ provider: "stripe", payouts_enabled: true }))).toBe("form");
    // the manual provider needs no account
    expect(withdrawView(earnings({ provider: "manual", payouts_enabled: false }))).toBe("form");
  });
  it("notes the return from Stripe", () => {
    expect(setupNote(null, false)).toBeNull();
    expect(setupNote("other", false)).toBeNull();
    expect(setupNote("done", false)).toMatch(/Stripe confirms them shortly/);
    expect(setupNote("done", true)).toMatch(/you can withdraw/);
    expect(setupNote("refresh", false)).toMatch(/expired/);
  });
  it("follows only https or same-site setup links", () => {
    const origin = "http://127.0.0.1:8000";
    expect(safeExternalUrl("https://connect.stripe.com/setup/e/acct_1/abc", origin)).toBe("https://connect.stripe.com/setup/e/acct_1/abc");
    expect(safeExternalUrl("/stand-in/onboard", origin)).toBe("http://127.0.0.1:8000/stand-in/onboard");
    expect(safeExternalUrl("http://127.0.0.1:9999/connect/setup/e/acct_1/x", origin)).toBe(
      "http://127.0.0.1:9999/connect/setup/e/acct_1/x",
    ); // a Stripe stand-in on this machine
    expect(safeExternalUrl("http://evil.example/x", origin)).toBeNull();
    expect(safeExternalUrl("ftp://127.0.0.1/x", origin)).toBeNull();
    expect(safeExternalUrl("javascript:alert(1)", origin)).toBeNull();
    expect(safeExternalUrl("", origin)).toBeNull();
  });
  it("explains the hold", () => {
    expect(holdSentence(14)).toBe("Earnings become withdrawable 14 days after they are earned.");
    expect(holdSentence(1)).toBe("Earnings become withdrawable 1 day after they are earned.");
    expect(holdSentence(0)).toBe("Earnings become withdrawable as soon as they are earned.");
  });
});

describe("payoutErrorMessage", () => {
  const e = earnings();
  it("reads the server's numbers", () => {
    const exceeds = new ApiError(409, "payout_exceeds_matured", "only 300 coins", { matured: 300, maturing: 700 });
    expect(payoutErrorMessage(exceeds, e)).toBe(
      "Only 300 coins are withdrawable now. 700 coins more become withdrawable within 14 days.",
    );
    const below = new ApiError(422, "payout_below_minimum", "at least 1000", { minimum: 1000 });
    expect(payoutErrorMessage(below, e, "en-US")).toBe("A payout is at least 1,000 coins (€30.00).");
    expect(payoutErrorMessage(below)).toBe("A payout is at least 1,000 coins.");
    const many = new ApiError(409, "too_many_payouts", "3 waiting", { pending: 3 });
    expect(payoutErrorMessage(many)).toBe(
      "You have 3 payout requests waiting for review. Wait until they are reviewed, then try again.",
    );
    expect(payoutErrorMessage(new ApiError(409, "too_many_payouts", "1", { pending: 1 }))).toMatch(/1 payout request waiting.*it is reviewed/);
  });
  it("has a sentence for each payout error, without the numbers too", () => {
    for (const code of [
      "payout_exceeds_matured", "payout_below_minimum", "too_many_payouts", "payouts_not_enabled",
      "payment_provider_unavailable", "invalid_payout_state", "idempotency_conflict", "forbidden",
    ]) {
      const message = payoutErrorMessage(new ApiError(409, code, "raw detail"));
      expect(message).not.toBe("raw detail");
      expect(message).toMatch(/^[A-Z].*\.$/);
    }
    expect(payoutErrorMessage(new ApiError(503, "payment_provider_unavailable", "x"))).toMatch(/approve it again/);
    // the field refused, in words; never the server's rule
    expect(payoutErrorMessage(new ApiError(422, "validation_error", "reason: too long", { field: "reason" }))).toBe(
      "Give a reason (at most 500 characters).",
    );
    expect(payoutErrorMessage(new TypeError("Failed to fetch"))).toMatch(/could not be reached/);
  });
});

describe("payout status words", () => {
  it("names each status for the host and the admin", () => {
    expect(payoutStatusLabel("requested")).toBe("Waiting for review");
    expect(payoutStatusLabel("approved")).toBe("Approved, being paid");
    expect(payoutStatusLabel("paid")).toBe("Paid");
    expect(payoutStatusLabel("failed")).toBe("Payment failed");
    expect(payoutStatusLabel("rejected")).toBe("Rejected");
    expect(payoutStatusLabel("reversed")).toBe("Reversed");
    expect(payoutStatusLabel("requested", "admin")).toBe("Requested");
    expect(payoutStatusLabel("on_hold")).toBe("On hold");
  });
  it("gives each a tone", () => {
    expect(payoutStatusTone("paid")).toBe("ok");
    expect(payoutStatusTone("requested")).toBe("wait");
    expect(payoutStatusTone("approved")).toBe("wait");
    expect(payoutStatusTone("failed")).toBe("bad");
    expect(payoutStatusTone("reversed")).toBe("bad");
    expect(payoutStatusTone("rejected")).toBe("off");
  });
  it("lists references, reasons and coins back", () => {
    expect(payoutNotes(payout())).toEqual([]);
    expect(payoutNotes(payout({ status: "paid", reference: "BANK-1" }))).toEqual(["Reference: BANK-1"]);
    expect(payoutNotes(payout({ status: "rejected", reason: "duplicate" }))).toEqual([
      "Reason: duplicate", "The 2,000 coins went back to your earnings.",
    ]);
    expect(payoutNotes(payout({ status: "failed", reason: "account closed" }))[1]).toMatch(/went back/);
    expect(payoutNotes(payout({ status: "paid", reference: "tr_1", coins_returned: 500 }))).toEqual([
      "Reference: tr_1", "Part of the transfer was reversed: 500 coins went back to your earnings.",
    ]);
    expect(payoutNotes(payout({ status: "reversed", reference: "tr_1", coins_returned: 2000 }))[1]).toMatch(/^The transfer was reversed/);
  });
  it("names the wallet entries of payouts", () => {
    expect(entryKindLabel("payout_approved")).toBe("Withdrawn (payout approved)");
    expect(entryKindLabel("payout_returned")).toBe("Payout not paid, coins back");
    expect(entryKindLabel("earnings_adjustment")).toBe("Earnings adjustment");
  });
});

describe("the review queue", () => {
  it("sums up a host's history, most telling first", () => {
    expect(hostHistoryLine({ rejected: [1, 500], paid: [2, 3000], requested: [1, 2000] })).toBe(
      "1 requested (2,000 coins) · 2 paid (3,000 coins) · 1 rejected (500 coins)",
    );
    expect(hostHistoryLine({})).toBe("No payouts before");
    expect(hostHistoryLine({ paid: [0, 0], odd_state: [1, 1] })).toBe("1 odd state (1 coin)");
  });
  it("offers the actions a payout allows", () => {
    expect(reviewActions(payout())).toEqual(["approve", "reject"]);
    expect(reviewActions(payout({ status: "approved" }))).toEqual(["paid", "failed"]);
    expect(reviewActions(payout({ status: "approved", provider: "stripe" }))).toEqual(["retry"]);
    for (const status of ["paid", "failed", "rejected", "reversed"] as const) {
      expect(reviewActions(payout({ status }))).toEqual([]);
    }
  });
  it("sends each action to its endpoint", () => {
    expect(actionRequest("approve", 9, "")).toEqual({ path: "/v1/admin/payouts/9/approve" });
    expect(actionRequest("retry", 9, "")).toEqual({ path: "/v1/admin/payouts/9/approve" });
    expect(actionRequest("reject", 9, " duplicate ")).toEqual({ path: "/v1/admin/payouts/9/reject", body: { reason: "duplicate" } });
    expect(actionRequest("paid", 9, "BANK-1")).toEqual({ path: "/v1/admin/payouts/9/paid", body: { reference: "BANK-1" } });
    expect(actionRequest("failed", 9, "closed")).toEqual({ path: "/v1/admin/payouts/9/failed", body: { reason: "closed" } });
  });
  it("says what happened", () => {
    expect(actionDone(payout({ status: "approved" }), "en-US")).toBe(
      "Payout #9 (2,000 coins, €60.00) is approved. Pay it, then mark it paid with the reference.",
    );
    expect(actionDone(payout({ status: "paid", reference: "BANK-1" }), "en-US")).toBe(
      "Payout #9 (2,000 coins, €60.00) is paid, reference BANK-1.",
    );
    expect(actionDone(payout({ status: "failed", provider: "stripe", reason: "account closed" }), "en-US")).toMatch(
      /failed: account closed\. Its coins went back to the host\.$/,
    );
    expect(actionDone(payout({ status: "rejected" }), "en-US")).toMatch(/was rejected/);
    expect(actionDone(payout({ status: "approved", provider: "stripe" }), "en-US")).toMatch(/not confirmed yet/);
  });
});

describe("request keeps the payout errors' numbers", () => {
  afterEach(() => vi.unstubAllGlobals());
  it("matured, maturing, minimum and pending", async () => {
    const body = { error: "payout_exceeds_matured", detail: "only 300", matured: 300, maturing: 700, minimum: "x" };
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify(body), { status: 409 }));
    const error = await request("/v1/payouts", { body: { amount: 5000 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).fields).toEqual({ matured: 300, maturing: 700 });
  });
});

describe("in Spanish", () => {
  beforeAll(() => speak("es"));
  afterAll(() => speak("en"));

  it("checks a withdrawal with the language's plurals and numbers", () => {
    const e = earnings({ matured: 15000, maturing: 12000 });
    expect(checkWithdrawal("", e)).toEqual({ ok: false, message: "Escribe cuántas monedas quieres retirar." });
    const below = checkWithdrawal("999", earnings());
    expect(!below.ok && plain(below.message)).toBe("El retiro mínimo es de 1000 monedas (30,00 €).");
    expect(checkWithdrawal("15001", e)).toEqual({
      ok: false,
      message: "Ahora solo se pueden retirar 15.000 monedas. 12.000 monedas más se podrán retirar en un plazo de 14 días.",
    });
    expect(checkWithdrawal("2000", earnings({ matured: 1, maturing: 1, minimum: 1, hold_days: 1 }))).toEqual({
      ok: false, message: "Ahora solo se puede retirar 1 moneda. 1 moneda más se podrá retirar en un plazo de 1 día.",
    });
    expect(holdSentence(1)).toBe("Las ganancias se pueden retirar 1 día después de ganarlas.");
    expect(holdSentence(0)).toBe("Las ganancias se pueden retirar en cuanto las ganas.");
    expect(payoutErrorMessage(new ApiError(409, "too_many_payouts", "1", { pending: 1 }))).toBe(
      "Tienes 1 solicitud de retiro pendiente de revisión. Espera a que la revisen e inténtalo de nuevo.",
    );
  });
  it("names statuses, notes and the review queue's lines", () => {
    expect(payoutStatusLabel("requested")).toBe("Pendiente de revisión");
    expect(payoutStatusLabel("requested", "admin")).toBe("Solicitado");
    expect(payoutStatusLabel("on_hold")).toBe("On hold");
    expect(payoutNotes(payout({ status: "rejected", reason: "duplicado" }))).toEqual([
      "Motivo: duplicado", "Las 2000 monedas volvieron a tus ganancias.",
    ]);
    expect(payoutNotes(payout({ status: "paid", reference: "tr_1", amount: 2, coins_returned: 1 }))).toEqual([
      "Referencia: tr_1", "Se revirtió parte de la transferencia: 1 moneda volvió a tus ganancias.",
    ]);
    expect(hostHistoryLine({ rejected: [1, 500], paid: [2, 30000], odd_state: [1, 1] })).toBe(
      "2 pagados (30.000 monedas) · 1 rechazado (500 monedas) · 1 odd state (1 moneda)",
    );
    expect(hostHistoryLine({})).toBe("Sin pagos anteriores");
    expect(plain(actionDone(payout({ status: "approved" })))).toBe(
      "El pago #9 (2000 monedas, 60,00 €) está aprobado. Págalo y después márcalo como pagado con la referencia.",
    );
    expect(actionDone(payout({ status: "reversed" }), "es")).toMatch(/ahora está revertido\.$/);
  });
});
