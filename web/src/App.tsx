import { createContext, useContext, useState, type ReactNode } from "react";
import { Link, Navigate, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { type Call, type User } from "./api";
import { useResource } from "./hooks";
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

interface Auth {
  session: Session | null;
  token: string;
  user: User;
  login: (session: Session) => void;
  logout: () => void;
}

const AuthContext = createContext<Auth | null>(null);

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside a logged-in page");
  return auth;
}

function Shell({ children }: { children: ReactNode }) {
  const auth = useAuth();
  const navigate = useNavigate();
  return (
    <>
      <header className="topbar">
        <Link to="/" className="brand">callmeter</Link>
        <nav aria-label="main">
          <Link to="/">Home</Link>
          {auth.user.role === "client" && <Link to="/coins">Buy coins</Link>}
          {auth.user.role === "host" && <Link to="/earnings">Earnings</Link>}
          {auth.user.role !== "admin" && <Link to="/history">History</Link>}
          {auth.user.role === "admin" && <Link to="/admin">Admin</Link>}
          {auth.user.role === "admin" && <Link to="/admin/payouts">Payouts</Link>}
        </nav>
        <span className="who">
          {auth.user.display_name} ({auth.user.role})
          <button
            type="button"
            className="link"
            onClick={() => {
              auth.logout();
              navigate("/login");
            }}
          >
            Log out
          </button>
        </span>
      </header>
      {auth.user.role !== "admin" && <LiveCallBanner />}
      <main>{children}</main>
    </>
  );
}

/** On every page but the call's own, while you have a call going on: the way back to it
 * (leaving the call page does not end the call). */
function LiveCallBanner() {
  const { user } = useAuth();
  const { pathname } = useLocation();
  const calls = useResource<{ items: Call[] }>("/v1/calls?limit=5", 3000);
  const live = calls.data?.items.find((c) =>
    user.role === "client"
      ? c.client_id === user.id && c.status !== "ended"
      : c.host_id === user.id && (c.status === "connecting" || c.status === "active"),
  );
  if (!live || pathname === `/calls/${live.id}`) return null;
  return (
    <div className="banner live-call" role="status" data-testid="live-call">
      {live.status === "ringing" ? "Your call is ringing." : "You have a call in progress."}
      <Link to={`/calls/${live.id}`}>Return to your call</Link>
    </div>
  );
}

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const login = (s: Session) => {
    saveSession(s);
    setSession(s);
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
                <Route path="/history" element={<HistoryPage />} />
                <Route path="/coins" element={<BuyCoinsPage />} />
                <Route path="/coins/return" element={<CoinsReturnPage />} />
                <Route path="/admin" element={<AdminPage />} />
                <Route path="/admin/payouts" element={<AdminPayoutsPage />} />
                <Route path="/earnings" element={<EarningsPage />} />
                <Route path="/login" element={<Navigate to="/" replace />} />
                <Route path="*" element={<p>Page not found. <Link to="/">Home</Link></p>} />
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
