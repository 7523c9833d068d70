"""Admin and finance endpoints: grants, ledger check (calls: forced end, refunds)."""
