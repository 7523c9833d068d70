"""A user's own coins over HTTP: the wallet and its statement (read through the ledger
service; above auth, which says who is asking)."""
