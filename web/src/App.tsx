import { useState, type ReactNode } from "react";
import { Link, Navigate, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { AuthContext, useAuth, type Auth } from "./auth";
import { IncomingCall, LiveCallBanner, useHostPresence, useMyCalls } from "./live";
import { isLanguage, useLanguage, useT } from "./i18n";
import { LanguagePicker } from "./i18n/picker";
import { request } from "./api";
import { loadSession, saveSession, type Session } from "./session";
import { LoginPage } from "./pages/Login";
import { ClientHome } from "./pages/ClientHome";
import { HostHome } from "./pages/HostHome";
import { CallScreen } from "./pages/CallScreen";
import { AdminPage } from "./pages/Admin";
import { HistoryPage } from "./pages/History";
import { BuyCoinsPage } from "./pages/Coins";
import { CoinsReturnPage } from "./pages/CoinsReturn";
import { TestCheckoutPage } from "./pages/TestCheckout";
import { EarningsPage } from "./pages/Earnings";
import { AdminPayoutsPage } from "./pages/AdminPayouts";
import { ReceiptPage } from "./pages/Receipt";

const ROLE = { client: "role.client", host: "role.host", admin: "role.admin" } as const;

function Shell({ children }: { children: ReactNode }) {
  const auth = useAuth();
  const navigate = useNavigate();
  const t = useT();
  const role = auth.user.role;
  useHostPresence(role === "host"); // a host is online while one of its pages is open
  const calls = useMyCalls(role !== "admin", role === "host" ? 1500 : 3000); // rings, leads back
  return (
    <>
      <header className="topbar">
        <Link to="/" className="brand">callmeter</Link>
        <nav aria-label={t("nav.main")}>
          <Link to="/">{t("nav.home")}</Link>
          {auth.user.role === "client" && <Link to="/coins">{t("nav.buyCoins")}</Link>}
          {auth.user.role === "host" && <Link to="/earnings">{t("nav.earnings")}</Link>}
          {auth.user.role !== "admin" && <Link to="/history">{t("nav.history")}</Link>}
          {auth.user.role === "admin" && <Link to="/admin">{t("nav.admin")}</Link>}
          {auth.user.role === "admin" && <Link to="/admin/payouts">{t("nav.payouts")}</Link>}
        </nav>
        <span className="who">
          {auth.user.display_name} ({t(ROLE[auth.user.role])})
          <LanguagePicker token={auth.token} />
          <button
            type="button"
            className="link"
            onClick={() => {
              auth.logout();
              navigate("/login");
            }}
          >
            {t("nav.logout")}
          </button>
        </span>
      </header>
      {role === "host" && <IncomingCall calls={calls.data} refresh={calls.refresh} />}
      {role !== "admin" && <LiveCallBanner calls={calls.data} />}
      <main>{children}</main>
    </>
  );
}

function NotFound() {
  const t = useT();
  return <p>{t("nav.notFound")} <Link to="/">{t("nav.home")}</Link></p>;
}

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const { language, setLanguage } = useLanguage();
  const login = (s: Session) => {
    saveSession(s);
    setSession(s);
    // the user's own choice wins; a user who never chose keeps the one made on this page
    if (isLanguage(s.user.language)) setLanguage(s.user.language);
    else void request("/v1/me", { method: "PUT", token: s.token, body: { language } }).catch(() => {});
  };
  const logout = () => {
    saveSession(null);
    setSession(null);
  };
  // The test provider's checkout stands in for a payment provider's page: no shell, no login.
  const checkout = <TestCheckoutPage token={session?.token ?? null} />;
  if (!session) {
    return (
      <Routes>
        <Route path="/test-checkout/:sessionId" element={checkout} />
        <Route path="/login" element={<LoginPage onLogin={login} />} />
        <Route path="*" element={<ToLogin />} />
      </Routes>
    );
  }
  const auth: Auth = { session, token: session.token, user: session.user, login, logout };
  const home =
    session.user.role === "client" ? <ClientHome /> : session.user.role === "host" ? <HostHome /> : <AdminPage />;
  return (
    <Routes>
      <Route path="/test-checkout/:sessionId" element={checkout} />
      <Route
        path="*"
        element={
          <AuthContext.Provider value={auth}>
            <Shell>
              <Routes>
                <Route path="/" element={home} />
                <Route path="/calls/:callId" element={<CallScreen />} />
                <Route path="/calls/:callId/receipt" element={<ReceiptPage />} />
                <Route path="/history" element={<HistoryPage />} />
                <Route path="/coins" element={<BuyCoinsPage />} />
                <Route path="/coins/return" element={<CoinsReturnPage />} />
                <Route path="/admin" element={<AdminPage />} />
                <Route path="/admin/payouts" element={<AdminPayoutsPage />} />
                <Route path="/earnings" element={<EarningsPage />} />
                <Route path="/login" element={<Navigate to="/" replace />} />
                <Route path="*" element={<NotFound />} />
              </Routes>
            </Shell>
          </AuthContext.Provider>
        }
      />
    </Routes>
  );
}

/** To the login page, which comes back here afterwards (e.g. to /coins/return?…). */
function ToLogin() {
  const { pathname, search } = useLocation();
  return <Navigate to="/login" replace state={{ from: pathname + search }} />;
}
