"""Users, passwords, access tokens and login throttling."""
