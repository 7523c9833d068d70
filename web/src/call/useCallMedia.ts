/** A call page's media: LiveKit with a token the server issues at each join, or a peer-to-peer
 * connection signalled through the server, opened once the call is known to be this user's.
 * Signals that arrive before the camera is open wait instead of being lost (the caller's
 * offer often comes first). Joining happens once per page once the host picked up: the
 * client offers; a host page that joins again (a reload, a return) asks for a fresh offer. */
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, friendlyMessage, request, type Call, type Media } from "../api";
import { translate } from "../i18n";
import { LiveKitMedia } from "../media/livekit";
import { P2PMedia, type SignalMessage } from "../media/p2p";
import { loadMedia, markJoined, saveMedia, saveStreamPosition, wasJoined } from "../session";

export interface CallMediaOptions {
  callId: number;
  token: string | null;
  isClient: boolean;
  /** The call is known to be this user's and not ended: the camera may open. */
  known: boolean;
  status: Call["status"] | undefined;
  onError: (text: string) => void;
}

export function useCallMedia(options: CallMediaOptions) {
  const { callId, token, isClient, known, status } = options;
  const localVideo = useRef<HTMLVideoElement>(null);
  const remoteVideo = useRef<HTMLVideoElement>(null);
  const media = useRef<P2PMedia | LiveKitMedia | null>(null);
  const localStream = useRef<MediaStream | null>(null);
  const earlySignals = useRef<SignalMessage[]>([]);
  const joined = useRef(false); // this page has offered (client) or asked for an offer (host)
  const [ready, setReady] = useState(false);
  const onError = useRef(options.onError);
  onError.current = options.onError;

  const stop = useCallback(() => {
    media.current?.close();
    media.current = null;
    localStream.current?.getTracks().forEach((t) => t.stop());
    for (const v of [localVideo.current, remoteVideo.current]) if (v) v.srcObject = null;
  }, []);

  /** A signal from the stream: to the connection, or parked until it exists. The stream's
   * position moves past a signal only once a connection took it: one parked while the
   * camera opens must come again if this page reloads first. */
  const handleSignal = useCallback(
    (signal: SignalMessage, eventId: string | undefined) => {
      if (media.current instanceof P2PMedia) {
        void media.current.handle(signal);
        if (eventId) saveStreamPosition(callId, eventId);
      } else earlySignals.current.push(signal);
    },
    [callId],
  );

  useEffect(() => {
    if (!known) return;
    let cancelled = false;
    const start = async () => {
      try {
        // fresh credentials at every join (a LiveKit token lasts 10 minutes: a reload later
        // must not present an expired one; a new tab has none); this tab's last ones if the
        // server cannot be asked right now
        let info: Media | null;
        try {
          info = await request<Media>(`/v1/calls/${callId}/media`, { token });
          saveMedia(callId, info);
        } catch (e) {
          info = loadMedia<Media>(callId);
          if (!info) throw e;
        }
        if (cancelled) return;
        if (info?.provider === "livekit" && info.url && info.token) {
          const lk = new LiveKitMedia(info.url, info.token, localVideo.current!, remoteVideo.current!, () => {});
          media.current = lk;
          await lk.start();
          setReady(true);
          return;
        }
        const local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
        if (cancelled) {
          local.getTracks().forEach((t) => t.stop());
          return;
        }
        localStream.current = local;
        if (localVideo.current) localVideo.current.srcObject = local;
        const p2p = new P2PMedia(callId, token ?? "", local, isClient ? "client" : "host", (remote) => {
          if (remoteVideo.current) remoteVideo.current.srcObject = remote;
        });
        media.current = p2p;
        for (const signal of earlySignals.current.splice(0)) {
          void p2p.handle(signal);
          saveStreamPosition(callId, `s${signal.id}`);
        }
        setReady(true);
      } catch (e) {
        onError.current(
          e instanceof ApiError
            ? friendlyMessage(e)
            : translate("call.cameraUnavailable", { reason: (e as Error).message }),
        );
      }
    };
    void start();
    return () => {
      cancelled = true;
      stop();
    };
  }, [callId, token, stop, isClient, known]);

  useEffect(() => {
    const p2p = media.current;
    if (joined.current || !ready || !(p2p instanceof P2PMedia)) return;
    if (!status || status === "ringing" || status === "ended") return;
    joined.current = true;
    if (isClient) void p2p.offer();
    else if (status === "active" || wasJoined(callId)) void p2p.restart();
    markJoined(callId);
  }, [status, ready, isClient, callId]);

  return { localVideo, remoteVideo, media, ready, handleSignal, stop };
}
