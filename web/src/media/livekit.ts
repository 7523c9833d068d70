/** LiveKit media with livekit-client: connect with the token the API issued. */
import { Room, RoomEvent, Track, type RemoteTrack } from "livekit-client";

export class LiveKitMedia {
  private room = new Room({ adaptiveStream: true, dynacast: true, disconnectOnPageLeave: true });

  constructor(
    private url: string,
    private token: string,
    private localVideo: HTMLVideoElement,
    private remoteVideo: HTMLVideoElement,
    private onDisconnected: () => void,
  ) {}

  async start(): Promise<void> {
    this.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind === Track.Kind.Video) track.attach(this.remoteVideo);
      else if (track.kind === Track.Kind.Audio) document.body.appendChild(track.attach());
    });
    this.room.on(RoomEvent.Disconnected, () => this.onDisconnected());
    await this.room.connect(this.url, this.token, { autoSubscribe: true });
    await this.room.localParticipant.enableCameraAndMicrophone();
    const camera = this.room.localParticipant.getTrackPublication(Track.Source.Camera)?.track;
    camera?.attach(this.localVideo);
  }

  close(): void {
    void this.room.disconnect();
  }
}
