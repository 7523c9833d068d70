/** English messages of the money pages: buying coins, earnings and payouts (merged into en.ts). */
export const enMoney = {
} as const;
