"""The double-entry coin ledger: accounts, immutable transfers, postings and holds."""
