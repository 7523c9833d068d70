/** Who is signed in, for every page (its own module: pages import it, not App). */
import { createContext, useContext } from "react";
import type { User } from "./api";
import type { Session } from "./session";

export interface Auth {
  session: Session | null;
  token: string;
  user: User;
  login: (session: Session) => void;
  logout: () => void;
}

export const AuthContext = createContext<Auth | null>(null);

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside a logged-in page");
  return auth;
}
