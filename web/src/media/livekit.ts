/** LiveKit media with livekit-client: connect with the token the API issued. */
import {
  ConnectionQuality,
  Room,
  RoomEvent,
  Track,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
} from "livekit-client";
import type { PeerState } from "./p2p";

export class LiveKitMedia {
  private room = new Room({ adaptiveStream: true, dynacast: true, disconnectOnPageLeave: true });
  /** The other side's microphone and camera, whenever they change. */
  onPeerState: (state: PeerState) => void = () => {};
  private lastQuality: ConnectionQuality = ConnectionQuality.Unknown;

  constructor(
    private url: string,
    private token: string,
    private localVideo: HTMLVideoElement,
    private remoteVideo: HTMLVideoElement,
    private onDisconnected: () => void,
  ) {}

  async start(): Promise<void> {
    this.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, participant: RemoteParticipant) => {
      if (track.kind === Track.Kind.Video) track.attach(this.remoteVideo);
      else if (track.kind === Track.Kind.Audio) document.body.appendChild(track.attach());
      this.report(participant);
    });
    for (const event of [RoomEvent.TrackMuted, RoomEvent.TrackUnmuted] as const) {
      this.room.on(event, (_pub, participant: Participant) => {
        if (participant !== this.room.localParticipant) this.report(participant);
      });
    }
    this.room.on(RoomEvent.ConnectionQualityChanged, (quality: ConnectionQuality, participant: Participant) => {
      if (participant === this.room.localParticipant) this.lastQuality = quality;
    });
    this.room.on(RoomEvent.Disconnected, () => this.onDisconnected());
    await this.room.connect(this.url, this.token, { autoSubscribe: true });
    await this.room.localParticipant.enableCameraAndMicrophone();
    const camera = this.room.localParticipant.getTrackPublication(Track.Source.Camera)?.track;
    camera?.attach(this.localVideo);
  }

  async setLocalState(state: PeerState): Promise<void> {
    await this.room.localParticipant.setMicrophoneEnabled(state.mic);
    await this.room.localParticipant.setCameraEnabled(state.camera);
  }

  async switchDevice(kind: "audioinput" | "videoinput", deviceId: string): Promise<void> {
    await this.room.switchActiveDevice(kind, deviceId);
  }

  quality(): "good" | "fair" | "poor" | null {
    switch (this.lastQuality) {
      case ConnectionQuality.Excellent:
      case ConnectionQuality.Good:
        return "good";
      case ConnectionQuality.Poor:
        return "fair";
      case ConnectionQuality.Lost:
        return "poor";
      default:
        return null;
    }
  }

  close(): void {
    void this.room.disconnect();
  }

  private report(participant: Participant): void {
    this.onPeerState({ mic: participant.isMicrophoneEnabled, camera: participant.isCameraEnabled });
  }
}
