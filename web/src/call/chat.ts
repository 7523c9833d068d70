/** A call's chat, without React: what a line says, links in plain text, and the list of
 * messages a page holds (the history it read and what the stream delivered, each once). */
import type { Message } from "../api";
import { describeEndReason, formatCoins } from "../format";
import { translate } from "../i18n";

/** A piece of a message's text: plain text, or a web address shown as a link (never
 * fetched: no preview is made of it). */
export type Piece = { text: string } | { href: string };

const ADDRESS = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}]+$/; // "see https://x.org." ends the sentence, not the address

/** The text with its http(s) addresses marked; everything else stays text (never HTML). */
export function pieces(text: string): Piece[] {
  const out: Piece[] = [];
  let last = 0;
  for (const match of text.matchAll(ADDRESS)) {
    const start = match.index ?? 0;
    const address = match[0].replace(TRAILING, "");
    if (start > last) out.push({ text: text.slice(last, start) });
    out.push({ href: address });
    last = start + address.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** A system line in words: the call's own events, stored as codes. */
export function systemText(body: string): string {
  if (body === "connected") return translate("chat.connected");
  if (body === "low_balance") return translate("chat.lowBalance");
  const [code, value = ""] = body.split(":", 2);
  if (code === "charged") return translate("chat.charged", { coins: formatCoins(Number(value)) });
  if (code === "ended") return translate("chat.ended", { reason: describeEndReason(value || null) });
  return body.replace(/_/g, " ");
}

/** Messages by id, oldest first: a message read twice (history and stream) is one. */
export function merge(known: readonly Message[], more: readonly Message[]): Message[] {
  if (more.length === 0) return known as Message[];
  const byId = new Map(known.map((m) => [m.id, m]));
  for (const m of more) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** How many messages and tips from the other party arrived after `seenId`: the unread
 * badge of a closed chat (the call's own lines, a charge every interval, do not count). */
export function unread(messages: readonly Message[], me: number, seenId: number): number {
  return messages.filter((m) => m.id > seenId && m.kind !== "system" && m.sender_id !== me).length;
}

export const TIP_PRESETS = [10, 50, 100] as const;
