import { useCallback, useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { ApiError, friendlyMessage, request, type Call, type Wallet } from "../api";
import { useAuth } from "../auth";
import { describeEndReason, formatCoins, formatDuration, formatRate, secondsUntil } from "../format";
import { translate, useT } from "../i18n";
import { useHeartbeat } from "../call/useHeartbeat";
import { useNow } from "../hooks";
import { ServerClock } from "../clock";
import { MediaControls, PeerBadges, usePeerState } from "../media/controls";
import { ChatPanel, useChat } from "../call/ChatPanel";
import { useCallMedia } from "../call/useCallMedia";
import { useCallStream } from "../call/useCallStream";

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
  const latestCall = useRef<Call | null>(null);
  const ended = useRef(false);
  // The call is read before the camera opens: an unknown call, or someone else's, says so
  // instead of filming the visitor and waiting forever.
  const [missing, setMissing] = useState(!Number.isInteger(callId) || callId <= 0);
  const known = call !== null && call.status !== "ended";
  useNow(250); // re-render for the countdowns
  // Countdowns and talk time go by the server's clock, measured from its responses: a
  // local clock that is off would count down to a charge that is not due yet.
  const clock = useRef(new ServerClock());
  const heard = useCallback((c: Call) => clock.current.observe(c.server_time), []);
  const isClient = user.role === "client";
  const chat = useChat(callId, token);
  const receiveMessages = chat.receive;
  const media = useCallMedia({ callId, token, isClient, known, status: call?.status, onError: setError });
  const peer = usePeerState(media.media, media.ready);

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

  // The server's word on the call: its stream (call/useCallStream).
  const lastCharged = useRef(-1);
  const stream = useCallStream(callId, token, ended, {
    onCall: (next) => {
      heard(next);
      latestCall.current = next;
      setCall(next);
      if (next.status === "ended") setWallet(null); // the summary waits for the final balance
      if (next.charged !== lastCharged.current || next.status === "ended") {
        lastCharged.current = next.charged;
        void refreshWallet();
      }
      if (next.status === "ended") ended.current = true;
    },
    onSignal: media.handleSignal,
    onMessage: (message) => receiveMessages([message]),
  });

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
  }, [callId, token, missing, heard]);

  // Heartbeats: still here, and whether the other side's media plays (call/useHeartbeat).
  const lastFrame = useRef({ t: 0 });
  useHeartbeat({
    callId,
    token,
    heartbeatSeconds: call?.heartbeat_seconds,
    nextChargeAt: call?.next_charge_at,
    serverNow: () => clock.current.now(),
    ended,
    mediaConnected: () => remotePlaying(media.remoteVideo.current, lastFrame.current),
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

  const stopMedia = media.stop;
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
        <video ref={media.remoteVideo} autoPlay playsInline className="remote" data-testid="remote-video"
          aria-label={t("call.remoteVideo")} />
        <video ref={media.localVideo} autoPlay playsInline muted className="local" aria-label={t("call.localVideo")} />
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
      <MediaControls media={media.media} ready={media.ready} />
      <button type="button" className="danger" onClick={() => void hangUp()}>{t("call.hangUp")}</button>
      {call && (
        <ChatPanel callId={callId} token={token} me={user.id} isClient={isClient} messages={chat.messages} loaded={chat.loaded}
          onSent={receiveMessages} writable tippable={call.started_at !== null} />
      )}
    </section>
  );
}
