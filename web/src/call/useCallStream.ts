/** A call page's event stream: the call's state, signals for this party's media and the
 * chat, from the server, reconnecting by itself. A page that read this call's stream before
 * (a reload, a return) resumes where it was, so it skips the signals its earlier connection
 * took. */
import { useEffect, useRef, useState, type MutableRefObject } from "react";
import type { Call, Message } from "../api";
import { openEventStream } from "../events";
import type { SignalMessage } from "../media/p2p";
import { loadStreamPosition } from "../session";

export interface CallStreamHandlers {
  onCall: (call: Call) => void;
  /** A signal with its event id: the page saves the id once a connection took it. */
  onSignal: (signal: SignalMessage, eventId: string | undefined) => void;
  onMessage: (message: Message) => void;
}

export type StreamStatus = "connecting" | "open" | "reconnecting" | "closed";

export function useCallStream(
  callId: number,
  token: string | null,
  ended: MutableRefObject<boolean>,
  handlers: CallStreamHandlers,
): StreamStatus {
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const latest = useRef(handlers);
  latest.current = handlers;
  useEffect(() => {
    if (!token) return;
    const events = openEventStream({
      url: `/v1/calls/${callId}/events`,
      token,
      lastEventId: loadStreamPosition(callId) ?? undefined,
      isDone: () => ended.current,
      onStatus: setStatus,
      onEvent: (event) => {
        if (event.event === "call") latest.current.onCall(JSON.parse(event.data) as Call);
        else if (event.event === "message") latest.current.onMessage(JSON.parse(event.data) as Message);
        else if (event.event === "signal") latest.current.onSignal(JSON.parse(event.data) as SignalMessage, event.id);
      },
    });
    return () => events.close();
  }, [callId, token, ended]);
  return status;
}
