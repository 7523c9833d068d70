import { useState, type FormEvent } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { friendlyMessage, request, type User } from "../api";
import type { Session } from "../session";
import { LanguagePicker } from "../i18n/picker";
import { useT } from "../i18n";

interface TokenOut {
  access_token: string;
  expires_in: number;
  user: User;
}

export function LoginPage({ onLogin }: { onLogin: (s: Session) => void }) {
  const t = useT();
  const [mode, setMode] = useState<"login" | "register">("login");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<"client" | "host">("client");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const navigate = useNavigate();
  // where a logged-out visitor was going (a same-site path only)
  const from = (useLocation().state as { from?: unknown } | null)?.from;
  const next = typeof from === "string" && from.startsWith("/") && !from.startsWith("//") ? from : "/";

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError("");
    setBusy(true);
    try {
      if (mode === "register") {
        await request("/v1/auth/register", { body: { username, password, role } });
      }
      const out = await request<TokenOut>("/v1/auth/login", { body: { username, password } });
      onLogin({ token: out.access_token, user: out.user, expiresAt: Date.now() + out.expires_in * 1000 });
      navigate(next);
    } catch (e) {
      setError(friendlyMessage(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="narrow">
      <div className="row login-head">
        <h1>callmeter</h1>
        <LanguagePicker />
      </div>
      <p className="muted">{t("login.tagline")}</p>
      <form onSubmit={submit} className="card" aria-label={mode === "login" ? t("login.title") : t("login.registerForm")}>
        <h2>{mode === "login" ? t("login.title") : t("login.register")}</h2>
        <label>
          {t("login.username")}
          <input name="username" autoComplete="username" required value={username}
            onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          {t("login.password")}
          <input name="password" type="password" required minLength={mode === "register" ? 8 : 1}
            autoComplete={mode === "login" ? "current-password" : "new-password"}
            value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {mode === "register" && (
          <fieldset>
            <legend>{t("login.role")}</legend>
            <label className="inline">
              <input type="radio" name="role" checked={role === "client"} onChange={() => setRole("client")} /> {t("role.client")}
            </label>
            <label className="inline">
              <input type="radio" name="role" checked={role === "host"} onChange={() => setRole("host")} /> {t("role.host")}
            </label>
          </fieldset>
        )}
        {error && <p role="alert" className="error">{error}</p>}
        <button type="submit" disabled={busy}>{mode === "login" ? t("login.submit") : t("login.submitRegister")}</button>
        <button type="button" className="link" onClick={() => setMode(mode === "login" ? "register" : "login")}>
          {mode === "login" ? t("login.toRegister") : t("login.toLogin")}
        </button>
      </form>
    </main>
  );
}
