import type { enMoney } from "./en-money";

/** Los mensajes de las páginas de dinero (se mezclan en es.ts): las mismas claves que en-money.ts. */
export const esMoney: Record<keyof typeof enMoney, string> = {
};
