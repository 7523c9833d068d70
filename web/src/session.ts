/** The logged-in user of this tab (sessionStorage: closing the tab logs out). */
import type { User } from "./api";

const KEY = "callmeter.session";

export interface Session {
  token: string;
  user: User;
  expiresAt: number;
}

export function loadSession(now = Date.now()): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  const session = JSON.parse(raw) as Session;
  return session.expiresAt > now ? session : null;
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(KEY, JSON.stringify(session));
  else sessionStorage.removeItem(KEY);
}

/** Media credentials for a call, kept for the call screen (create/accept return them once). */
export function saveMedia(callId: number, media: unknown): void {
  sessionStorage.setItem(`callmeter.media.${callId}`, JSON.stringify(media));
}

export function loadMedia<T>(callId: number): T | null {
  const raw = sessionStorage.getItem(`callmeter.media.${callId}`);
  return raw ? (JSON.parse(raw) as T) : null;
}

/** Where this tab last read a call's event stream (its Last-Event-ID), so that the call page
 * coming back resumes after it instead of replaying an earlier connection's signals. */
export function saveStreamPosition(callId: number, eventId: string): void {
  sessionStorage.setItem(`callmeter.stream.${callId}`, eventId);
}

export function loadStreamPosition(callId: number): string | null {
  return sessionStorage.getItem(`callmeter.stream.${callId}`);
}

/** Whether this tab's call page joined the call's media before (then joining is rejoining). */
export function wasJoined(callId: number): boolean {
  return sessionStorage.getItem(`callmeter.joined.${callId}`) !== null;
}

export function markJoined(callId: number): void {
  sessionStorage.setItem(`callmeter.joined.${callId}`, "1");
}
