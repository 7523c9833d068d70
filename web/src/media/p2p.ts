/**
 * Peer-to-peer media: offers, answers and ICE candidates travel through
 * POST /v1/calls/{id}/signal and the call's events stream. No STUN server: host candidates
 * are enough on one machine or network.
 *
 * Either page may go away and come back (a reload, a return to the call page) while the
 * call goes on, so the negotiation can start again at any time:
 * - the client always offers and the host always answers: no two offers ever cross;
 * - each attempt is a session (a random id) that tags its offer, its answer and its ICE; an
 *   answer counts only for the client's current offer, ICE only from the peer's current
 *   session, so what an older page sent is ignored;
 * - a host page that joins again sends `restart`: the client offers afresh; a client page
 *   that joins again simply offers, and the host answers with a new connection.
 */
import { ApiError, request } from "../api";

export interface SignalMessage {
  id: number;
  type: "offer" | "answer" | "ice" | "restart";
  payload: unknown;
  sender_id: number;
}

type Tagged = { session?: unknown; to?: unknown };

/** What a party's microphone and camera are doing, as the other side is told. */
export interface PeerState {
  mic: boolean;
  camera: boolean;
}

/** A state message from the other side, or null when it is not one. */
export function parsePeerState(data: unknown): PeerState | null {
  if (typeof data !== "string" || data.length > 200) return null;
  try {
    const value = JSON.parse(data) as { mic?: unknown; camera?: unknown };
    return typeof value.mic === "boolean" && typeof value.camera === "boolean"
      ? { mic: value.mic, camera: value.camera }
      : null;
  } catch {
    return null;
  }
}

const MAX_PENDING_SESSIONS = 8; // ICE kept for sessions not yet met (an answer still on its way)
const MAX_PENDING_CANDIDATES = 64;
const SEND_ATTEMPTS = 5; // over about 7 s
const SEND_BACKOFF_MS = 500;

export class P2PMedia {
  private pc: RTCPeerConnection | null = null;
  private session = "";
  private remoteSession: string | null = null;
  private pendingIce = new Map<string, RTCIceCandidateInit[]>();
  private seen = new Set<number>();
  private answeredAt = 0; // the client's: id of the answer its current connection came from
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  private channel: RTCDataChannel | null = null; // tells the other side mute and camera
  private state: PeerState = { mic: true, camera: true };
  /** The other side's microphone and camera, whenever they change (or a connection opens). */
  onPeerState: (state: PeerState) => void = () => {};

  constructor(
    private callId: number,
    private token: string,
    private local: MediaStream,
    private role: "client" | "host",
    private onRemote: (stream: MediaStream) => void,
    private sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /** The client: offer a new connection (when the host picks up, and on every join). */
  offer(): Promise<void> {
    return this.serial(() => this.newOffer());
  }

  /** The host, on joining again: ask the client for a fresh offer. */
  restart(): Promise<void> {
    return this.serial(() => this.send("restart", {}));
  }

  handle(signal: SignalMessage): Promise<void> {
    if (this.seen.has(signal.id)) return this.queue; // a reconnected stream may replay
    this.seen.add(signal.id);
    return this.serial(() => this.apply(signal));
  }

  /** Mute or unmute, camera on or off: the tracks stop sending, and the other side is told. */
  setLocalState(state: PeerState): void {
    this.state = state;
    for (const track of this.local.getAudioTracks()) track.enabled = state.mic;
    for (const track of this.local.getVideoTracks()) track.enabled = state.camera;
    this.tell();
  }

  /** Another microphone or camera: its track replaces the old one without a new offer. */
  async replaceTrack(track: MediaStreamTrack): Promise<void> {
    const old = track.kind === "audio" ? this.local.getAudioTracks() : this.local.getVideoTracks();
    for (const t of old) {
      this.local.removeTrack(t);
      t.stop();
    }
    track.enabled = track.kind === "audio" ? this.state.mic : this.state.camera;
    this.local.addTrack(track);
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === track.kind);
    await sender?.replaceTrack(track);
  }

  /** The connection's round trip and loss, for a quality indicator (null before it runs). */
  async quality(): Promise<"good" | "fair" | "poor" | null> {
    const stats = await this.pc?.getStats();
    if (!stats) return null;
    let rtt: number | null = null;
    stats.forEach((report: { type?: string; state?: string; nominated?: boolean; currentRoundTripTime?: number }) => {
      if (report.type === "candidate-pair" && report.state === "succeeded" && report.nominated) {
        rtt = report.currentRoundTripTime ?? rtt;
      }
    });
    if (rtt === null) return null;
    return rtt < 0.15 ? "good" : rtt < 0.4 ? "fair" : "poor";
  }

  close(): void {
    this.closed = true;
    this.pc?.close();
    this.pc = null;
  }

  private async apply(signal: SignalMessage): Promise<void> {
    const payload = (signal.payload ?? {}) as Tagged & Record<string, unknown>;
    const from = typeof payload.session === "string" ? payload.session : null;
    if (signal.type === "restart") {
      // the host has a new page waiting; a restart older than the answer in use is stale
      if (this.role === "client" && signal.id > this.answeredAt) await this.newOffer();
    } else if (signal.type === "offer") {
      if (this.role !== "host" || from === null || from === this.remoteSession) return;
      const pc = this.fresh();
      this.remoteSession = from;
      await pc.setRemoteDescription({ type: "offer", sdp: String(payload.sdp ?? "") });
      await this.flushIce(pc, from);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await this.send("answer", { type: answer.type, sdp: answer.sdp, session: this.session, to: from });
    } else if (signal.type === "answer") {
      const pc = this.pc;
      if (this.role !== "client" || !pc || from === null || payload.to !== this.session) return;
      if (pc.signalingState !== "have-local-offer") return;
      this.remoteSession = from;
      this.answeredAt = signal.id;
      await pc.setRemoteDescription({ type: "answer", sdp: String(payload.sdp ?? "") });
      await this.flushIce(pc, from);
    } else if (from !== null) {
      const { session: _s, to: _t, ...candidate } = payload;
      if (this.pc && from === this.remoteSession && this.pc.remoteDescription) {
        await this.addIce(this.pc, candidate as RTCIceCandidateInit);
      } else {
        this.keepIce(from, candidate as RTCIceCandidateInit);
      }
    }
  }

  private async newOffer(): Promise<void> {
    const pc = this.fresh();
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await this.send("offer", { type: offer.type, sdp: offer.sdp, session: this.session });
  }

  /** A new connection with this page's camera and microphone, replacing any other. */
  private fresh(): RTCPeerConnection {
    this.pc?.close();
    const pc = new RTCPeerConnection({ iceServers: [] });
    const session = crypto.randomUUID();
    this.pc = pc;
    this.session = session;
    this.remoteSession = null;
    for (const track of this.local.getTracks()) pc.addTrack(track, this.local);
    pc.ontrack = (event) => {
      if (this.pc === pc) this.onRemote(event.streams[0] ?? new MediaStream([event.track]));
    };
    pc.onicecandidate = (event) => {
      if (event.candidate && this.pc === pc) void this.send("ice", { ...event.candidate.toJSON(), session });
    };
    // the offerer opens the state channel; the answerer receives it
    if (this.role === "client" && typeof pc.createDataChannel === "function") this.wire(pc, pc.createDataChannel("state"));
    else pc.ondatachannel = (event) => this.wire(pc, event.channel);
    return pc;
  }

  private wire(pc: RTCPeerConnection, channel: RTCDataChannel): void {
    if (this.pc !== pc) return;
    this.channel = channel;
    channel.onopen = () => this.tell();
    channel.onmessage = (event: MessageEvent) => {
      const state = parsePeerState(event.data);
      if (state && this.pc === pc) this.onPeerState(state);
    };
  }

  private tell(): void {
    if (this.channel?.readyState === "open") this.channel.send(JSON.stringify(this.state));
  }

  private keepIce(session: string, candidate: RTCIceCandidateInit): void {
    let list = this.pendingIce.get(session);
    if (!list) {
      if (this.pendingIce.size >= MAX_PENDING_SESSIONS) {
        const oldest = this.pendingIce.keys().next().value;
        if (oldest !== undefined) this.pendingIce.delete(oldest);
      }
      list = [];
      this.pendingIce.set(session, list);
    }
    if (list.length < MAX_PENDING_CANDIDATES) list.push(candidate);
  }

  private async flushIce(pc: RTCPeerConnection, session: string): Promise<void> {
    const list = this.pendingIce.get(session) ?? [];
    this.pendingIce.delete(session);
    for (const candidate of list) await this.addIce(pc, candidate);
  }

  private async addIce(pc: RTCPeerConnection, candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await pc.addIceCandidate(candidate);
    } catch {
      /* a candidate the connection no longer wants: harmless */
    }
  }

  private serial(work: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(async () => {
      if (!this.closed) await work();
    }).catch(() => {
      /* one failed step must not stop the next signal */
    });
    return this.queue;
  }

  /** Send a signal; a lost one (no answer, 5xx, 429) is sent again a few times, since the
   * other side would otherwise wait for it forever. A refusal (other 4xx) is final. */
  private async send(type: SignalMessage["type"], payload: unknown): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await request(`/v1/calls/${this.callId}/signal`, { token: this.token, body: { type, payload } });
        return;
      } catch (e) {
        const final = e instanceof ApiError && e.status < 500 && e.status !== 429;
        if (final || this.closed || attempt >= SEND_ATTEMPTS - 1) throw e;
        await this.sleep(SEND_BACKOFF_MS * 2 ** attempt);
      }
    }
  }
}
