/** In-call controls: microphone, camera, devices, connection quality, and what the other
 * side's microphone and camera are doing. */
import { useEffect, useState, type MutableRefObject } from "react";
import type { LiveKitMedia } from "./livekit";
import { P2PMedia, type PeerState } from "./p2p";
import { translate, useT } from "../i18n";

type Media = P2PMedia | LiveKitMedia;
type Quality = "good" | "fair" | "poor" | null;
const QUALITY = { good: "controls.good", fair: "controls.fair", poor: "controls.poor" } as const;

/** The other side's state as the media reports it (null until it says). */
export function usePeerState(media: MutableRefObject<Media | null>, ready: boolean): PeerState | null {
  const [peer, setPeer] = useState<PeerState | null>(null);
  useEffect(() => {
    const m = media.current;
    if (!ready || !m) return;
    m.onPeerState = setPeer;
    return () => {
      m.onPeerState = () => {};
    };
  }, [media, ready]);
  return peer;
}

export function PeerBadges({ peer }: { peer: PeerState | null }) {
  if (!peer || (peer.mic && peer.camera)) return null;
  return (
    <p className="peer-state" role="status">
      {!peer.mic && <span className="badge off" data-testid="peer-muted">{translate("controls.peerMuted")}</span>}
      {!peer.camera && <span className="badge off" data-testid="peer-camera-off">{translate("controls.peerCameraOff")}</span>}
    </p>
  );
}

export function MediaControls({
  media,
  ready,
}: {
  media: MutableRefObject<Media | null>;
  ready: boolean;
}) {
  const [state, setState] = useState<PeerState>({ mic: true, camera: true });
  const [devices, setDevices] = useState<MediaDeviceInfo[]>([]);
  const [quality, setQuality] = useState<Quality>(null);
  const [error, setError] = useState("");
  const t = useT();

  useEffect(() => {
    if (!ready || !navigator.mediaDevices?.enumerateDevices) return;
    void navigator.mediaDevices.enumerateDevices().then((all) => setDevices(all.filter((d) => d.deviceId)));
  }, [ready]);

  useEffect(() => {
    if (!ready) return;
    const read = async () => setQuality((await media.current?.quality()) ?? null);
    void read();
    const timer = setInterval(() => void read(), 3000);
    return () => clearInterval(timer);
  }, [media, ready]);

  async function change(next: PeerState) {
    setState(next);
    setError("");
    try {
      await media.current?.setLocalState(next);
    } catch {
      setError(t("controls.changeFailed"));
    }
  }

  async function pick(kind: "audioinput" | "videoinput", deviceId: string) {
    setError("");
    const m = media.current;
    try {
      if (m instanceof P2PMedia) {
        const constraints = kind === "audioinput" ? { audio: { deviceId: { exact: deviceId } } } : { video: { deviceId: { exact: deviceId } } };
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        const [track] = kind === "audioinput" ? stream.getAudioTracks() : stream.getVideoTracks();
        if (track) await m.replaceTrack(track);
      } else if (m) {
        await m.switchDevice(kind, deviceId);
      }
    } catch {
      setError(t("controls.deviceFailed"));
    }
  }

  const cameras = devices.filter((d) => d.kind === "videoinput");
  const mics = devices.filter((d) => d.kind === "audioinput");
  return (
    <div className="controls row" aria-label={t("controls.group")} role="group">
      <button type="button" className="secondary" aria-pressed={!state.mic} disabled={!ready}
        onClick={() => void change({ ...state, mic: !state.mic })}>
        {state.mic ? t("controls.mute") : t("controls.unmute")}
      </button>
      <button type="button" className="secondary" aria-pressed={!state.camera} disabled={!ready}
        onClick={() => void change({ ...state, camera: !state.camera })}>
        {state.camera ? t("controls.cameraOff") : t("controls.cameraOn")}
      </button>
      {cameras.length > 1 && (
        <label>{t("controls.camera")}
          <select onChange={(e) => void pick("videoinput", e.target.value)}>
            {cameras.map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || t("controls.cameraN", { n: i + 1 })}</option>)}
          </select>
        </label>
      )}
      {mics.length > 1 && (
        <label>{t("controls.microphone")}
          <select onChange={(e) => void pick("audioinput", e.target.value)}>
            {mics.map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || t("controls.microphoneN", { n: i + 1 })}</option>)}
          </select>
        </label>
      )}
      <span className={`quality ${quality ?? "unknown"}`} data-testid="quality">
        {t("controls.quality", { quality: quality ? t(QUALITY[quality]) : "…" })}
      </span>
      {error && <span role="alert" className="error">{error}</span>}
    </div>
  );
}
