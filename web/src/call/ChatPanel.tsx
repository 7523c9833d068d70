/** The chat beside a call: its history and what the stream delivers, a box to write in
 * (while the call rings or lasts), and, for the client, tips with a confirmation. Every
 * message is rendered as text: nothing a party typed ever becomes markup. */
import { useCallback, useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { ApiError, friendlyMessage, request, resultKnown, type Message, type MessagesPage } from "../api";
import { formatCoins } from "../format";
import { currentLocale, useT } from "../i18n";
import { merge, pieces, systemText, TIP_PRESETS, unread } from "./chat";

const MAX_LENGTH = 1000;

/** The call's messages: every page of its history, then each one the stream brings. */
export function useChat(callId: number, token: string | null) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [loaded, setLoaded] = useState(false);
  const receive = useCallback((more: Message[]) => setMessages((known) => merge(known, more)), []);
  useEffect(() => {
    let cancelled = false;
    const load = async () => {
      let after = 0;
      for (;;) {
        const page = await request<MessagesPage>(`/v1/calls/${callId}/messages?limit=200&after=${after}`, { token });
        if (cancelled) return;
        receive(page.items);
        if (page.next_after === null) {
          setLoaded(true);
          return;
        }
        after = page.next_after;
      }
    };
    load().catch(() => {}); // the stream still brings what is new; a reload reads it again
    return () => {
      cancelled = true;
    };
  }, [callId, token, receive]);
  return { messages, receive, loaded };
}

interface Pending {
  id: string; // its client_msg_id: a retry sends the same, so it is stored once
  body: string;
  failed: boolean;
}

export function ChatPanel(props: {
  callId: number;
  token: string | null;
  me: number;
  isClient: boolean;
  messages: Message[];
  /** The history has been read: what it holds was there before this page. */
  loaded: boolean;
  onSent: (messages: Message[]) => void;
  writable: boolean;
  tippable: boolean;
}) {
  const { callId, token, me, isClient, messages, loaded, onSent, writable, tippable } = props;
  const t = useT();
  const [open, setOpen] = useState(() => typeof window === "undefined" || window.innerWidth > 700);
  const [draft, setDraft] = useState("");
  const [pending, setPending] = useState<Pending[]>([]);
  const [error, setError] = useState("");
  // the newest message this tab has shown: kept across reloads, so a closed chat counts
  // what arrived since, not the whole history
  const seenKey = `callmeter.chat.seen.${callId}`;
  const [seen, setSeen] = useState<number | null>(() => {
    const stored = Number(sessionStorage.getItem(seenKey));
    return Number.isInteger(stored) && stored > 0 ? stored : null;
  });
  const log = useRef<HTMLOListElement>(null);
  const newest = messages.length ? messages[messages.length - 1].id : 0;

  useEffect(() => {
    if (open || (seen === null && loaded)) {
      setSeen(newest);
      sessionStorage.setItem(seenKey, String(newest));
    }
    const list = log.current;
    if (open && list) list.scrollTop = list.scrollHeight;
  }, [open, newest, pending.length, loaded, seen, seenKey]);

  async function deliver(message: Pending) {
    try {
      const sent = await request<Message>(`/v1/calls/${callId}/messages`, {
        token,
        body: { body: message.body, client_msg_id: message.id },
      });
      onSent([sent]);
      setPending((all) => all.filter((p) => p.id !== message.id));
    } catch (e) {
      setError(friendlyMessage(e));
      if (resultKnown(e) && !(e instanceof ApiError && e.status === 429)) {
        // refused for good (409, 422): the text goes back to the box to be changed
        setPending((all) => all.filter((p) => p.id !== message.id));
        setDraft((current) => current || message.body);
      } else {
        // no answer, or "too fast": the same message, with its id, can be sent again
        setPending((all) => all.map((p) => (p.id === message.id ? { ...p, failed: true } : p)));
      }
    }
  }

  function send(event?: FormEvent) {
    event?.preventDefault();
    const body = draft.trim();
    if (!body) return;
    const message = { id: crypto.randomUUID(), body, failed: false };
    setPending((all) => [...all, message]);
    setDraft("");
    setError("");
    void deliver(message);
  }

  function retry(message: Pending) {
    setPending((all) => all.map((p) => (p.id === message.id ? { ...p, failed: false } : p)));
    setError("");
    void deliver(message);
  }

  function onKey(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) send(event);
  }

  const who = (m: Message) =>
    m.sender_id === me ? t("chat.you") : isClient ? t("chat.theHost") : t("chat.theClient");
  const time = (iso: string) =>
    new Date(iso).toLocaleTimeString(currentLocale(), { hour: "2-digit", minute: "2-digit" });
  const count = open || seen === null ? 0 : unread(messages, me, seen);

  return (
    <section className="card chat" aria-label={t("chat.title")}>
      <button type="button" className="secondary chat-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
        {t("chat.title")}
        {count > 0 && <span className="badge unread" data-testid="unread" aria-label={t("chat.unread", { count })}>{count}</span>}
      </button>
      {open && (
        <>
          <ol className="chat-log" ref={log} role="log" aria-live="polite" aria-label={t("chat.messages")}>
            {messages.length === 0 && pending.length === 0 && <li className="muted">{t("chat.empty")}</li>}
            {messages.map((m) => (
              <li key={m.id} data-testid="chat-line" data-kind={m.kind}
                className={m.kind === "system" ? "system" : m.sender_id === me ? "mine" : "theirs"}>
                {m.kind === "system" && <span>{systemText(m.body)}</span>}
                {m.kind === "tip" && <strong>{t("chat.tipped", { who: who(m), coins: formatCoins(m.amount ?? 0) })}</strong>}
                {m.kind === "text" && (
                  <>
                    <span className="chat-who">{who(m)}</span>
                    <span className="chat-text">
                      {pieces(m.body).map((piece, i) =>
                        "href" in piece ? (
                          <a key={i} href={piece.href} target="_blank" rel="noopener noreferrer nofollow ugc">{piece.href}</a>
                        ) : (
                          <span key={i}>{piece.text}</span>
                        ),
                      )}
                    </span>
                  </>
                )}
                <time className="chat-time" dateTime={m.created_at}>{time(m.created_at)}</time>
              </li>
            ))}
            {pending.map((p) => (
              <li key={p.id} className="mine pending" data-testid="chat-pending">
                <span className="chat-who">{t("chat.you")}</span>
                <span className="chat-text">{p.body}</span>
                {p.failed ? (
                  <button type="button" className="link" onClick={() => retry(p)}>{t("chat.retry")}</button>
                ) : (
                  <span className="chat-time">{t("chat.sending")}</span>
                )}
              </li>
            ))}
          </ol>
          {error && <p role="alert" className="error">{error}</p>}
          {writable && (
            <form className="chat-form" onSubmit={send}>
              <label className="visually-hidden" htmlFor={`chat-${callId}`}>{t("chat.write")}</label>
              <textarea id={`chat-${callId}`} value={draft} maxLength={MAX_LENGTH} rows={2}
                placeholder={t("chat.placeholder")} onChange={(e) => setDraft(e.target.value)} onKeyDown={onKey} />
              <button type="submit" disabled={!draft.trim()}>{t("chat.send")}</button>
            </form>
          )}
          {isClient && tippable && <TipBox callId={callId} token={token} onSent={onSent} onError={setError} />}
        </>
      )}
    </section>
  );
}

/** Tip buttons (a few amounts and one of your own), each confirmed before any coin moves;
 * one request at a time, its key kept until the answer is known (a double click or a retry
 * after a lost answer tips once). */
function TipBox(props: {
  callId: number;
  token: string | null;
  onSent: (messages: Message[]) => void;
  onError: (text: string) => void;
}) {
  const { callId, token, onSent, onError } = props;
  const t = useT();
  const [custom, setCustom] = useState("");
  const [chosen, setChosen] = useState<number | null>(null);
  const [sending, setSending] = useState(false);
  const [thanks, setThanks] = useState("");
  const [closed, setClosed] = useState(false); // the server said it is too late to tip
  const inFlight = useRef(false);
  const key = useRef<{ amount: number; id: string } | null>(null);
  const customAmount = /^[1-9][0-9]{0,8}$/.test(custom) ? Number(custom) : null;

  async function confirm() {
    if (chosen === null || inFlight.current) return;
    inFlight.current = true;
    setSending(true);
    onError("");
    if (key.current?.amount !== chosen) key.current = { amount: chosen, id: crypto.randomUUID() };
    try {
      const tip = await request<Message>(`/v1/calls/${callId}/tips`, {
        token,
        body: { amount: chosen, client_msg_id: key.current.id },
      });
      key.current = null;
      onSent([tip]);
      setThanks(t("chat.tipThanks", { coins: formatCoins(chosen) }));
      setChosen(null);
      setCustom("");
    } catch (e) {
      if (resultKnown(e)) key.current = null;
      if (e instanceof ApiError && e.code === "tip_window_closed") setClosed(true);
      onError(friendlyMessage(e));
    } finally {
      inFlight.current = false;
      setSending(false);
    }
  }

  if (closed) return null;
  return (
    <div className="tips" role="group" aria-label={t("chat.tipTitle")}>
      {chosen === null ? (
        <div className="row">
          <span className="muted">{t("chat.tipTitle")}</span>
          {TIP_PRESETS.map((amount) => (
            <button key={amount} type="button" className="secondary" onClick={() => { setThanks(""); setChosen(amount); }}>
              {formatCoins(amount)}
            </button>
          ))}
          <label className="inline">{t("chat.tipOther")}
            <input inputMode="numeric" value={custom} size={6} onChange={(e) => setCustom(e.target.value.trim())} />
          </label>
          <button type="button" className="secondary" disabled={customAmount === null}
            onClick={() => { setThanks(""); setChosen(customAmount); }}>{t("chat.tipIt")}</button>
        </div>
      ) : (
        <div className="row" role="alertdialog" aria-label={t("chat.tipConfirmTitle")}>
          <span>{t("chat.tipConfirm", { coins: formatCoins(chosen) })}</span>
          <button type="button" disabled={sending} onClick={() => void confirm()}>
            {sending ? t("chat.tipping") : t("chat.tipYes")}
          </button>
          <button type="button" className="secondary" disabled={sending} onClick={() => setChosen(null)}>{t("chat.tipNo")}</button>
        </div>
      )}
      {thanks && <p role="status" className="ok">{thanks}</p>}
    </div>
  );
}
