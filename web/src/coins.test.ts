import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  afterPurchase,
  bestValuePackId,
  coinsWithBonus,
  defaultCurrency,
  entryKindLabel,
  formatDateTime,
  formatPrice,
  IntentKeys,
  minorUnitsPerMajor,
  nextPollMs,
  packsIn,
  parsePurchaseId,
  pricePerCoin,
  purchaseNotes,
  purchaseStatusLabel,
  purchaseStatusTone,
  returnView,
  safeCheckoutUrl,
  SLOW_AFTER_MS,
  type CoinPack,
  type Purchase,
  type ReturnInput,
} from "./coins";

import { speak } from "./i18n";

// Intl puts a no-break space between "12,99" and "€": compare with plain spaces.
const plain = (s: string) => s.replace(/[\u00a0\u202f]/g, " ");

function pack(id: string, coins: number, bonus: number, unitAmount: number, currency = "eur"): CoinPack {
  return { id, coins, bonus_coins: bonus, total_coins: coins + bonus, currency, unit_amount: unitAmount };
}

// The server's default catalogue: 5.0, 3.9, 3.6 and 3.3 cents a coin.
const EUR = [pack("eur-100", 100, 0, 499), pack("eur-330", 300, 30, 1299), pack("eur-700", 600, 100, 2499),
  pack("eur-1800", 1500, 300, 5999)];
const USD = EUR.map((p) => ({ ...p, id: p.id.replace("eur", "usd"), currency: "usd" }));

function purchase(over: Partial<Purchase> = {}): Purchase {
  return {
    id: 7, pack_id: "eur-330", coins: 300, bonus_coins: 30, currency: "eur", unit_amount: 1299,
    status: "pending", refunded_amount: 0, coins_reversed: 0, dispute: null,
    created_at: "2026-01-02T10:00:00Z", paid_at: null, checkout_url: "/test-checkout/cs_1", ...over,
  };
}

describe("formatPrice", () => {
  it("formats minor units in the pack's currency and the reader's locale", () => {
    expect(formatPrice(1299, "eur", "en-US")).toBe("€12.99");
    expect(formatPrice(1299, "usd", "en-US")).toBe("$12.99");
    expect(plain(formatPrice(1299, "eur", "es-ES"))).toBe("12,99 €");
    expect(formatPrice(500, "usd", "en-US")).toBe("$5.00");
    expect(formatPrice(123456, "usd", "en-US")).toBe("$1,234.56");
  });
  it("knows currencies without cents", () => {
    expect(minorUnitsPerMajor("eur")).toBe(100);
    expect(minorUnitsPerMajor("jpy")).toBe(1);
    expect(formatPrice(1299, "jpy", "en-US")).toBe("¥1,299");
  });
});

describe("pricePerCoin", () => {
  it("divides the price by every coin, bonus included, to three decimals", () => {
    expect(pricePerCoin(EUR[0], "en-US")).toBe("€0.050");
    expect(pricePerCoin(EUR[1], "en-US")).toBe("€0.039"); // 12.99 / 330
    expect(pricePerCoin(USD[3], "en-US")).toBe("$0.033"); // 59.99 / 1800
    expect(plain(pricePerCoin(EUR[2], "es-ES"))).toBe("0,036 €");
  });
  it("never divides by zero", () => {
    expect(pricePerCoin({ unit_amount: 100, total_coins: 0, currency: "eur" }, "en-US")).toBe("€1.000");
  });
});

describe("bestValuePackId", () => {
  it("picks the cheapest coins", () => {
    expect(bestValuePackId(EUR)).toBe("eur-1800");
    expect(bestValuePackId([EUR[1], EUR[0]])).toBe("eur-330");
  });
  it("prefers the bigger pack on a tie, and highlights nothing with one pack", () => {
    expect(bestValuePackId([pack("a", 100, 0, 500), pack("b", 200, 0, 1000)])).toBe("b");
    expect(bestValuePackId([EUR[0]])).toBeNull();
    expect(bestValuePackId([])).toBeNull();
  });
  it("compares exactly (no rounding of the per-coin price)", () => {
    // 0.0333… and 0.0334 both show "€0.033"
    expect(bestValuePackId([pack("x", 300, 0, 1002), pack("y", 300, 0, 1000)])).toBe("y");
  });
});

describe("packsIn", () => {
  it("keeps one currency, cheapest first", () => {
    expect(packsIn([...USD, ...EUR].reverse(), "eur").map((p) => p.id)).toEqual(EUR.map((p) => p.id));
  });
});

describe("defaultCurrency", () => {
  it("is EUR for Spanish, USD otherwise", () => {
    expect(defaultCurrency(["es-ES", "en"])).toBe("eur");
    expect(defaultCurrency(["es"])).toBe("eur");
    expect(defaultCurrency(["en-US", "es"])).toBe("usd");
    expect(defaultCurrency(["de-DE"])).toBe("usd");
    expect(defaultCurrency([])).toBe("usd");
    expect(defaultCurrency(["estonian-ish"])).toBe("usd");
  });
  it("only picks a currency the server offers", () => {
    expect(defaultCurrency(["es-ES"], ["usd"])).toBe("usd");
    expect(defaultCurrency(["en-US"], ["eur", "gbp"])).toBe("eur");
  });
});

describe("purchase status labels", () => {
  it("names every status", () => {
    expect(purchaseStatusLabel(purchase())).toBe("Waiting for payment");
    expect(purchaseStatusLabel(purchase({ status: "paid" }))).toBe("Paid");
    expect(purchaseStatusLabel(purchase({ status: "expired" }))).toBe("Expired, not charged");
    expect(purchaseStatusLabel(purchase({ status: "failed" }))).toBe("Payment failed");
    expect(purchaseStatusLabel(purchase({ status: "review" }))).toBe("Being reviewed");
  });
  it("says refunded and disputed", () => {
    expect(purchaseStatusLabel(purchase({ status: "paid", refunded_amount: 1299 }))).toBe("Refunded");
    expect(purchaseStatusLabel(purchase({ status: "paid", refunded_amount: 500 }))).toBe("Partly refunded");
    expect(purchaseStatusLabel(purchase({ status: "paid", dispute: "open" }))).toBe("Disputed");
    expect(purchaseStatusLabel(purchase({ status: "paid", dispute: "lost" }))).toBe("Dispute lost");
    expect(purchaseStatusLabel(purchase({ status: "paid", dispute: "won" }))).toBe("Paid");
  });
  it("gives each a tone", () => {
    expect(purchaseStatusTone(purchase({ status: "paid" }))).toBe("ok");
    expect(purchaseStatusTone(purchase())).toBe("wait");
    expect(purchaseStatusTone(purchase({ status: "failed" }))).toBe("bad");
    expect(purchaseStatusTone(purchase({ status: "expired" }))).toBe("off");
    expect(purchaseStatusTone(purchase({ status: "paid", dispute: "open" }))).toBe("bad");
  });
  it("lists refunds and coins taken back", () => {
    const p = purchase({ status: "paid", refunded_amount: 1299, coins_reversed: 330 });
    expect(purchaseNotes(p, "en-US")).toEqual(["Refunded €12.99", "330 coins taken back"]);
    expect(purchaseNotes(purchase({ status: "paid" }), "en-US")).toEqual([]);
    expect(purchaseNotes(purchase({ status: "paid", dispute: "open" }))[0]).toMatch(/disputed/);
  });
});

describe("entryKindLabel", () => {
  it("reads the wallet's entry kinds", () => {
    expect(entryKindLabel("purchase")).toBe("Coins bought");
    expect(entryKindLabel("purchase_bonus")).toBe("Bonus coins");
    expect(entryKindLabel("purchase_refund")).toBe("Purchase refunded");
    expect(entryKindLabel("dispute_hold")).toBe("On hold: payment disputed");
    expect(entryKindLabel("call_charge")).toBe("Call charge");
    expect(entryKindLabel("some_new_kind")).toBe("Some new kind");
  });
});

describe("returnView", () => {
  const base: ReturnInput = {
    purchaseId: 7, result: "success", purchase: null, notFound: false, fatalError: null, elapsedMs: 0,
  };

  it("waits after a successful checkout until the server says paid", () => {
    expect(returnView(base)).toEqual({ kind: "waiting", slow: false });
    expect(returnView({ ...base, purchase: purchase() })).toEqual({ kind: "waiting", slow: false });
    const paid = purchase({ status: "paid", paid_at: "2026-01-02T10:01:00Z" });
    expect(returnView({ ...base, purchase: paid })).toEqual({ kind: "paid", purchase: paid });
  });
  it("says when it takes long, and keeps waiting", () => {
    const view = returnView({ ...base, purchase: purchase(), elapsedMs: SLOW_AFTER_MS });
    expect(view).toEqual({ kind: "waiting", slow: true });
    expect(nextPollMs(view)).toBe(5000);
    expect(nextPollMs(returnView(base))).toBe(1500);
  });
  it("stops at a failure, an expiry or a review", () => {
    for (const status of ["failed", "expired"] as const) {
      const view = returnView({ ...base, purchase: purchase({ status }) });
      expect(view.kind).toBe("failed");
      expect(nextPollMs(view)).toBeNull();
    }
    const review = returnView({ ...base, purchase: purchase({ status: "review" }) });
    expect(review.kind).toBe("review");
    expect(nextPollMs(review)).toBeNull();
  });
  it("shows a cancel without polling, unless the purchase was paid after all", () => {
    const cancel = { ...base, result: "cancel" };
    expect(returnView(cancel)).toEqual({ kind: "cancelled" });
    expect(returnView({ ...cancel, purchase: purchase() })).toEqual({ kind: "cancelled" });
    // the server ends a cancelled checkout's purchase "expired"
    expect(returnView({ ...cancel, purchase: purchase({ status: "expired" }) })).toEqual({ kind: "cancelled" });
    expect(nextPollMs(returnView(cancel))).toBeNull();
    expect(returnView({ ...cancel, purchase: purchase({ status: "paid" }) }).kind).toBe("paid");
  });
  it("handles a bad link, an unknown purchase and a lost session", () => {
    expect(returnView({ ...base, purchaseId: null })).toEqual({ kind: "invalid" });
    expect(returnView({ ...base, notFound: true })).toEqual({ kind: "missing" });
    expect(returnView({ ...base, fatalError: "log in" })).toEqual({ kind: "error", message: "log in" });
    for (const kind of ["invalid", "missing", "error"]) {
      expect(nextPollMs({ kind } as never)).toBeNull();
    }
  });
  it("parses the purchase id of the address", () => {
    expect(parsePurchaseId("42")).toBe(42);
    for (const raw of [null, "", "0", "-1", "4.2", "abc", "1e3", "9".repeat(20)]) {
      expect(parsePurchaseId(raw)).toBeNull();
    }
  });
});

describe("safeCheckoutUrl", () => {
  const origin = "http://127.0.0.1:8000";
  it("follows https checkouts and same-origin paths only", () => {
    expect(safeCheckoutUrl("https://checkout.stripe.com/c/pay/cs_1", origin)).toBe("https://checkout.stripe.com/c/pay/cs_1");
    expect(safeCheckoutUrl("/test-checkout/cs_1", origin)).toBe("http://127.0.0.1:8000/test-checkout/cs_1");
    expect(safeCheckoutUrl("javascript:alert(1)", origin)).toBeNull();
    expect(safeCheckoutUrl("data:text/html,hi", origin)).toBeNull();
    expect(safeCheckoutUrl(null, origin)).toBeNull();
  });
  it("goes to the checkout while pending, else to the return page", () => {
    const pending = purchase();
    expect(afterPurchase({ purchase: pending, checkout_url: "/test-checkout/cs_1" }, origin))
      .toBe("http://127.0.0.1:8000/test-checkout/cs_1");
    expect(afterPurchase({ purchase: purchase({ status: "paid", checkout_url: null }), checkout_url: null }, origin))
      .toBe("/coins/return?purchase=7&result=success");
    expect(afterPurchase({ purchase: pending, checkout_url: null }, origin)).toBeNull();
  });
});

describe("IntentKeys", () => {
  it("reuses a key until its intent succeeds", () => {
    let n = 0;
    const keys = new IntentKeys(() => `k${++n}`);
    expect(keys.keyFor("eur-330")).toBe("k1");
    expect(keys.keyFor("eur-330")).toBe("k1"); // a retry or a double click
    expect(keys.keyFor("eur-100")).toBe("k2"); // another pack is another intent
    keys.done("eur-330");
    expect(keys.keyFor("eur-330")).toBe("k3"); // a new purchase
  });
});

describe("receipt words", () => {
  it("spells out the bonus coins", () => {
    expect(coinsWithBonus(300, 30)).toBe("330 coins (300 + 30 bonus)");
    expect(coinsWithBonus(1500, 300)).toBe("1,800 coins (1,500 + 300 bonus)");
    expect(coinsWithBonus(100, 0)).toBe("100 coins");
  });
  it("dates a receipt in the page's language", () => {
    expect(formatDateTime("2026-01-15T12:00:00Z")).toMatch(/^Jan 15, 2026, /);
    expect(formatDateTime("2026-01-15T12:00:00Z", "es")).toMatch(/^15 ene 2026, /);
  });
});

describe("in Spanish", () => {
  beforeAll(() => speak("es"));
  afterAll(() => speak("en"));

  it("prices, dates and coins follow the page's language", () => {
    expect(plain(formatPrice(1299, "eur"))).toBe("12,99 €");
    expect(plain(pricePerCoin(EUR[1]))).toBe("0,039 €");
    expect(formatDateTime("2026-01-15T12:00:00Z")).toMatch(/^15 ene 2026, /);
    expect(coinsWithBonus(15000, 3000)).toBe("18.000 monedas (15.000 + 3000 de regalo)");
    expect(coinsWithBonus(1, 0)).toBe("1 moneda");
  });
  it("names the statuses and notes of a purchase", () => {
    expect(purchaseStatusLabel(purchase())).toBe("Esperando el pago");
    expect(purchaseStatusLabel(purchase({ status: "paid", refunded_amount: 500 }))).toBe("Reembolsada en parte");
    expect(purchaseStatusLabel(purchase({ status: "paid", dispute: "open" }))).toBe("En disputa");
    expect(purchaseNotes(purchase({ status: "paid", refunded_amount: 1299, coins_reversed: 330 })).map(plain)).toEqual([
      "Reembolsado: 12,99 €", "330 monedas descontadas",
    ]);
    expect(purchaseNotes(purchase({ status: "paid", coins_reversed: 1 }))).toEqual(["1 moneda descontada"]);
    expect(purchaseNotes(purchase({ status: "review" }))).toEqual([
      "Nuestro equipo revisa este pago: se añadirán las monedas o se reembolsará el pago.",
    ]);
  });
});
