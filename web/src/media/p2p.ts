/**
 * Peer-to-peer media: one RTCPeerConnection, the client offers, the host answers, and
 * offers/answers/ICE travel through POST /v1/calls/{id}/signal and the events stream.
 * No STUN server: host candidates are enough on one machine or network.
 */
import { request } from "../api";

export interface SignalMessage {
  id: number;
  type: "offer" | "answer" | "ice";
  payload: unknown;
  sender_id: number;
}

export class P2PMedia {
  private pc: RTCPeerConnection;
  private pendingIce: RTCIceCandidateInit[] = [];
  private seen = new Set<number>();
  private offered = false;

  constructor(
    private callId: number,
    private token: string,
    local: MediaStream,
    private onRemote: (stream: MediaStream) => void,
  ) {
    this.pc = new RTCPeerConnection({ iceServers: [] });
    for (const track of local.getTracks()) this.pc.addTrack(track, local);
    this.pc.ontrack = (event) => this.onRemote(event.streams[0] ?? new MediaStream([event.track]));
    this.pc.onicecandidate = (event) => {
      if (event.candidate) void this.send("ice", event.candidate.toJSON());
    };
  }

  /** The caller starts the negotiation once the host has accepted. */
  async offer(): Promise<void> {
    if (this.offered) return;
    this.offered = true;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await this.send("offer", { type: offer.type, sdp: offer.sdp });
  }

  async handle(signal: SignalMessage): Promise<void> {
    if (this.seen.has(signal.id)) return; // a reconnected stream replays signals
    this.seen.add(signal.id);
    if (signal.type === "offer") {
      await this.pc.setRemoteDescription(signal.payload as RTCSessionDescriptionInit);
      await this.flushIce();
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.send("answer", { type: answer.type, sdp: answer.sdp });
    } else if (signal.type === "answer") {
      await this.pc.setRemoteDescription(signal.payload as RTCSessionDescriptionInit);
      await this.flushIce();
    } else if (this.pc.remoteDescription) {
      await this.pc.addIceCandidate(signal.payload as RTCIceCandidateInit);
    } else {
      this.pendingIce.push(signal.payload as RTCIceCandidateInit);
    }
  }

  close(): void {
    this.pc.close();
  }

  private async flushIce(): Promise<void> {
    for (const candidate of this.pendingIce.splice(0)) await this.pc.addIceCandidate(candidate);
  }

  private async send(type: SignalMessage["type"], payload: unknown): Promise<void> {
    await request(`/v1/calls/${this.callId}/signal`, { token: this.token, body: { type, payload } });
  }
}
