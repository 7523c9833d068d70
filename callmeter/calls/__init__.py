"""Calls: the server-side lifecycle, settlement and live state."""
