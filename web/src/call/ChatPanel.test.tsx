// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Message } from "../api";
import { LanguageProvider } from "../i18n";
import { ChatPanel } from "./ChatPanel";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const HOSTILE = '<img src=x onerror="window.__owned=1"><script>window.__owned=2</script> https://example.com';

function message(id: number, sender: number | null, body: string, kind: Message["kind"] = "text"): Message {
  return { id, call_id: 5, sender_id: sender, kind, body, amount: kind === "tip" ? 50 : null, client_msg_id: null, created_at: "2026-11-24T10:00:00Z" };
}

function panel(messages: Message[], onSent = vi.fn()) {
  return render(
    <LanguageProvider>
      <ChatPanel callId={5} token="t" me={1} isClient messages={messages} loaded onSent={onSent} writable tippable />
    </LanguageProvider>,
  );
}

describe("ChatPanel", () => {
  it("renders what a party typed as text: markup stays inert, addresses are plain links", () => {
    panel([message(1, null, "connected", "system"), message(2, 2, HOSTILE), message(3, 1, "50", "tip")]);
    const lines = screen.getAllByTestId("chat-line");
    expect(lines.map((l) => l.dataset.kind)).toEqual(["system", "text", "tip"]);
    expect(lines[1].textContent).toContain('<img src=x onerror="window.__owned=1">');
    expect(document.querySelector(".chat-log img, .chat-log script")).toBeNull();
    expect((window as unknown as { __owned?: number }).__owned).toBeUndefined();
    const link = lines[1].querySelector("a")!;
    expect([link.getAttribute("href"), link.getAttribute("rel")]).toEqual(["https://example.com", "noopener noreferrer nofollow ugc"]);
    expect(lines[0].textContent).toContain("The call connected.");
    expect(lines[2].textContent).toContain("You tipped 50 coins.");
  });

  it("asks before a tip and sends one request however often Yes is clicked", async () => {
    let answer: (r: Response) => void = () => {};
    const fetchMock = vi.fn(() => new Promise<Response>((resolve) => (answer = resolve)));
    vi.stubGlobal("fetch", fetchMock);
    const onSent = vi.fn();
    panel([], onSent);
    fireEvent.click(screen.getByRole("button", { name: "50 coins" }));
    expect(fetchMock).not.toHaveBeenCalled(); // nothing moves before the confirmation
    const yes = screen.getByRole("button", { name: "Yes, tip" });
    fireEvent.click(yes);
    fireEvent.click(yes);
    fireEvent.click(yes);
    expect(fetchMock).toHaveBeenCalledTimes(1);
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/v1/calls/5/tips");
    expect(JSON.parse(init.body as string)).toMatchObject({ amount: 50 });
    await act(async () => {
      answer(new Response(JSON.stringify(message(9, 1, "", "tip")), { status: 201 }));
    });
    expect(onSent).toHaveBeenCalledTimes(1);
    expect(screen.getByRole("status").textContent).toBe("Thank you: 50 coins sent to the host.");
  });

  it("keeps a message's id when sending failed without an answer, so the retry stores it once", async () => {
    const fetchMock = vi
      .fn()
      .mockRejectedValueOnce(new TypeError("network down"))
      .mockResolvedValueOnce(new Response(JSON.stringify(message(4, 1, "hola")), { status: 201 }));
    vi.stubGlobal("fetch", fetchMock);
    panel([]);
    fireEvent.change(screen.getByLabelText("Write a message"), { target: { value: "hola" } });
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Send" }));
    });
    await act(async () => {
      fireEvent.click(await screen.findByRole("button", { name: "Not sent. Try again" }));
    });
    const ids = fetchMock.mock.calls.map((c) => JSON.parse((c[1] as RequestInit).body as string).client_msg_id);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
  });
});
