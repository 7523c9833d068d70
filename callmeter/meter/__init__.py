"""The meter: settles, times out and ends calls on the server's clock."""
