/** A call's receipt, printable: who, when, how long, at what rate, and every coin it moved
 * (charges, tips, refunds) from the server's ledger; the chat transcript on request. */
import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import type { Message, Receipt } from "../api";
import { useAuth } from "../auth";
import { systemText } from "../call/chat";
import { describeEndReason, formatCoins, formatDuration, formatRate } from "../format";
import { useResource } from "../hooks";
import { currentLocale, useT } from "../i18n";

function MoneyTable(props: { title: string; lines: { at: string; coins: number }[]; testId: string }) {
  const t = useT();
  return (
    <section aria-label={props.title} data-testid={props.testId}>
      <h3>{props.title}</h3>
      {props.lines.length === 0 ? (
        <p className="muted">{t("receipt.none")}</p>
      ) : (
        <table>
          <thead><tr><th>{t("receipt.when")}</th><th>{t("receipt.amount")}</th></tr></thead>
          <tbody>
            {props.lines.map((line, i) => (
              <tr key={i}>
                <td><time dateTime={line.at}>{new Date(line.at).toLocaleString(currentLocale())}</time></td>
                <td>{formatCoins(line.coins)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** A transcript line as text: who said it (or the call's event), plainly. */
function transcriptLine(m: Message, receipt: Receipt, you: number, t: ReturnType<typeof useT>): string {
  if (m.kind === "system") return systemText(m.body);
  const who =
    m.sender_id === you
      ? t("chat.you")
      : m.sender_id === receipt.client.id
        ? receipt.client.display_name
        : receipt.host.display_name;
  if (m.kind === "tip") return t("chat.tipped", { who, coins: formatCoins(m.amount ?? 0) });
  return `${who}: ${m.body}`;
}

export function ReceiptPage() {
  const t = useT();
  const { user } = useAuth();
  const callId = Number(useParams().callId);
  const [withTranscript, setWithTranscript] = useState(false);
  const { data, error } = useResource<Receipt>(
    `/v1/calls/${callId}/receipt${withTranscript ? "?transcript=true" : ""}`,
  );
  if (error) return <p role="alert" className="error card">{error}</p>;
  if (!data) return <p className="muted card">{t("receipt.loading")}</p>;
  const call = data.call;
  return (
    <article className="card receipt" aria-label={t("receipt.title")}>
      <h2>{t("receipt.title")} · {t("receipt.call", { id: call.id })}</h2>
      <dl className="stats">
        <div><dt>{t("receipt.client")}</dt><dd data-testid="receipt-client">{data.client.display_name}</dd></div>
        <div><dt>{t("receipt.host")}</dt><dd data-testid="receipt-host">{data.host.display_name}</dd></div>
        <div><dt>{t("receipt.started")}</dt><dd>{call.started_at ? new Date(call.started_at).toLocaleString(currentLocale()) : "—"}</dd></div>
        <div><dt>{t("receipt.talk")}</dt><dd data-testid="receipt-talk">{formatDuration(data.talk_seconds)}</dd></div>
        <div><dt>{t("receipt.rate")}</dt><dd>{formatRate(call.rate, call.interval_seconds)}</dd></div>
        <div><dt>{t("receipt.endedBecause")}</dt><dd>{call.status === "ended" ? describeEndReason(call.end_reason) : t(`status.${call.status}`)}</dd></div>
      </dl>
      <MoneyTable title={t("receipt.charges")} lines={data.charges} testId="receipt-charges" />
      <MoneyTable title={t("receipt.tips")} lines={data.tips} testId="receipt-tips" />
      <MoneyTable title={t("receipt.refunds")} lines={data.refunds} testId="receipt-refunds" />
      <dl className="stats">
        <div><dt>{t("receipt.totalCharged")}</dt><dd data-testid="receipt-charged">{formatCoins(data.total_charged)}</dd></div>
        <div><dt>{t("receipt.totalTips")}</dt><dd data-testid="receipt-tipped">{formatCoins(data.total_tips)}</dd></div>
        <div><dt>{t("receipt.totalRefunded")}</dt><dd>{formatCoins(data.total_refunded)}</dd></div>
        {user.role !== "client" && (
          <div><dt>{t("receipt.hostEarned")}</dt><dd>{formatCoins(data.host_earned)}</dd></div>
        )}
      </dl>
      {data.transcript ? (
        <section aria-label={t("receipt.transcript")}>
          <h3>{t("receipt.transcript")}</h3>
          <ol className="transcript" data-testid="transcript">
            {data.transcript.map((m) => (
              <li key={m.id} className={m.kind}>
                <time dateTime={m.created_at}>{new Date(m.created_at).toLocaleTimeString(currentLocale())}</time>{" "}
                <span className="chat-text">{transcriptLine(m, data, user.id, t)}</span>
              </li>
            ))}
          </ol>
        </section>
      ) : (
        <p className="no-print">
          <button type="button" className="secondary" onClick={() => setWithTranscript(true)}>{t("receipt.showTranscript")}</button>
        </p>
      )}
      <p className="actions no-print">
        <button type="button" onClick={() => window.print()}>{t("receipt.print")}</button>
        <Link to="/history">{t("nav.history")}</Link>
      </p>
    </article>
  );
}
