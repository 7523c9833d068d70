/** A call page's heartbeats: "still here" (and whether the other side's media plays), at the
 * period the server asks for, at once when the page opens or comes back into view, and just
 * after each billing boundary — the server bills only time both parties were seen. */
import { useCallback, useEffect, useRef, type MutableRefObject } from "react";
import { request, type Call } from "../api";
import { boundaryBeatDelayMs } from "../format";

/** How often to heartbeat: what the server asks for in the call (faster while the call is
 * being set up, a few beats a heartbeat timeout while active), 2 s until it is known. */
export function heartbeatPeriodMs(heartbeatSeconds: number | undefined): number {
  if (!heartbeatSeconds || heartbeatSeconds < 0) return 2000;
  return Math.min(60_000, Math.max(500, heartbeatSeconds * 1000));
}

export interface HeartbeatOptions {
  callId: number;
  token: string;
  heartbeatSeconds: number | undefined;
  nextChargeAt: string | null | undefined;
  /** The server's time now (ms), for the boundary beats. */
  serverNow: () => number;
  /** Set once the call has ended: no beat after it. */
  ended: MutableRefObject<boolean>;
  /** Whether the other side's media plays now. */
  mediaConnected: () => boolean;
  /** Every answer: the call as the server has it. */
  onCall: (call: Call) => void;
}

export function useHeartbeat(options: HeartbeatOptions): void {
  const { callId, token, heartbeatSeconds, nextChargeAt, ended } = options;
  const latest = useRef(options);
  latest.current = options;

  const beat = useCallback(() => {
    if (ended.current) return;
    const media_connected = latest.current.mediaConnected();
    request<{ call: Call }>(`/v1/calls/${callId}/heartbeat`, { token, body: { media_connected } })
      .then((out) => latest.current.onCall(out.call))
      .catch(() => {
        /* the next beat tries again; the server's timeout is a few periods long */
      });
  }, [callId, token, ended]);

  const period = heartbeatPeriodMs(heartbeatSeconds);
  useEffect(() => {
    const timer = setInterval(beat, period);
    return () => clearInterval(timer);
  }, [beat, period]);

  // A page that opens (a first join, a reload, a return) says so at once, and so does one
  // that comes back into view (a hidden tab's timers are slowed down by the browser).
  useEffect(() => beat(), [beat]);
  useEffect(() => {
    const onVisible = () => {
      if (document.visibilityState === "visible") beat();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [beat]);

  // One just after each billing boundary the call announces, even when next_charge_at moves
  // on before it fires (the meter moves it past a boundary neither heartbeat has covered
  // yet: cancelling that beat would leave the interval to the next periodic one).
  const boundaryBeats = useRef(new Map<string, ReturnType<typeof setTimeout>>());
  useEffect(() => {
    if (!nextChargeAt || boundaryBeats.current.has(nextChargeAt)) return;
    const delay = boundaryBeatDelayMs(nextChargeAt, latest.current.serverNow());
    if (delay === null) return;
    const timer = setTimeout(() => {
      boundaryBeats.current.delete(nextChargeAt);
      beat();
    }, delay);
    boundaryBeats.current.set(nextChargeAt, timer);
  }, [nextChargeAt, beat]);
  useEffect(() => {
    const timers = boundaryBeats.current;
    return () => {
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    };
  }, []);
}
