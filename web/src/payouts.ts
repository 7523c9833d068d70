/** Coins out: the API's shapes and the pure logic of the host's earnings page and the
 * admin's payouts queue (money equivalents, the withdraw form's checks, status words, the
 * actions a payout allows). Coins become money at the server's `rate` (minor units per
 * coin); the page only multiplies and formats, the server decides what is paid. */

import { ApiError, friendlyMessage, type ApiUrl } from "./api";
import { formatPrice } from "./coins";
import { formatCoins } from "./format";
import { translate, type MessageId } from "./i18n";

export type PayoutProviderName = "manual" | "stripe";

export interface Earnings {
  balance: number;
  pending: number; // held by requests awaiting review
  matured: number; // withdrawable now
  maturing: number; // earned within the hold
  paid: number;
  hold_days: number;
  minimum: number;
  currency: string;
  rate: number; // minor units per coin
  provider: PayoutProviderName;
  payouts_enabled: boolean;
}

export type PayoutStatus = "requested" | "approved" | "paid" | "failed" | "reversed" | "rejected";

export const PAYOUT_STATUSES: readonly PayoutStatus[] = ["requested", "approved", "paid", "failed", "rejected", "reversed"];

export interface Payout {
  id: number;
  host_id: number;
  amount: number;
  currency: string;
  rate: number;
  amount_minor: number;
  provider: PayoutProviderName | string;
  status: PayoutStatus;
  reference: string | null;
  reason: string | null;
  coins_returned: number;
  created_at: string;
  reviewed_at: string | null;
  settled_at: string | null;
}

export interface PayoutsPage {
  items: Payout[];
  next_before: number | null;
}

export interface ReviewItem {
  payout: Payout;
  host_history: Record<string, [number, number]>; // status -> [count, coins]
}

export interface ReviewPage {
  items: ReviewItem[];
  next_before: number | null;
}

/** Coins as money at a rate: 2000 coins at 3 eur cents → "€60.00" (in the page's language
 * unless a locale is given). */
export function coinsAsMoney(coins: number, rate: number, currency: string, locale?: string): string {
  return formatPrice(Math.max(0, Math.trunc(coins)) * rate, currency, locale);
}

/** A payout's own money amount (fixed when it was requested). */
export function payoutMoney(p: Pick<Payout, "amount_minor" | "currency">, locale?: string): string {
  return formatPrice(p.amount_minor, p.currency, locale);
}

/** A typed amount of coins: "2000", " 2000 ", "2,000" (grouped by thousands) → 2000; anything
 * else (decimals, signs, letters, "1,5") → null. */
export function parseCoins(raw: string): number | null {
  const text = raw.trim().replace(/[\s\u00a0\u202f]/g, "");
  if (/^\d{1,3}(,\d{3})+$/.test(text)) return Number(text.replace(/,/g, ""));
  if (!/^\d{1,12}$/.test(text)) return null;
  return Number(text);
}

export type WithdrawCheck = { ok: true; amount: number } | { ok: false; message: string };

/** The withdraw form's check before anything is sent: a whole number of coins, at least the
 * minimum, at most what has matured. The server checks again and has the last word. */
export function checkWithdrawal(
  raw: string,
  e: Pick<Earnings, "matured" | "maturing" | "minimum" | "hold_days" | "rate" | "currency">,
  locale?: string,
): WithdrawCheck {
  if (raw.trim() === "") return { ok: false, message: translate("payouts.enterAmount") };
  const amount = parseCoins(raw);
  if (amount === null || amount <= 0) return { ok: false, message: translate("payouts.wholeCoins") };
  if (amount < e.minimum) {
    return { ok: false, message: PAYOUT_TEXT.belowMinimum(e.minimum, coinsAsMoney(e.minimum, e.rate, e.currency, locale)) };
  }
  if (amount > e.matured) return { ok: false, message: PAYOUT_TEXT.exceedsMatured(e.matured, e.maturing, e.hold_days) };
  return { ok: true, amount };
}

/** What the earnings page offers: the withdraw form, a link to set up the Stripe account
 * payouts go to, or (matured below the minimum) a note on when it can. */
export type WithdrawView = "form" | "setup" | "not-yet";

export function withdrawView(e: Pick<Earnings, "provider" | "payouts_enabled" | "matured" | "minimum">): WithdrawView {
  if (e.provider === "stripe" && !e.payouts_enabled) return "setup";
  return e.matured >= e.minimum ? "form" : "not-yet";
}

/** The note for `/earnings?setup=…` (Stripe sends the browser back there), or null. */
export function setupNote(param: string | null, enabled: boolean | undefined): string | null {
  if (param === "done") return translate(enabled ? "payouts.setupEnabled" : "payouts.setupDone");
  if (param === "refresh") return translate("payouts.setupRefresh");
  return null;
}

/** Follows only an https link (Stripe's onboarding), one on this site, or (development and
 * tests, with a Stripe stand-in) a plain http one on this machine. */
export function safeExternalUrl(url: string | null | undefined, origin: string): string | null {
  if (!url) return null;
  try {
    const parsed = new URL(url, origin);
    if (parsed.protocol === "https:" || parsed.origin === origin) return parsed.href;
    const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(parsed.hostname);
    return parsed.protocol === "http:" && loopback ? parsed.href : null;
  } catch {
    return null;
  }
}

// --- Words (every sentence about payouts shared by both pages is here) ---

export const PAYOUT_TEXT = {
  belowMinimum: (minimum: number, money: string) => translate("payouts.belowMinimum", { coins: formatCoins(minimum), money }),
  exceedsMatured: (matured: number, maturing: number, holdDays: number) => {
    const now = translate("payouts.exceedsMatured", { count: matured, coins: formatCoins(matured) });
    if (maturing <= 0) return now;
    const later = translate("payouts.maturingMore", { count: maturing, coins: formatCoins(maturing), when: holdPhrase(holdDays) });
    return `${now} ${later}`;
  },
  tooMany: (pending: number | undefined) =>
    pending === undefined ? translate("payouts.tooManyPlain") : translate("payouts.tooMany", { count: pending }),
};

/** When maturing earnings become withdrawable: "within 14 days". */
export function holdPhrase(days: number): string {
  return days <= 0 ? translate("payouts.shortly") : translate("payouts.withinDays", { count: days });
}

/** The hold explained: "Earnings become withdrawable 14 days after they are earned." */
export function holdSentence(days: number): string {
  if (days <= 0) return translate("payouts.holdNone");
  return translate("payouts.hold", { count: days });
}

/** An error of the payout endpoints as a sentence, with the server's numbers. */
export function payoutErrorMessage(
  error: unknown,
  earnings?: Pick<Earnings, "rate" | "currency" | "hold_days"> | null,
  locale?: string,
): string {
  if (!(error instanceof ApiError)) return friendlyMessage(error);
  const f = error.fields;
  switch (error.code) {
    case "payout_exceeds_matured":
      return f.matured === undefined
        ? translate("payouts.exceedsPlain")
        : PAYOUT_TEXT.exceedsMatured(f.matured, f.maturing ?? 0, earnings?.hold_days ?? 0);
    case "payout_below_minimum":
      if (f.minimum === undefined) return translate("payouts.belowMinimumPlain");
      return earnings
        ? PAYOUT_TEXT.belowMinimum(f.minimum, coinsAsMoney(f.minimum, earnings.rate, earnings.currency, locale))
        : translate("payouts.belowMinimumCoins", { coins: formatCoins(f.minimum) });
    case "too_many_payouts":
      return PAYOUT_TEXT.tooMany(f.pending);
    case "payouts_not_enabled":
      return translate("payouts.notEnabled");
    case "payment_provider_unavailable":
      return translate("payouts.providerDown");
    case "invalid_payout_state":
      return translate("payouts.stateChanged");
    case "idempotency_conflict":
      return translate("payouts.idempotencyConflict");
    case "forbidden":
      return translate("payouts.onlyHosts");
    default:
      return friendlyMessage(error);
  }
}

const HOST_LABELS: Record<PayoutStatus, MessageId> = {
  requested: "payouts.status.requested",
  approved: "payouts.status.approved",
  paid: "payouts.status.paid",
  failed: "payouts.status.failed",
  rejected: "payouts.status.rejected",
  reversed: "payouts.status.reversed",
};

const ADMIN_LABELS: Record<PayoutStatus, MessageId> = {
  requested: "payouts.adminStatus.requested",
  approved: "payouts.adminStatus.approved",
  paid: "payouts.adminStatus.paid",
  failed: "payouts.adminStatus.failed",
  rejected: "payouts.adminStatus.rejected",
  reversed: "payouts.adminStatus.reversed",
};

/** Whether `status` is one this page knows (an own key: "toString" is not a status). */
function isPayoutStatus(status: string): status is PayoutStatus {
  return (PAYOUT_STATUSES as readonly string[]).includes(status);
}

/** A payout's status for the host ("Waiting for review"), or for the admin ("Requested"); a
 * status this page does not know yet reads as its words. */
export function payoutStatusLabel(status: string, audience: "host" | "admin" = "host"): string {
  if (isPayoutStatus(status)) return translate((audience === "host" ? HOST_LABELS : ADMIN_LABELS)[status]);
  const words = status.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A CSS tone for the status badge. */
export function payoutStatusTone(status: string): "ok" | "wait" | "bad" | "off" {
  if (status === "paid") return "ok";
  if (status === "requested" || status === "approved") return "wait";
  if (status === "failed" || status === "reversed") return "bad";
  return "off";
}

/** The lines under a payout: its reference, why it failed or was refused, coins back. */
export function payoutNotes(p: Pick<Payout, "status" | "reference" | "reason" | "coins_returned" | "amount">): string[] {
  const notes: string[] = [];
  if (p.reference) notes.push(translate("payouts.reference", { reference: p.reference }));
  if (p.reason) notes.push(translate("payouts.reason", { reason: p.reason }));
  if (p.status === "failed" || p.status === "rejected") {
    notes.push(translate("payouts.wentBack", { coins: formatCoins(p.amount), count: p.amount }));
  } else if (p.coins_returned > 0) {
    const back = { coins: formatCoins(p.coins_returned), count: p.coins_returned };
    notes.push(translate(p.coins_returned >= p.amount ? "payouts.reversedAll" : "payouts.reversedPart", back));
  }
  return notes;
}

const HISTORY_PARTS: Record<PayoutStatus, MessageId> = {
  requested: "payouts.history.requested",
  approved: "payouts.history.approved",
  paid: "payouts.history.paid",
  failed: "payouts.history.failed",
  rejected: "payouts.history.rejected",
  reversed: "payouts.history.reversed",
};

/** A host's payout history for the reviewer, most telling first:
 * {paid: [2, 3000], rejected: [1, 500]} → "2 paid (3,000 coins) · 1 rejected (500 coins)". */
export function hostHistoryLine(history: Record<string, [number, number]>): string {
  const order = (s: string) => {
    const i = PAYOUT_STATUSES.indexOf(s as PayoutStatus);
    return i === -1 ? PAYOUT_STATUSES.length : i;
  };
  const parts = Object.entries(history)
    .filter(([, [count]]) => count > 0)
    .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([status, [count, coins]]) =>
      isPayoutStatus(status)
        ? translate(HISTORY_PARTS[status], { count, coins: formatCoins(coins) })
        : translate("payouts.history.other", { count, status: status.replace(/_/g, " "), coins: formatCoins(coins) }),
    );
  return parts.length ? parts.join(" · ") : translate("payouts.history.none");
}

export type ReviewAction = "approve" | "reject" | "paid" | "failed" | "retry";

/** What an admin can do with a payout: review a request; mark a manual payout that was
 * approved paid or failed; approve again a Stripe payout whose transfer did not go through
 * (the provider was down). */
export function reviewActions(p: Pick<Payout, "status" | "provider">): ReviewAction[] {
  if (p.status === "requested") return ["approve", "reject"];
  if (p.status === "approved") return p.provider === "stripe" ? ["retry"] : ["paid", "failed"];
  return [];
}

/** Actions that need a sentence from the admin, and what it is called (a message id). */
export const ACTION_INPUT: Partial<Record<ReviewAction, { field: "reason" | "reference"; label: MessageId }>> = {
  reject: { field: "reason", label: "payouts.input.reject" },
  paid: { field: "reference", label: "payouts.input.paid" },
  failed: { field: "reason", label: "payouts.input.failed" },
};

/** The request an action sends. */
export function actionRequest(action: ReviewAction, payoutId: number, text: string): { path: ApiUrl; body?: Record<string, string> } {
  const base = `/v1/admin/payouts/${payoutId}` as const;
  switch (action) {
    case "approve":
    case "retry":
      return { path: `${base}/approve` };
    case "reject":
      return { path: `${base}/reject`, body: { reason: text.trim() } };
    case "paid":
      return { path: `${base}/paid`, body: { reference: text.trim() } };
    case "failed":
      return { path: `${base}/failed`, body: { reason: text.trim() } };
  }
}

/** What the admin is told once an action went through. */
export function actionDone(p: Payout, locale?: string): string {
  const what = translate("payouts.done.what", { id: p.id, coins: formatCoins(p.amount), money: payoutMoney(p, locale) });
  if (p.status === "paid") {
    return p.reference ? translate("payouts.done.paidReference", { what, reference: p.reference }) : translate("payouts.done.paid", { what });
  }
  if (p.status === "failed") {
    return p.reason ? translate("payouts.done.failedReason", { what, reason: p.reason }) : translate("payouts.done.failed", { what });
  }
  if (p.status === "rejected") return translate("payouts.done.rejected", { what });
  if (p.status === "approved") {
    return translate(p.provider === "stripe" ? "payouts.done.approvedStripe" : "payouts.done.approved", { what });
  }
  return translate("payouts.done.other", { what, status: payoutStatusLabel(p.status, "admin").toLowerCase() });
}
