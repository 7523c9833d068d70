import { createContext, useContext, useState, type ReactNode } from "react";
import { Link, Navigate, Route, Routes, useNavigate } from "react-router-dom";
import { type User } from "./api";
import { loadSession, saveSession, type Session } from "./session";
import { LoginPage } from "./pages/Login";
import { ClientHome } from "./pages/ClientHome";
import { HostHome } from "./pages/HostHome";
import { CallScreen } from "./pages/CallScreen";
import { AdminPage } from "./pages/Admin";
import { HistoryPage } from "./pages/History";

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
          {auth.user.role !== "admin" && <Link to="/history">History</Link>}
          {auth.user.role === "admin" && <Link to="/admin">Admin</Link>}
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
      <main>{children}</main>
    </>
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
  if (!session) {
    return (
      <Routes>
        <Route path="/login" element={<LoginPage onLogin={login} />} />
        <Route path="*" element={<Navigate to="/login" replace />} />
      </Routes>
    );
  }
  const auth: Auth = { session, token: session.token, user: session.user, login, logout };
  const home =
    session.user.role === "client" ? <ClientHome /> : session.user.role === "host" ? <HostHome /> : <AdminPage />;
  return (
    <AuthContext.Provider value={auth}>
      <Shell>
        <Routes>
          <Route path="/" element={home} />
          <Route path="/calls/:callId" element={<CallScreen />} />
          <Route path="/history" element={<HistoryPage />} />
          <Route path="/admin" element={<AdminPage />} />
          <Route path="/login" element={<Navigate to="/" replace />} />
          <Route path="*" element={<p>Page not found. <Link to="/">Home</Link></p>} />
        </Routes>
      </Shell>
    </AuthContext.Provider>
  );
}
