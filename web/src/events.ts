/**
 * The call's event stream (Server-Sent Events) read with fetch, so that the access token
 * travels in the Authorization header. Reconnects by itself with backoff, sending the last
 * event id it saw (`Last-Event-ID`, as a browser's EventSource does) so that the server
 * resumes after the last signal instead of replaying them; the caller still de-duplicates
 * signals by id.
 */

export interface StreamEvent {
  event: string;
  data: string;
  id?: string;
}

/** Incremental parser of the text/event-stream format. */
export class EventStreamParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | undefined;

  /** Feed a chunk of text; returns the events it completed. */
  push(chunk: string): StreamEvent[] {
    this.buffer += chunk;
    const out: StreamEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      if (line === "") {
        if (this.data.length > 0) {
          out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
        }
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // comment / ping
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.id = value;
    }
    return out;
  }
}

export interface StreamOptions {
  url: string;
  token: string;
  onEvent: (event: StreamEvent) => void;
  /** Return true to stop reading (e.g. after the final event of an ended call). */
  isDone?: () => boolean;
  onStatus?: (status: "open" | "reconnecting" | "closed") => void;
  fetchImpl?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  maxDelayMs?: number;
  /** Resume after this event (a page that read the stream before: a reload, a return). */
  lastEventId?: string;
}

export function backoffDelay(attempt: number, maxDelayMs = 5000): number {
  return Math.min(maxDelayMs, 250 * 2 ** Math.max(0, attempt - 1));
}

/** Read the stream until `isDone()` or `close()`; reconnect after errors and drops. */
export function openEventStream(options: StreamOptions): { close: () => void; done: Promise<void> } {
  const controller = new AbortController();
  const fetchImpl = options.fetchImpl ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let closed = false;

  const run = async () => {
    let attempt = 0;
    let lastEventId = options.lastEventId;
    while (!closed && !(options.isDone?.() ?? false)) {
      try {
        const headers: Record<string, string> = {
          Authorization: `Bearer ${options.token}`,
          Accept: "text/event-stream",
        };
        if (lastEventId) headers["Last-Event-ID"] = lastEventId;
        const response = await fetchImpl(options.url, { headers, signal: controller.signal });
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          break; // not ours to read: reconnecting will not help
        }
        if (!response.ok || !response.body) throw new Error(`stream status ${response.status}`);
        attempt = 0;
        options.onStatus?.("open");
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const parser = new EventStreamParser();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const event of parser.push(decoder.decode(value, { stream: true }))) {
            if (event.id) lastEventId = event.id;
            options.onEvent(event);
          }
        }
      } catch (error) {
        if (closed) break;
      }
      if (closed || (options.isDone?.() ?? false)) break;
      attempt += 1;
      options.onStatus?.("reconnecting");
      await sleep(backoffDelay(attempt, options.maxDelayMs));
    }
    options.onStatus?.("closed");
  };

  const done = run();
  return {
    close: () => {
      closed = true;
      controller.abort();
    },
    done,
  };
}
