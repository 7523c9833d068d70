/** What follows you on every page: host presence, the incoming call, the way back to a call. */
import { useEffect, useRef, useState } from "react";
import { Link, useLocation, useNavigate } from "react-router-dom";
import { friendlyMessage, request, type Call, type CallsPage, type Media } from "./api";
import { useAuth } from "./auth";
import { formatRate } from "./format";
import { useResource } from "./hooks";
import { saveMedia } from "./session";
import { translate, useT } from "./i18n";

/** How often a host's page says it is open (the server's timeout is 45 s by default). */
export const PRESENCE_PING_MS = 15_000;

/** A host is online while one of its pages is open: say so now and every 15 s. */
export function useHostPresence(enabled: boolean): void {
  const { token } = useAuth();
  useEffect(() => {
    if (!enabled) return;
    const ping = () => void request("/v1/hosts/me/presence", { token, method: "POST" }).catch(() => {});
    ping();
    const timer = setInterval(ping, PRESENCE_PING_MS);
    return () => clearInterval(timer);
  }, [enabled, token]);
}

/** The calls of the signed-in party, read often enough to ring and to lead back. */
export function useMyCalls(enabled: boolean, everyMs: number) {
  return useResource<CallsPage>(enabled ? "/v1/calls?limit=5" : null, everyMs);
}

/** The live call of this user, if any: a client's call until it ends, a host's once picked up. */
export function liveCall(page: CallsPage | null, user: { id: number; role: string }): Call | undefined {
  return page?.items.find((c) =>
    user.role === "client"
      ? c.client_id === user.id && c.status !== "ended"
      : c.host_id === user.id && (c.status === "connecting" || c.status === "active"),
  );
}

/** On every page but the call's own, while you have a call going on: the way back to it
 * (leaving the call page does not end the call). */
export function LiveCallBanner({ calls }: { calls: CallsPage | null }) {
  const { user } = useAuth();
  const { pathname } = useLocation();
  const t = useT();
  const live = liveCall(calls, user);
  if (!live || pathname === `/calls/${live.id}`) return null;
  return (
    <div className="banner live-call" role="status" data-testid="live-call">
      {live.status === "ringing" ? t("live.ringing") : t("live.inProgress")}
      <Link to={`/calls/${live.id}`}>{t("live.return")}</Link>
    </div>
  );
}

/** A ring tone made in the page (no file to fetch): two short beeps every 2 s. */
function useRingTone(on: boolean): void {
  useEffect(() => {
    if (!on || typeof AudioContext === "undefined") return;
    let audio: AudioContext | null = null;
    const beep = () => {
      try {
        audio ??= new AudioContext();
        for (const at of [0, 0.35]) {
          const tone = audio.createOscillator();
          const gain = audio.createGain();
          tone.frequency.value = 880;
          gain.gain.value = 0.08;
          tone.connect(gain).connect(audio.destination);
          tone.start(audio.currentTime + at);
          tone.stop(audio.currentTime + at + 0.2);
        }
      } catch {
        /* no sound allowed yet: the card and the notification still ring */
      }
    };
    beep();
    const timer = setInterval(beep, 2000);
    return () => {
      clearInterval(timer);
      void audio?.close();
    };
  }, [on]);
}

/** A host's incoming call, on every page: who calls, at what rate; accept or decline. */
export function IncomingCall({ calls, refresh }: { calls: CallsPage | null; refresh: () => Promise<void> }) {
  const { token, user } = useAuth();
  const navigate = useNavigate();
  const [message, setMessage] = useState("");
  const [answering, setAnswering] = useState(false);
  const inFlight = useRef(false); // two clicks in one frame: the first decides
  const t = useT();
  const ringing = calls?.items.find((c) => c.status === "ringing" && c.host_id === user.id);
  const caller = ringing ? calls?.names[ringing.client_id] ?? t("incoming.someone") : "";
  useRingTone(Boolean(ringing));

  // A browser notification once per ringing call, when the host allowed them.
  const notified = useRef<number | null>(null);
  useEffect(() => {
    if (!ringing || notified.current === ringing.id) return;
    notified.current = ringing.id;
    if (typeof Notification !== "undefined" && Notification.permission === "granted") {
      try {
        new Notification(translate("incoming.title"), { body: translate("incoming.notification", { caller }), tag: `call-${ringing.id}` });
      } catch {
        /* some browsers only notify from a service worker */
      }
    }
  }, [ringing, caller]);

  if (!ringing) return message ? <p role="alert" className="error banner-line">{message}</p> : null;

  async function answer(call: Call, accept: boolean) {
    if (inFlight.current) return;
    inFlight.current = true;
    setAnswering(true);
    setMessage("");
    try {
      if (accept) {
        const out = await request<{ call: Call; media: Media }>(`/v1/calls/${call.id}/accept`, { token, method: "POST" });
        saveMedia(call.id, out.media);
        navigate(`/calls/${call.id}`);
      } else {
        await request(`/v1/calls/${call.id}/decline`, { token, method: "POST" });
      }
    } catch (e) {
      setMessage(friendlyMessage(e));
    } finally {
      inFlight.current = false;
      setAnswering(false);
      await refresh();
    }
  }

  return (
    <section className="card ringing incoming" role="alertdialog" aria-label={t("incoming.title")}>
      <h2>{t("incoming.title")}</h2>
      <p data-testid="incoming-text">
        <strong data-testid="caller">{caller}</strong>{" "}
        {t("incoming.calling", { rate: formatRate(ringing.rate, ringing.interval_seconds) })}
      </p>
      <div className="row">
        <button type="button" disabled={answering} onClick={() => void answer(ringing, true)}>{t("incoming.accept")}</button>
        <button type="button" className="secondary" disabled={answering} onClick={() => void answer(ringing, false)}>{t("incoming.decline")}</button>
      </div>
    </section>
  );
}
