import { describe, expect, it } from "vitest";
import { EventStreamParser, backoffDelay, openEventStream, type StreamEvent } from "./events";

describe("EventStreamParser", () => {
  it("parses events split across chunks, with CRLF and comments", () => {
    const p = new EventStreamParser();
    expect(p.push("event: call\r\ndata: {\"id\"")).toEqual([]);
    expect(p.push(": 1}\r\n\r\n: ping\r\n\r\nevent: signal\nid: s4\ndata: a\ndata: b\n\n")).toEqual([
      { event: "call", data: '{"id": 1}', id: undefined },
      { event: "signal", data: "a\nb", id: "s4" },
    ]);
  });
  it("defaults the event name to message", () => {
    expect(new EventStreamParser().push("data: x\n\n")).toEqual([{ event: "message", data: "x", id: undefined }]);
  });
});

function streamResponse(chunks: string[]): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
}

describe("openEventStream", () => {
  it("reconnects after a dropped connection and stops when done", async () => {
    const seen: StreamEvent[] = [];
    const statuses: string[] = [];
    const responses = [
      () => Promise.reject(new TypeError("network down")),
      () => Promise.resolve(streamResponse(['event: call\ndata: {"status":"active"}\n\n'])),
      () => Promise.resolve(streamResponse(['event: call\ndata: {"status":"ended"}\n\n'])),
    ];
    let calls = 0;
    const fetchImpl = ((_url: string, init: RequestInit) => {
      expect((init.headers as Record<string, string>).Authorization).toBe("Bearer t0k");
      return responses[calls++]();
    }) as unknown as typeof fetch;
    const delays: number[] = [];
    const stream = openEventStream({
      url: "/v1/calls/1/events",
      token: "t0k",
      fetchImpl,
      sleep: async (ms) => void delays.push(ms),
      onEvent: (e) => seen.push(e),
      onStatus: (s) => statuses.push(s),
      isDone: () => seen.some((e) => e.data.includes("ended")),
    });
    await stream.done;
    expect(seen.map((e) => JSON.parse(e.data).status)).toEqual(["active", "ended"]);
    expect(calls).toBe(3);
    expect(delays).toEqual([250, 250]);
    expect(statuses.at(-1)).toBe("closed");
  });

  it("resumes with Last-Event-ID after the last signal it saw", async () => {
    const sent: (string | undefined)[] = [];
    const responses = [
      () => Promise.resolve(streamResponse(['event: signal\nid: s5\ndata: {"id":5}\n\n'])),
      () => Promise.resolve(streamResponse(['event: call\ndata: {"status":"ended"}\n\n'])),
    ];
    let calls = 0;
    const fetchImpl = ((_url: string, init: RequestInit) => {
      sent.push((init.headers as Record<string, string>)["Last-Event-ID"]);
      return responses[calls++]();
    }) as unknown as typeof fetch;
    const seen: StreamEvent[] = [];
    await openEventStream({
      url: "/v1/calls/1/events",
      token: "t",
      fetchImpl,
      sleep: async () => {},
      onEvent: (e) => seen.push(e),
      isDone: () => seen.some((e) => e.data.includes("ended")),
    }).done;
    expect(sent).toEqual([undefined, "s5"]);
  });

  it("gives up on 401/403/404", async () => {
    let calls = 0;
    const fetchImpl = (() => {
      calls++;
      return Promise.resolve(new Response("{}", { status: 404 }));
    }) as unknown as typeof fetch;
    await openEventStream({ url: "/x", token: "t", fetchImpl, onEvent: () => {} }).done;
    expect(calls).toBe(1);
  });

  it("backs off exponentially up to a cap", () => {
    expect([1, 2, 3, 4, 10].map((a) => backoffDelay(a, 1500))).toEqual([250, 500, 1000, 1500, 1500]);
  });
});
