import { Link } from "react-router-dom";
import type { CallsPage } from "../api";
import { useAuth } from "../auth";
import { describeEndReason, formatCoins, formatDuration } from "../format";
import { useResource } from "../hooks";
import { currentLocale, useT } from "../i18n";

export function HistoryPage() {
  const { user } = useAuth();
  const { data, error } = useResource<CallsPage>("/v1/calls?limit=50");
  const isHost = user.role === "host";
  const t = useT();
  return (
    <section className="card" aria-label={t("history.title")}>
      <h2>{t("history.title")}</h2>
      {error && <p role="alert" className="error">{error}</p>}
      {data?.items.length === 0 && <p className="muted">{t("history.empty")}</p>}
      <div className="table-scroll">
      <table>
        <thead>
          <tr><th>{t("history.call")}</th><th>{t("history.with")}</th><th>{t("history.started")}</th><th>{t("history.duration")}</th><th>{isHost ? t("history.earned") : t("history.charged")}</th><th>{t("history.endedBecause")}</th><th /></tr>
        </thead>
        <tbody>
          {data?.items.map((c) => (
            <tr key={c.id}>
              <td>#{c.id}</td>
              <td>{data.names[isHost ? c.client_id : c.host_id] ?? "—"}</td>
              <td>{c.started_at ? new Date(c.started_at).toLocaleString(currentLocale()) : "—"}</td>
              <td>{formatDuration(c.billed_seconds)}</td>
              <td>{formatCoins(isHost ? c.host_earned : c.charged)}</td>
              <td>{c.status === "ended" ? describeEndReason(c.end_reason) : t(`status.${c.status}`)}</td>
              <td><Link to={`/calls/${c.id}/receipt`} aria-label={t("history.receiptFor", { id: c.id })}>{t("receipt.link")}</Link></td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </section>
  );
}
