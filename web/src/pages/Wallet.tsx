import { useState, type ReactNode } from "react";
import type { StatementLine, StatementPage, Wallet } from "../api";
import { useAuth } from "../auth";
import { entryKindLabel } from "../coins";
import { formatCoins, formatSignedCoins, formatTalk } from "../format";
import { useOlderPages, useResource } from "../hooks";
import { currentLocale, translate, useT } from "../i18n";

export function WalletCard({ title, wallet, action }: { title?: string; wallet: Wallet | null; action?: ReactNode }) {
  const t = useT();
  title ??= t("wallet.title");
  return (
    <section className="card" aria-label={title}>
      <h2>{title}</h2>
      {wallet ? (
        <dl className="stats">
          <div><dt>{t("wallet.balance")}</dt><dd data-testid="balance">{formatCoins(wallet.balance)}</dd></div>
          <div><dt>{t("wallet.held")}</dt><dd data-testid="held">{formatCoins(wallet.held)}</dd></div>
          <div><dt>{t("wallet.available")}</dt><dd data-testid="available">{formatCoins(wallet.available)}</dd></div>
        </dl>
      ) : (
        <p className="muted">{t("wallet.loading")}</p>
      )}
      {action && <p className="actions">{action}</p>}
    </section>
  );
}

/** One line of your statement in words: "Call with Carol, 2 min" (the platform's split of a
 * charge is the admin's business, not yours). */
export function statementText(line: StatementLine): string {
  const call = line.call;
  if (call && line.kind === "call_charge") {
    return call.seconds
      ? translate("statement.callWithTime", { name: call.with_name, time: formatTalk(call.seconds) })
      : translate("statement.callWith", { name: call.with_name });
  }
  if (call && line.kind === "tip") {
    return translate(line.amount < 0 ? "statement.tipTo" : "statement.tipFrom", { name: call.with_name });
  }
  if (call) return translate("statement.refundWith", { kind: entryKindLabel(line.kind), name: call.with_name });
  return entryKindLabel(line.kind);
}

export function Statement() {
  const { token } = useAuth();
  const t = useT();
  const first = useResource<StatementPage>("/v1/wallet/statement?limit=10", 5000);
  const { items, next, loadMore, error } = useOlderPages(first, "/v1/wallet/statement");
  const [exportError, setExportError] = useState("");

  async function download() {
    setExportError("");
    try {
      const response = await fetch("/v1/wallet/statement.csv", { headers: { Authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(String(response.status));
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = "callmeter-statement.csv";
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch {
      setExportError(t("statement.csvFailed"));
    }
  }

  return (
    <section className="card" aria-label={t("statement.title")}>
      <h2>{t("statement.title")}</h2>
      {(first.error || error || exportError) && <p role="alert" className="error">{first.error || error || exportError}</p>}
      {first.data && items.length === 0 && <p className="muted">{t("statement.empty")}</p>}
      <ul className="entries statement">
        {items.map((line) => (
          <li key={line.id} data-testid="statement-line">
            <span>{statementText(line)}</span>
            <span className={line.amount < 0 ? "debit" : "credit"}>{formatSignedCoins(line.amount)}</span>
            <span className="muted small">
              <time dateTime={line.created_at}>{new Date(line.created_at).toLocaleString(currentLocale())}</time> ·{" "}
              {t("statement.balance", { coins: formatCoins(line.balance_after) })}
            </span>
          </li>
        ))}
      </ul>
      <p className="actions">
        {next !== null && <button type="button" className="secondary" onClick={() => void loadMore()}>{t("statement.older")}</button>}
        <button type="button" className="secondary" onClick={() => void download()}>{t("statement.csv")}</button>
      </p>
    </section>
  );
}
