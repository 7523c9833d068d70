// @vitest-environment jsdom
import { cleanup, renderHook, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { saveStreamPosition } from "../session";
import { useCallStream, type CallStreamHandlers } from "./useCallStream";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

/** A server that answers the stream with `text` (SSE), then keeps it open. */
function serving(text: string) {
  const requests: Headers[] = [];
  vi.stubGlobal("fetch", async (_url: string, init: RequestInit) => {
    requests.push(new Headers(init.headers));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(text));
      },
    });
    return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
  });
  return requests;
}

const notEnded = { current: false }; // a page's ref: the same object at every render

function handlers(): CallStreamHandlers & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    onCall: (call) => log.push(`call ${call.status}`),
    onSignal: (signal, id) => log.push(`signal ${signal.type} ${id}`),
    onMessage: (message) => log.push(`message ${message.body}`),
  };
}

describe("useCallStream", () => {
  it("hands each event to its handler, in order, with the signal's event id", async () => {
    serving(
      'event: call\ndata: {"status":"active"}\n\n' +
        'event: signal\nid: s4\ndata: {"id":4,"type":"offer","payload":{},"sender_id":2}\n\n' +
        'event: message\nid: s4m9\ndata: {"id":9,"kind":"text","body":"hola"}\n\n',
    );
    const h = handlers();
    const { result } = renderHook(() => useCallStream(7, "tok", notEnded, h));
    await waitFor(() => expect(h.log).toEqual(["call active", "signal offer s4", "message hola"]));
    expect(result.current).toBe("open");
  });

  it("resumes where this tab's page was: the saved position goes as Last-Event-ID", async () => {
    saveStreamPosition(7, "s12m30");
    const requests = serving('event: call\ndata: {"status":"active"}\n\n');
    const h = handlers();
    renderHook(() => useCallStream(7, "tok", notEnded, h));
    await waitFor(() => expect(h.log).toEqual(["call active"]));
    expect(requests[0].get("Last-Event-ID")).toBe("s12m30");
    expect(requests[0].get("Authorization")).toBe("Bearer tok");
  });

  it("opens nothing without a token", () => {
    const requests = serving("");
    renderHook(() => useCallStream(7, null, notEnded, handlers()));
    expect(requests).toEqual([]);
  });
});
