/** Buying coins: the API's shapes and the pure logic of the buy, return and test-checkout
 * pages (formatting, best value, status labels, the return page's states). Prices come
 * from the server in minor units (cents); the page only formats them. */

import { formatCoins } from "./format";
import { currentLocale, isMessageId, translate, type MessageId } from "./i18n";

export type Currency = "eur" | "usd";

export interface CoinPack {
  id: string;
  coins: number;
  bonus_coins: number;
  total_coins: number;
  currency: string;
  unit_amount: number; // minor units
}

export interface CoinPacks {
  provider: "test" | "stripe";
  currencies: string[];
  items: CoinPack[];
}

export type PurchaseStatus = "pending" | "paid" | "expired" | "failed" | "review";

export interface Purchase {
  id: number;
  pack_id: string;
  coins: number;
  bonus_coins: number;
  currency: string;
  unit_amount: number;
  status: PurchaseStatus;
  refunded_amount: number;
  coins_reversed: number;
  dispute: null | "open" | "won" | "lost";
  created_at: string;
  paid_at: string | null;
  checkout_url: string | null;
}

export interface PurchasesPage {
  items: Purchase[];
  next_before: number | null;
}

export interface PurchaseCreated {
  purchase: Purchase;
  checkout_url: string | null; // null when a repeated key finds the purchase no longer pending
}

export interface TestCheckoutSession {
  session_id: string;
  purchase_id: number;
  pack_id: string;
  coins: number;
  bonus_coins: number;
  currency: string;
  unit_amount: number;
  status: "open" | "complete" | "expired";
  success_url: string;
  cancel_url: string;
}

/** EUR for Spanish speakers, USD for everyone else; only a currency the server offers. */
export function defaultCurrency(languages: readonly string[], offered: readonly string[] = ["eur", "usd"]): string {
  const first = (languages[0] ?? "").toLowerCase();
  const wanted = first === "es" || first.startsWith("es-") ? "eur" : "usd";
  if (offered.includes(wanted)) return wanted;
  return offered[0] ?? wanted;
}

function currencyFormat(currency: string, locale: string, digits?: number): Intl.NumberFormat {
  const options: Intl.NumberFormatOptions = { style: "currency", currency: currency.toUpperCase() };
  if (digits !== undefined) {
    options.minimumFractionDigits = digits;
    options.maximumFractionDigits = digits;
  }
  return new Intl.NumberFormat(locale, options);
}

/** How many minor units make one major unit (100 for EUR and USD, 1 for JPY). */
export function minorUnitsPerMajor(currency: string): number {
  const digits = currencyFormat(currency, "en").resolvedOptions().maximumFractionDigits ?? 2;
  return 10 ** digits;
}

/** An amount in minor units as a price: 1299 eur → "€12.99" (en), "12,99 €" (es); in the
 * page's language unless a locale is given. */
export function formatPrice(unitAmount: number, currency: string, locale: string = currentLocale()): string {
  return currencyFormat(currency, locale).format(unitAmount / minorUnitsPerMajor(currency));
}

/** What one coin costs in a pack (bonus coins included), to three decimals: "€0.039". */
export function pricePerCoin(
  pack: Pick<CoinPack, "unit_amount" | "total_coins" | "currency">,
  locale: string = currentLocale(),
): string {
  const major = pack.unit_amount / minorUnitsPerMajor(pack.currency) / Math.max(1, pack.total_coins);
  return currencyFormat(pack.currency, locale, 3).format(major);
}

/** The pack whose coins cost least (ties: the bigger pack), or null with fewer than two. */
export function bestValuePackId(packs: readonly CoinPack[]): string | null {
  if (packs.length < 2) return null;
  let best: CoinPack | null = null;
  for (const pack of packs) {
    if (pack.total_coins <= 0) continue;
    if (best === null) {
      best = pack;
      continue;
    }
    // a/b < c/d without division: a*d < c*b (all positive)
    const cheaper = pack.unit_amount * best.total_coins - best.unit_amount * pack.total_coins;
    if (cheaper < 0 || (cheaper === 0 && pack.total_coins > best.total_coins)) best = pack;
  }
  return best?.id ?? null;
}

/** Packs in one currency, smallest first. */
export function packsIn(packs: readonly CoinPack[], currency: string): CoinPack[] {
  return packs.filter((p) => p.currency === currency).sort((a, b) => a.unit_amount - b.unit_amount);
}

/** A date and time in the page's language: "Jan 2, 2026, 10:00 AM", "2 ene 2026, 10:00". */
export function formatDateTime(iso: string, locale: string = currentLocale()): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

/** Coins with their bonus spelled out: "330 coins (300 + 30 bonus)", or just "100 coins". */
export function coinsWithBonus(coins: number, bonus: number): string {
  return bonus > 0
    ? translate("coins.withBonus", { total: formatCoins(coins + bonus), bought: coins, bonus })
    : formatCoins(coins);
}

// --- Words (every sentence about purchases shared by the coin pages is here) ---

const STATUS_LABELS: Record<PurchaseStatus, MessageId> = {
  pending: "coins.status.pending",
  paid: "coins.status.paid",
  expired: "coins.status.expired",
  failed: "coins.status.failed",
  review: "coins.status.review",
};

/** A purchase's status for a person, refunds and disputes included. */
export function purchaseStatusLabel(p: Pick<Purchase, "status" | "refunded_amount" | "unit_amount" | "dispute">): string {
  if (p.dispute === "open") return translate("coins.status.disputed");
  if (p.dispute === "lost") return translate("coins.status.disputeLost");
  if (p.status === "paid" && p.refunded_amount > 0) {
    return translate(p.refunded_amount >= p.unit_amount ? "coins.status.refunded" : "coins.status.partlyRefunded");
  }
  return Object.hasOwn(STATUS_LABELS, p.status) ? translate(STATUS_LABELS[p.status]) : p.status.replace(/_/g, " ");
}

/** A CSS tone for the status badge. */
export function purchaseStatusTone(p: Pick<Purchase, "status" | "refunded_amount" | "dispute">): "ok" | "wait" | "bad" | "off" {
  if (p.dispute === "open" || p.dispute === "lost") return "bad";
  if (p.status === "paid") return p.refunded_amount > 0 ? "off" : "ok";
  if (p.status === "pending" || p.status === "review") return "wait";
  if (p.status === "failed") return "bad";
  return "off";
}

/** Extra lines of a receipt: refunds, coins taken back, the dispute. */
export function purchaseNotes(p: Purchase, locale: string = currentLocale()): string[] {
  const notes: string[] = [];
  if (p.refunded_amount > 0) notes.push(translate("coins.note.refunded", { price: formatPrice(p.refunded_amount, p.currency, locale) }));
  if (p.coins_reversed > 0) {
    notes.push(translate("coins.note.takenBack", { coins: formatCoins(p.coins_reversed), count: p.coins_reversed }));
  }
  if (p.dispute === "open") notes.push(translate("coins.note.disputeOpen"));
  if (p.dispute === "won") notes.push(translate("coins.note.disputeWon"));
  if (p.dispute === "lost") notes.push(translate("coins.note.disputeLost"));
  if (p.status === "review") notes.push(translate("coins.note.review"));
  return notes;
}

/** A wallet entry's kind for a person ("purchase_bonus" → "Bonus coins"), in the page's
 * language; a kind this page does not know yet reads as its words. */
export function entryKindLabel(kind: string): string {
  const id = `kind.${kind}`;
  if (isMessageId(id)) return translate(id);
  const words = kind.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// --- The return page (/coins/return?purchase=&result=) ---

export type ReturnView =
  | { kind: "invalid" } // no purchase id in the address
  | { kind: "cancelled" } // the buyer cancelled at checkout
  | { kind: "waiting"; slow: boolean } // paid at checkout, the server has not confirmed yet
  | { kind: "paid"; purchase: Purchase }
  | { kind: "review"; purchase: Purchase }
  | { kind: "failed"; purchase: Purchase } // failed or expired: nothing charged
  | { kind: "missing" } // no such purchase (of this user)
  | { kind: "error"; message: string }; // cannot be read and will not be retried

export interface ReturnInput {
  purchaseId: number | null;
  result: string | null;
  purchase: Purchase | null; // the newest read, if any
  notFound: boolean; // the server answered 404
  fatalError: string | null; // an error polling does not fix (e.g. logged out)
  elapsedMs: number; // since the page opened
}

/** After this long without a confirmation the page says it is taking longer than usual. */
export const SLOW_AFTER_MS = 30_000;

/** Parses the purchase id of the return address (a positive integer, or null). */
export function parsePurchaseId(raw: string | null): number | null {
  if (!raw || !/^\d{1,15}$/.test(raw)) return null;
  const id = Number(raw);
  return id > 0 ? id : null;
}

/** What the return page shows, from the address and the newest read of the purchase. The
 * server's status wins over the address: a "cancel" return for a purchase that is paid
 * (paid in another tab) shows it paid. Any result but "cancel" waits for the server. */
export function returnView(input: ReturnInput): ReturnView {
  if (input.purchaseId === null) return { kind: "invalid" };
  if (input.fatalError) return { kind: "error", message: input.fatalError };
  if (input.notFound) return { kind: "missing" };
  const p = input.purchase;
  if (p?.status === "paid") return { kind: "paid", purchase: p };
  if (p?.status === "review") return { kind: "review", purchase: p };
  // a cancelled checkout ends its purchase "expired": still the cancel the buyer chose
  if (input.result === "cancel") return { kind: "cancelled" };
  if (p && (p.status === "failed" || p.status === "expired")) return { kind: "failed", purchase: p };
  return { kind: "waiting", slow: input.elapsedMs >= SLOW_AFTER_MS };
}

/** Milliseconds until the next read of the purchase, or null to stop: every 1.5 s while
 * waiting, every 5 s once it is slow; a cancel reads once (in case it was paid after all). */
export function nextPollMs(view: ReturnView): number | null {
  if (view.kind !== "waiting") return null;
  return view.slow ? 5000 : 1500;
}

/** Only http(s) addresses (or same-origin paths) are followed to a checkout. */
export function safeCheckoutUrl(url: string | null, origin: string): string | null {
  if (!url) return null;
  try {
    const parsed = new URL(url, origin);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Where Buy goes once the purchase exists: its checkout while pending, else (a repeated
 * key that found it already settled) the return page, which says how it ended. */
export function afterPurchase(out: PurchaseCreated, origin: string): string | null {
  if (out.purchase.status === "pending") return safeCheckoutUrl(out.checkout_url, origin);
  return `/coins/return?purchase=${out.purchase.id}&result=success`;
}

/** One Idempotency-Key per intent (here: per pack): a retry or a double click reuses the
 * key, so the server creates one purchase; a fresh key only once the intent succeeded. */
export class IntentKeys {
  private keys = new Map<string, string>();
  constructor(private readonly newKey: () => string = () => crypto.randomUUID()) {}

  keyFor(intent: string): string {
    let key = this.keys.get(intent);
    if (key === undefined) {
      key = this.newKey();
      this.keys.set(intent, key);
    }
    return key;
  }

  done(intent: string): void {
    this.keys.delete(intent);
  }
}
