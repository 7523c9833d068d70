/** Coins out: the API's shapes and the pure logic of the host's earnings page and the
 * admin's payouts queue (money equivalents, the withdraw form's checks, status words, the
 * actions a payout allows). Coins become money at the server's `rate` (minor units per
 * coin); the page only multiplies and formats, the server decides what is paid. */

import { ApiError, friendlyMessage } from "./api";
import { formatPrice } from "./coins";
import { formatCoins } from "./format";

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

/** Coins as money at a rate: 2000 coins at 3 eur cents → "€60.00". */
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
  if (raw.trim() === "") return { ok: false, message: PAYOUT_TEXT.enterAmount };
  const amount = parseCoins(raw);
  if (amount === null || amount <= 0) return { ok: false, message: PAYOUT_TEXT.wholeCoins };
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
  if (param === "done") return enabled ? PAYOUT_TEXT.setupEnabled : PAYOUT_TEXT.setupDone;
  if (param === "refresh") return PAYOUT_TEXT.setupRefresh;
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

// --- Words (English for now; every sentence about payouts shared by both pages is here) ---

const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);

export const PAYOUT_TEXT = {
  enterAmount: "Enter how many coins to withdraw.",
  wholeCoins: "Enter a whole number of coins, like 1500.",
  belowMinimum: (minimum: number, money: string) => `A payout is at least ${formatCoins(minimum)} (${money}).`,
  exceedsMatured: (matured: number, maturing: number, holdDays: number) =>
    `Only ${formatCoins(matured)} ${plural(matured, "is", "are")} withdrawable now.` +
    (maturing > 0 ? ` ${formatCoins(maturing)} more ${plural(maturing, "becomes", "become")} withdrawable ${holdPhrase(holdDays)}.` : ""),
  tooMany: (pending: number | undefined) =>
    pending === undefined
      ? "You have too many payout requests waiting for review. Wait until they are reviewed, then try again."
      : `You have ${pending} payout ${plural(pending, "request", "requests")} waiting for review. Wait until ${plural(pending, "it is", "they are")} reviewed, then try again.`,
  notEnabled: "Set up your payout account first: payouts can be sent once it is ready.",
  setupDone: "Thanks, your payout account details were sent. Stripe confirms them shortly; this page updates when it does.",
  setupEnabled: "Your payout account is set up: you can withdraw your earnings.",
  setupRefresh: "The setup link expired before you finished. Start again to continue where you left off.",
  providerDown: "The payment service is not answering. The payout stays approved: approve it again in a while to retry the transfer.",
  stateChanged: "This payout changed meanwhile (someone else reviewed it); the list has been refreshed.",
};

/** When maturing earnings become withdrawable: "within 14 days". */
export function holdPhrase(days: number): string {
  return days <= 0 ? "shortly" : `within ${days} ${plural(days, "day", "days")}`;
}

/** The hold explained: "Earnings become withdrawable 14 days after they are earned." */
export function holdSentence(days: number): string {
  if (days <= 0) return "Earnings become withdrawable as soon as they are earned.";
  return `Earnings become withdrawable ${days} ${plural(days, "day", "days")} after they are earned.`;
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
        ? "That is more than has matured. Check the withdrawable amount and try again."
        : PAYOUT_TEXT.exceedsMatured(f.matured, f.maturing ?? 0, earnings?.hold_days ?? 0);
    case "payout_below_minimum":
      if (f.minimum === undefined) return "That is below the minimum payout.";
      return earnings
        ? PAYOUT_TEXT.belowMinimum(f.minimum, coinsAsMoney(f.minimum, earnings.rate, earnings.currency, locale))
        : `A payout is at least ${formatCoins(f.minimum)}.`;
    case "too_many_payouts":
      return PAYOUT_TEXT.tooMany(f.pending);
    case "payouts_not_enabled":
      return PAYOUT_TEXT.notEnabled;
    case "payment_provider_unavailable":
      return PAYOUT_TEXT.providerDown;
    case "invalid_payout_state":
      return PAYOUT_TEXT.stateChanged;
    case "idempotency_conflict":
      return "This request was already sent with another amount. Reload the page and try again.";
    case "forbidden":
      return "Only host accounts have earnings to withdraw.";
    default:
      return friendlyMessage(error);
  }
}

const HOST_LABELS: Record<PayoutStatus, string> = {
  requested: "Waiting for review",
  approved: "Approved, being paid",
  paid: "Paid",
  failed: "Payment failed",
  rejected: "Rejected",
  reversed: "Reversed",
};

const ADMIN_LABELS: Record<PayoutStatus, string> = {
  requested: "Requested",
  approved: "Approved",
  paid: "Paid",
  failed: "Failed",
  rejected: "Rejected",
  reversed: "Reversed",
};

/** A payout's status for the host ("Waiting for review"), or for the admin ("Requested"). */
export function payoutStatusLabel(status: string, audience: "host" | "admin" = "host"): string {
  const labels = audience === "host" ? HOST_LABELS : ADMIN_LABELS;
  const known = labels[status as PayoutStatus];
  if (known) return known;
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
  if (p.reference) notes.push(`Reference: ${p.reference}`);
  if (p.reason) notes.push(`Reason: ${p.reason}`);
  if (p.status === "failed" || p.status === "rejected") {
    notes.push(`The ${formatCoins(p.amount)} went back to your earnings.`);
  } else if (p.coins_returned > 0) {
    const back = formatCoins(p.coins_returned);
    notes.push(p.coins_returned >= p.amount ? `The transfer was reversed: ${back} went back to your earnings.`
      : `Part of the transfer was reversed: ${back} went back to your earnings.`);
  }
  return notes;
}

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
    .map(([status, [count, coins]]) => `${count.toLocaleString("en-US")} ${status.replace(/_/g, " ")} (${formatCoins(coins)})`);
  return parts.length ? parts.join(" · ") : "No payouts before";
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

/** Actions that need a sentence from the admin, and what it is called. */
export const ACTION_INPUT: Partial<Record<ReviewAction, { field: "reason" | "reference"; label: string }>> = {
  reject: { field: "reason", label: "Reason for rejecting" },
  paid: { field: "reference", label: "Payment reference (bank transfer, PayPal…)" },
  failed: { field: "reason", label: "Why the payment failed" },
};

/** The request an action sends. */
export function actionRequest(action: ReviewAction, payoutId: number, text: string): { path: string; body?: Record<string, string> } {
  const base = `/v1/admin/payouts/${payoutId}`;
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
  const what = `Payout #${p.id} (${formatCoins(p.amount)}, ${payoutMoney(p, locale)})`;
  if (p.status === "paid") return `${what} is paid${p.reference ? `, reference ${p.reference}` : ""}.`;
  if (p.status === "failed") return `${what} failed${p.reason ? `: ${p.reason}` : ""}. Its coins went back to the host.`;
  if (p.status === "rejected") return `${what} was rejected. Its coins went back to the host.`;
  if (p.status === "approved") {
    return p.provider === "stripe" ? `${what} is approved; the transfer is not confirmed yet.`
      : `${what} is approved. Pay it, then mark it paid with the reference.`;
  }
  return `${what} is now ${payoutStatusLabel(p.status, "admin").toLowerCase()}.`;
}
