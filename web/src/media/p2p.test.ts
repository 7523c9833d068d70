import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { P2PMedia, type SignalMessage } from "./p2p";

/** A stand-in RTCPeerConnection: keeps what was set on it, walks the signaling states. */
class FakePC {
  static made: FakePC[] = [];
  signalingState: RTCSignalingState = "stable";
  remoteDescription: RTCSessionDescriptionInit | null = null;
  candidates: RTCIceCandidateInit[] = [];
  closed = false;
  ontrack: unknown = null;
  onicecandidate: unknown = null;
  constructor() {
    FakePC.made.push(this);
  }
  addTrack() {}
  async createOffer() {
    return { type: "offer", sdp: `offer-${FakePC.made.indexOf(this)}` };
  }
  async createAnswer() {
    return { type: "answer", sdp: `answer-${FakePC.made.indexOf(this)}` };
  }
  async setLocalDescription(d: RTCSessionDescriptionInit) {
    this.signalingState = d.type === "offer" ? "have-local-offer" : "stable";
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit) {
    this.remoteDescription = d;
    this.signalingState = d.type === "offer" ? "have-remote-offer" : "stable";
  }
  async addIceCandidate(c: RTCIceCandidateInit) {
    this.candidates.push(c);
  }
  close() {
    this.closed = true;
  }
}

let sent: { type: string; payload: Record<string, unknown> }[] = [];
let nextId = 100;
const local = { getTracks: () => [] } as unknown as MediaStream;

beforeEach(() => {
  FakePC.made = [];
  sent = [];
  vi.stubGlobal("RTCPeerConnection", FakePC);
  vi.stubGlobal("fetch", async (_url: string, init: RequestInit) => {
    sent.push(JSON.parse(String(init.body)) as (typeof sent)[number]);
    return new Response(JSON.stringify({ id: nextId++ }), { status: 202 });
  });
});
afterEach(() => vi.unstubAllGlobals());

const signal = (id: number, type: SignalMessage["type"], payload: object): SignalMessage => ({
  id, type, payload, sender_id: 1,
});

describe("P2PMedia: a negotiation that can start again", () => {
  it("the host answers every new offer with a new connection, addressed to that offer", async () => {
    const host = new P2PMedia(1, "t", local, "host", () => {});
    await host.handle(signal(1, "offer", { type: "offer", sdp: "a", session: "c1" }));
    await host.handle(signal(2, "offer", { type: "offer", sdp: "a", session: "c1" })); // same session
    await host.handle(signal(3, "offer", { type: "offer", sdp: "b", session: "c2" })); // the client came back
    expect(sent.map((s) => [s.type, s.payload.to])).toEqual([["answer", "c1"], ["answer", "c2"]]);
    expect(FakePC.made).toHaveLength(2);
    expect(FakePC.made[0].closed).toBe(true); // the old connection is dropped
    expect(sent[0].payload.session).not.toBe(sent[1].payload.session);
  });

  it("the client takes only the answer to its current offer", async () => {
    const client = new P2PMedia(1, "t", local, "client", () => {});
    await client.offer();
    const mine = sent[0].payload.session as string;
    await client.handle(signal(5, "answer", { type: "answer", sdp: "old", session: "h0", to: "an-older-page" }));
    expect(FakePC.made[0].remoteDescription).toBeNull();
    await client.handle(signal(6, "answer", { type: "answer", sdp: "new", session: "h1", to: mine }));
    expect(FakePC.made[0].remoteDescription?.sdp).toBe("new");
    // a second answer to the same offer (the stable connection) changes nothing
    await client.handle(signal(7, "answer", { type: "answer", sdp: "again", session: "h2", to: mine }));
    expect(FakePC.made[0].remoteDescription?.sdp).toBe("new");
  });

  it("uses ICE from the peer's current session only, keeping early ones for its answer", async () => {
    const client = new P2PMedia(1, "t", local, "client", () => {});
    await client.offer();
    const mine = sent[0].payload.session as string;
    await client.handle(signal(10, "ice", { candidate: "early", session: "h1" })); // before the answer
    await client.handle(signal(11, "ice", { candidate: "stale", session: "h0" }));
    await client.handle(signal(12, "answer", { type: "answer", sdp: "x", session: "h1", to: mine }));
    await client.handle(signal(13, "ice", { candidate: "late", session: "h1" }));
    await client.handle(signal(14, "ice", { candidate: "stale2", session: "h0" }));
    expect(FakePC.made[0].candidates).toEqual([{ candidate: "early" }, { candidate: "late" }]);
  });

  it("the client offers afresh on a host's restart, unless the answer in use is newer", async () => {
    const client = new P2PMedia(1, "t", local, "client", () => {});
    await client.offer();
    await client.handle(signal(20, "answer", { type: "answer", sdp: "x", session: "h1", to: sent[0].payload.session }));
    await client.handle(signal(15, "restart", {})); // older than the answer: replayed, stale
    expect(sent.filter((s) => s.type === "offer")).toHaveLength(1);
    await client.handle(signal(21, "restart", {})); // the host's page came back
    expect(sent.filter((s) => s.type === "offer")).toHaveLength(2);
    expect(FakePC.made).toHaveLength(2);
  });

  it("handles a replayed signal once, and nothing after close", async () => {
    const host = new P2PMedia(1, "t", local, "host", () => {});
    await host.handle(signal(1, "offer", { type: "offer", sdp: "a", session: "c1" }));
    await host.handle(signal(1, "offer", { type: "offer", sdp: "a", session: "c9" }));
    expect(sent).toHaveLength(1);
    host.close();
    await host.handle(signal(2, "offer", { type: "offer", sdp: "a", session: "c3" }));
    expect(sent).toHaveLength(1);
  });

  it("the host asks for a fresh offer when it joins again", async () => {
    const host = new P2PMedia(1, "t", local, "host", () => {});
    await host.restart();
    expect(sent).toEqual([{ type: "restart", payload: {} }]);
  });
});

describe("the other side's microphone and camera", () => {
  it("reads only a well-formed state message", async () => {
    const { parsePeerState } = await import("./p2p");
    expect(parsePeerState('{"mic":false,"camera":true}')).toEqual({ mic: false, camera: true });
    expect(parsePeerState('{"mic":"no","camera":true}')).toBeNull();
    expect(parsePeerState("not json")).toBeNull();
    expect(parsePeerState(new ArrayBuffer(4))).toBeNull();
    expect(parsePeerState(`{"mic":true,"camera":true,"pad":"${"x".repeat(300)}"}`)).toBeNull();
  });
});

describe("a signal that does not arrive", () => {
  it("is sent again after no answer or a 503, but not after a refusal", async () => {
    const answers = [503, 0, 202, 409];
    const tried: string[] = [];
    vi.stubGlobal("fetch", async (_url: string, init: RequestInit) => {
      tried.push((JSON.parse(String(init.body)) as { type: string }).type);
      const status = answers.shift() ?? 202;
      if (status === 0) throw new TypeError("Failed to fetch");
      return new Response(JSON.stringify(status === 202 ? { id: 1 } : { error: "x", detail: "y" }), { status });
    });
    const client = new P2PMedia(1, "t", local, "client", () => {}, async () => {});
    await client.offer();
    expect(tried).toEqual(["offer", "offer", "offer"]); // 503, no answer, then accepted
    await client.offer(); // refused (409): final, not repeated
    expect(tried).toEqual(["offer", "offer", "offer", "offer"]);
  });
});
