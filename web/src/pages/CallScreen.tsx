import { useCallback, useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { ApiError, friendlyMessage, request, type Call, type Media, type Message, type Wallet } from "../api";
import { useAuth } from "../auth";
import { openEventStream } from "../events";
import { describeEndReason, formatCoins, formatDuration, formatRate, secondsUntil } from "../format";
import { translate, useT } from "../i18n";
import { useHeartbeat } from "../call/useHeartbeat";
import { useNow } from "../hooks";
import { ServerClock } from "../clock";
import { LiveKitMedia } from "../media/livekit";
import { P2PMedia, type SignalMessage } from "../media/p2p";
import { MediaControls, PeerBadges, usePeerState } from "../media/controls";
import { ChatPanel, useChat } from "../call/ChatPanel";
import { loadMedia, loadStreamPosition, markJoined, wasJoined, saveStreamPosition } from "../session";

/** Seconds talked so far by the server's clock (`serverNowMs`), up to the paid time: a
 * smooth clock beside the billed time, which is the server's figure. */
export function talkTime(call: Call | null, serverNowMs: number): number | null {
  if (!call?.started_at) return null;
  const end = call.ended_at ?? call.paid_until;
  const until = end ? Math.min(serverNowMs, Date.parse(end)) : serverNowMs;
  return Math.max(0, Math.floor((until - Date.parse(call.started_at)) / 1000));
}

/** The countdown to the next charge; at 0, "charging…" until the server has charged. */
export function nextChargeText(call: Call | null, untilCharge: number | null): string {
  if (call?.status !== "active" || untilCharge === null) return "—";
  return untilCharge > 0 ? translate("talk.seconds", { seconds: untilCharge }) : translate("call.charging");
}

/** Whether remote video really plays: it has a size and its clock moves. */
function remotePlaying(video: HTMLVideoElement | null, last: { t: number }): boolean {
  if (!video) return false;
  const playing = video.videoWidth > 0 && video.currentTime > last.t;
  last.t = video.currentTime;
  return playing;
}

const STATUS = {
  ringing: "status.ringing",
  connecting: "status.connecting",
  active: "status.active",
  ended: "status.ended",
} as const;

export function CallScreen() {
  const { token, user } = useAuth();
  const t = useT();
  const callId = Number(useParams().callId);
  const [call, setCall] = useState<Call | null>(null);
  const [wallet, setWallet] = useState<Wallet | null>(null);
  const [error, setError] = useState("");
  const [stream, setStream] = useState("connecting");
  const localVideo = useRef<HTMLVideoElement>(null);
  const remoteVideo = useRef<HTMLVideoElement>(null);
  const media = useRef<P2PMedia | LiveKitMedia | null>(null);
  const localStream = useRef<MediaStream | null>(null);
  // Signals that arrive before the camera is open (and so before the peer connection
  // exists) wait here instead of being lost: the caller's offer often comes first.
  const earlySignals = useRef<SignalMessage[]>([]);
  const latestCall = useRef<Call | null>(null);
  const ended = useRef(false);
  const [mediaReady, setMediaReady] = useState(false);
  // The call is read before the camera opens: an unknown call, or someone else's, says so
  // instead of filming the visitor and waiting forever.
  const [missing, setMissing] = useState(!Number.isInteger(callId) || callId <= 0);
  const known = call !== null && call.status !== "ended";
  const joined = useRef(false); // this page has offered (client) or asked for an offer (host)
  const peer = usePeerState(media, mediaReady);
  useNow(250); // re-render for the countdowns
  // Countdowns and talk time go by the server's clock, measured from its responses: a
  // local clock that is off would count down to a charge that is not due yet.
  const clock = useRef(new ServerClock());
  const heard = useCallback((c: Call) => clock.current.observe(c.server_time), []);
  const isClient = user.role === "client";
  const chat = useChat(callId, token);
  const receiveMessages = chat.receive;

  const stopMedia = useCallback(() => {
    media.current?.close();
    media.current = null;
    localStream.current?.getTracks().forEach((t) => t.stop());
    for (const v of [localVideo.current, remoteVideo.current]) if (v) v.srcObject = null;
  }, []);

  // Only the newest wallet read may land: an older one, still in flight when the call
  // ended, must not show the balance from before the final charge.
  const walletReads = useRef(0);
  const refreshWallet = useCallback(async () => {
    const read = ++walletReads.current;
    try {
      const fresh = await request<Wallet>("/v1/wallet", { token });
      if (read === walletReads.current) setWallet(fresh);
    } catch {
      /* shown again on the next change */
    }
  }, [token]);

  // The server's word on the call: the events stream, reconnecting by itself.
  useEffect(() => {
    let lastCharged = -1;
    const events = openEventStream({
      url: `/v1/calls/${callId}/events`,
      token,
      // a page that read this call's stream before (a reload, a return) skips the signals
      // meant for its earlier connection
      lastEventId: loadStreamPosition(callId) ?? undefined,
      isDone: () => ended.current,
      onStatus: setStream,
      onEvent: (event) => {
        if (event.event === "call") {
          const next = JSON.parse(event.data) as Call;
          heard(next);
          latestCall.current = next;
          setCall(next);
          if (next.status === "ended") setWallet(null); // the summary waits for the final balance
          if (next.charged !== lastCharged || next.status === "ended") {
            lastCharged = next.charged;
            void refreshWallet();
          }
          if (next.status === "ended") ended.current = true;
        } else if (event.event === "message") {
          receiveMessages([JSON.parse(event.data) as Message]);
        } else if (event.event === "signal") {
          const signal = JSON.parse(event.data) as SignalMessage;
          // the position moves past a signal only once a connection took it: one parked
          // while the camera opens must come again if this page reloads first
          if (media.current instanceof P2PMedia) {
            void media.current.handle(signal);
            if (event.id) saveStreamPosition(callId, event.id);
          } else earlySignals.current.push(signal);
        }
      },
    });
    return () => events.close();
  }, [callId, token, refreshWallet, receiveMessages]);

  useEffect(() => {
    if (missing) return;
    request<{ call: Call }>(`/v1/calls/${callId}`, { token })
      .then((out) => {
        heard(out.call);
        if (!latestCall.current) {
          latestCall.current = out.call;
          setCall(out.call);
          if (out.call.status === "ended") ended.current = true;
        }
      })
      .catch((e) => {
        if (e instanceof ApiError && (e.status === 404 || e.status === 403 || e.status === 422)) setMissing(true);
      });
  }, [callId, token, missing]);

  // Media: LiveKit with the issued token, or peer-to-peer, once the call is known to be ours.
  useEffect(() => {
    if (!known) return;
    const info = loadMedia<Media>(callId);
    let cancelled = false;
    const start = async () => {
      try {
        if (info?.provider === "livekit" && info.url && info.token) {
          const lk = new LiveKitMedia(info.url, info.token, localVideo.current!, remoteVideo.current!, () => {});
          media.current = lk;
          await lk.start();
          setMediaReady(true);
          return;
        }
        const local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
        if (cancelled) {
          local.getTracks().forEach((t) => t.stop());
          return;
        }
        localStream.current = local;
        if (localVideo.current) localVideo.current.srcObject = local;
        const p2p = new P2PMedia(callId, token, local, isClient ? "client" : "host", (remote) => {
          if (remoteVideo.current) remoteVideo.current.srcObject = remote;
        });
        media.current = p2p;
        for (const signal of earlySignals.current.splice(0)) {
          void p2p.handle(signal);
          saveStreamPosition(callId, `s${signal.id}`);
        }
        setMediaReady(true);
      } catch (e) {
        setError(translate("call.cameraUnavailable", { reason: (e as Error).message }));
      }
    };
    void start();
    return () => {
      cancelled = true;
      stopMedia();
    };
  }, [callId, token, stopMedia, isClient, known]);

  // Joining the media, once per page, once the host has picked up: the client offers; a
  // host page that joins again (a reload, a return to the call) asks for a fresh offer.
  const status = call?.status;
  useEffect(() => {
    const p2p = media.current;
    if (joined.current || !mediaReady || !(p2p instanceof P2PMedia)) return;
    if (!status || status === "ringing" || status === "ended") return;
    joined.current = true;
    if (isClient) void p2p.offer();
    else if (status === "active" || wasJoined(callId)) void p2p.restart();
    markJoined(callId);
  }, [status, mediaReady, isClient, callId]);

  // Heartbeats: still here, and whether the other side's media plays (call/useHeartbeat).
  const lastFrame = useRef({ t: 0 });
  useHeartbeat({
    callId,
    token,
    heartbeatSeconds: call?.heartbeat_seconds,
    nextChargeAt: call?.next_charge_at,
    serverNow: () => clock.current.now(),
    ended,
    mediaConnected: () => remotePlaying(remoteVideo.current, lastFrame.current),
    onCall: (answer) => {
      heard(answer);
      if (answer.status === "ended" && !ended.current) {
        ended.current = true;
        setWallet(null);
        setCall(answer);
        void refreshWallet();
      }
    },
  });

  // Leaving the page (a reload, another page, a closed tab) does not hang up: the call goes
  // on while this page can come back, and the server ends it once neither heartbeat nor
  // page has been seen for the heartbeat timeout, billed only to when this party was last
  // seen. Hanging up is the button.

  useEffect(() => {
    if (call?.status === "ended") {
      ended.current = true;
      stopMedia();
    }
  }, [call?.status, stopMedia]);

  async function hangUp() {
    try {
      const out = await request<{ call: Call }>(`/v1/calls/${callId}/end`, { token, method: "POST" });
      ended.current = true;
      setWallet(null);
      setCall(out.call);
      void refreshWallet();
    } catch (e) {
      setError(friendlyMessage(e));
    }
  }

  if (missing) {
    return (
      <section className="card summary" aria-label={t("call.noSuchTitle")}>
        <h2>{t("call.noSuchTitle")}</h2>
        <p>{t("call.noSuchText")}</p>
        <Link to="/">{t("call.backHome")}</Link>
      </section>
    );
  }

  if (call?.status === "ended") {
    return (
      <section className="card summary" aria-label={t("call.summary")}>
        <h2>{t("call.ended")}</h2>
        <p data-testid="end-reason">{t("call.endedBecause", { reason: describeEndReason(call.end_reason) })}</p>
        <dl className="stats">
          <div><dt>{t("call.duration")}</dt><dd data-testid="duration">{formatDuration(call.billed_seconds)}</dd></div>
          <div><dt>{t("call.charged")}</dt><dd data-testid="charged">{formatCoins(call.charged)}</dd></div>
          {!isClient && <div><dt>{t("call.youEarned")}</dt><dd data-testid="earned">{formatCoins(call.host_earned)}</dd></div>}
          {wallet && (
            <div><dt>{isClient ? t("call.balanceNow") : t("call.earningsNow")}</dt><dd data-testid="balance">{formatCoins(wallet.balance)}</dd></div>
          )}
        </dl>
        <p className="actions">
          <Link to="/">{t("call.backHome")}</Link>
          <Link to={`/calls/${callId}/receipt`}>{t("receipt.link")}</Link>
        </p>
        <ChatPanel callId={callId} token={token} me={user.id} isClient={isClient} messages={chat.messages} loaded={chat.loaded}
          onSent={receiveMessages} writable={false} tippable={call.started_at !== null} />
      </section>
    );
  }

  const serverNow = clock.current.now(); // read again at each re-render (every 250 ms)
  const untilCharge = secondsUntil(call?.next_charge_at, serverNow);
  const secondsLeft = secondsUntil(call?.paid_until, serverNow);
  const talkSeconds = talkTime(call, serverNow);
  return (
    <section className="call" aria-label={t("call.region")}>
      {call?.warning === "low_balance" && isClient && (
        <div role="alert" className="banner" data-testid="low-balance">
          {t("call.lowBalance", { seconds: secondsLeft ?? 0 })}{" "}
          {/* a new tab, so the call goes on; "opener" lets it share this tab's login */}
          <a href="/coins" target="_blank" rel="opener" aria-label={t("call.buyCoinsNewTab")}>{t("call.buyCoins")}</a>
        </div>
      )}
      {error && <p role="alert" className="error">{error}</p>}
      <PeerBadges peer={peer} />
      <div className="videos">
        <video ref={remoteVideo} autoPlay playsInline className="remote" data-testid="remote-video"
          aria-label={t("call.remoteVideo")} />
        <video ref={localVideo} autoPlay playsInline muted className="local" aria-label={t("call.localVideo")} />
      </div>
      <dl className="stats meter" aria-live="polite">
        <div><dt>{t("call.status")}</dt><dd data-testid="status" data-status={call?.status}>{call ? t(STATUS[call.status]) : "…"}</dd></div>
        <div aria-live="off"><dt>{t("call.talkTime")}</dt><dd data-testid="talk-time">{talkSeconds === null ? "—" : formatDuration(talkSeconds)}</dd></div>
        <div><dt>{t("call.billedTime")}</dt><dd data-testid="billed">{formatDuration(call?.billed_seconds ?? 0)}</dd></div>
        <div><dt>{isClient ? t("call.costSoFar") : t("call.earnedSoFar")}</dt>
          <dd data-testid="cost">{formatCoins((isClient ? call?.charged : call?.host_earned) ?? 0)}</dd></div>
        {isClient && <div><dt>{t("call.balance")}</dt><dd data-testid="balance">{wallet ? formatCoins(wallet.balance) : "…"}</dd></div>}
        <div><dt>{t("call.nextCharge")}</dt><dd data-testid="next-charge">{nextChargeText(call, untilCharge)}</dd></div>
        <div><dt>{t("call.rate")}</dt><dd>{call ? formatRate(call.rate, call.interval_seconds) : "…"}</dd></div>
      </dl>
      {stream === "reconnecting" && <p className="muted">{t("call.reconnecting")}</p>}
      <MediaControls media={media} ready={mediaReady} />
      <button type="button" className="danger" onClick={() => void hangUp()}>{t("call.hangUp")}</button>
      {call && (
        <ChatPanel callId={callId} token={token} me={user.id} isClient={isClient} messages={chat.messages} loaded={chat.loaded}
          onSent={receiveMessages} writable tippable={call.started_at !== null} />
      )}
    </section>
  );
}
