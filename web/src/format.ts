/** Formatting of what the server says, in the page's language. The page never computes
 * charges. */
import { isMessageId, translate } from "./i18n";

export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  const base = `${mm}:${String(sec).padStart(2, "0")}`;
  return h > 0 ? `${h}:${base}` : base;
}

/** Talk time in words: "2 min", "1 min 30 s", "45 s". */
export function formatTalk(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  if (minutes === 0) return translate("talk.seconds", { seconds: rest });
  return rest === 0
    ? translate("talk.minutes", { minutes })
    : translate("talk.minutesSeconds", { minutes, seconds: rest });
}

/** A rate as a person reads it: "10 coins per minute", "5 coins per 30 s". */
export function formatRate(rate: number, intervalSeconds: number): string {
  const coins = formatCoins(rate);
  if (intervalSeconds === 60) return translate("rate.perMinute", { coins });
  if (intervalSeconds % 60 === 0) return translate("rate.perMinutes", { coins, minutes: intervalSeconds / 60 });
  return translate("rate.perSeconds", { coins, seconds: intervalSeconds });
}

export function formatCoins(coins: number): string {
  const n = Math.trunc(coins);
  const sign = n < 0 ? "−" : "";
  return `${sign}${translate("coins", { count: Math.abs(n) })}`;
}

export function formatSignedCoins(coins: number): string {
  return coins > 0 ? `+${formatCoins(coins)}` : formatCoins(coins);
}

/** Whole seconds from `now` until `iso` (0 once passed, null without a moment). */
/** How long after a billing boundary a page heartbeats (ms): late enough for the server's
 * clock to have passed it, early enough that the charge lands within a second. */
export const BOUNDARY_BEAT_LAG_MS = 400;

/** Milliseconds from ``nowMs`` until a heartbeat just after the next billing boundary, or
 * null when there is none (or it is absurdly far). The server bills only time both parties
 * were seen (their heartbeats): a beat just after each boundary means the completed
 * interval is billed at once, and a hang-up soon after a boundary does not lose it. */
export function boundaryBeatDelayMs(nextChargeAt: string | null | undefined, nowMs: number): number | null {
  if (!nextChargeAt) return null;
  const at = Date.parse(nextChargeAt);
  if (Number.isNaN(at)) return null;
  const delay = at - nowMs + BOUNDARY_BEAT_LAG_MS;
  return delay > 0 && delay <= 24 * 3600 * 1000 ? delay : null;
}

export function secondsUntil(iso: string | null | undefined, now: number): number | null {
  if (!iso) return null;
  return Math.max(0, Math.ceil((Date.parse(iso) - now) / 1000));
}


export function describeEndReason(reason: string | null): string {
  if (!reason) return "";
  const id = `reason.${reason}`;
  return isMessageId(id) ? translate(id) : reason.replace(/_/g, " ");
}
